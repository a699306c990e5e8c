"""Run Triton in a container of the official image, with the same server flags as the local launcher."""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from tritonize.adapter.runtime.constants import DEFAULT_PORTS
from tritonize.adapter.spec_values import parse_size
from tritonize.errors import ServeError, SpecError
from tritonize.server.container import CORTEX_PORT_ENV, DRAIN_NOTICE_ENV
from tritonize.server.gpus import check_gpus, detect_gpu_count, gpu_needs
from tritonize.server.launcher import Launcher, describe_exit
from tritonize.server.local_launcher import NOISE, check_port_free
from tritonize.server.options import container_options, runtime_environment, tritonserver_args

# The Triton release tritonize's repositories are tested with: 2.51 (nvidia-pytriton 0.7.0) = 24.10.
TRITON_VERSION = "2.51"
DEFAULT_TAG = "24.10"
DEFAULT_IMAGE = f"nvcr.io/nvidia/tritonserver:{DEFAULT_TAG}-py3"
CONTAINER_REPOSITORY = "/models"
CONTAINER_PORTS = DEFAULT_PORTS  # the official image listens on Triton's defaults
# Docker's 64 MB /dev/shm default is too small for the python backend's shared memory.
MIN_SHM_SIZE = "1g"
# Every container serve starts carries this label (the run's id); serve acts only on the
# container whose id `docker run --cidfile` wrote, never on one found by name.
RUN_LABEL = "io.tritonize.serve-run"
# Runs beside serve in its own session, stdin a pipe from serve: EOF without "done" means serve
# died (even by SIGKILL) and the container it started is stopped and removed.
REAPER = r"""
import os, shutil, subprocess, sys, time
cidfile, docker, timeout, run_pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if sys.stdin.buffer.read() != b"done":
    cid = ""
    for _ in range(300):  # `docker run` may still be creating it
        try:
            cid = open(cidfile).read().strip()
        except OSError:
            pass
        if cid or not os.path.exists("/proc/%d" % run_pid):
            break
        time.sleep(0.1)
    if cid:
        subprocess.run([docker, "stop", "--time", timeout, cid], capture_output=True)
        subprocess.run([docker, "rm", "--force", cid], capture_output=True)
shutil.rmtree(os.path.dirname(cidfile), ignore_errors=True)
"""
DAEMON_HINT = (
    "start the Docker daemon (e.g. `sudo systemctl start docker`), check DOCKER_HOST and that you "
    "may use /var/run/docker.sock, or serve without --docker"
)


@dataclasses.dataclass
class DockerOptions:
    image: str = DEFAULT_IMAGE
    gpus: object = None  # None: `--gpus all` if a model has GPU instances; "all"; or a list of GPU ids
    shm_size: str = MIN_SHM_SIZE
    detach: bool = False
    name: str | None = None
    docker: str = "docker"


def size_in_bytes(text, what="--shm-size"):
    try:
        return parse_size(text, what)
    except SpecError as exc:
        raise ServeError(str(exc)) from None


def check_shm_size(text):
    if size_in_bytes(text) < size_in_bytes(MIN_SHM_SIZE):
        raise ServeError(
            f"--shm-size {text} is too small: Triton's python backend needs at least {MIN_SHM_SIZE} "
            "of /dev/shm in the container (Docker's default of 64m makes models fail to load)"
        )
    return text


def find_docker(binary="docker"):
    path = shutil.which(binary)
    if path is None:
        raise ServeError(
            f"`{binary}` was not found on PATH: install Docker Engine "
            "(https://docs.docker.com/engine/install/), or serve without --docker"
        )
    return path


def check_daemon(docker):
    """Raise a ServeError saying why if the Docker daemon does not answer."""
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        raise ServeError(f"the Docker daemon did not answer `docker info` within 30 s; {DAEMON_HINT}") from None
    if result.returncode != 0:
        reason = (result.stderr.strip() or result.stdout.strip() or f"exit code {result.returncode}").splitlines()[-1]
        raise ServeError(f"cannot reach the Docker daemon: {reason}\n  {DAEMON_HINT}")
    return result.stdout.strip()


def default_name(options):
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", os.path.basename(options.model_repository)).strip("-.") or "models"
    return f"tritonize-{base}-{options.http_port}"


def gpu_args(docker_options, needs):
    """docker's --gpus flag: what was asked for, or all GPUs when a model has GPU instances."""
    gpus = docker_options.gpus
    if gpus is None:
        return ["--gpus", "all"] if needs else []
    if gpus == "all":
        return ["--gpus", "all"]
    # In the container the listed GPUs are numbered 0..n-1: the configs must fit that.
    listed = ",".join(map(str, gpus))
    too_high = sorted(name for name, ids in needs.items() if ids and max(ids) >= len(gpus))
    if too_high:
        raise ServeError(
            f"--gpus {listed} gives the container {len(gpus)} GPU(s), numbered from 0 inside it, but "
            f"{', '.join(too_high)} lists GPU ids up to {max(max(needs[n]) for n in too_high)}: "
            "pass more GPUs with --gpus (or --gpus all), or rebuild with --gpus counting from 0"
        )
    return ["--gpus", f'"device={listed}"']


def docker_run_args(options, docker_options, needs, name, cidfile=None, run_id=None):
    """The full `docker run` command line (the container runs the image's own tritonserver)."""
    inside = container_options(options)
    args = [docker_options.docker, "run", "--rm", "--init", "--name", name]
    if cidfile:
        args += ["--cidfile", cidfile, "--label", f"{RUN_LABEL}={run_id}"]
    if docker_options.detach:
        args.append("--detach")
    args += ["--shm-size", docker_options.shm_size]
    for what in ("http", "grpc", "metrics"):
        args += ["-p", f"{options.host}:{getattr(options, what + '_port')}:{CONTAINER_PORTS[what]}"]
    args += ["-v", f"{options.model_repository}:{CONTAINER_REPOSITORY}:ro"]
    args += gpu_args(docker_options, needs)
    # An image from `tritonize docker build` supervises its tritonserver itself (server/container.py):
    # serve runs the Cortex endpoint on the host, so the image's stays off; the drain notice is serve's.
    container_env = {
        **runtime_environment(options),
        CORTEX_PORT_ENV: "off",
        DRAIN_NOTICE_ENV: f"{options.drain_notice_s:g}",
    }
    for key, value in sorted(container_env.items()):
        args += ["-e", f"{key}={value}"]
    return args + [docker_options.image, "tritonserver"] + tritonserver_args(inside, CONTAINER_REPOSITORY)


class DockerTritonServer(Launcher):
    """start() / wait_ready() / is_ready() / stop() around one container, like LocalTritonServer."""

    noise = NOISE  # the same harmless CPU-machine lines as the local binary's

    def __init__(self, options, docker_options, on_output=None):
        super().__init__()
        self.options = options
        self.docker_options = docker_options
        self.on_output = on_output
        self.name = docker_options.name or default_name(options)
        self.process = None  # `docker run` (attached), or `docker logs --follow` (--detach)
        self.ready = False
        self._docker = None
        self._workdir = None  # holds the cidfile
        self._reaper = None
        self._container_id = None

    @property
    def http_url(self):
        host = "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host
        return f"http://{host}:{self.options.http_port}"

    @property
    def detached(self):
        return self.docker_options.detach and self.ready

    def command(self):
        opts = self.options
        if opts.cpu_only:
            raise ServeError("--cpu applies to the local server; for Docker rebuild with --kind cpu")
        if not os.path.isdir(opts.model_repository):
            raise ServeError(f"{opts.model_repository}: no such model repository (run `tritonize build` first)")
        check_shm_size(self.docker_options.shm_size)
        needs = gpu_needs(opts.model_repository)
        if needs and self.docker_options.gpus is None:
            check_gpus(needs, detect_gpu_count(), opts.model_repository)
        return docker_run_args(
            opts,
            dataclasses.replace(self.docker_options, docker=self._docker),
            needs,
            self.name,
            cidfile=self.cidfile,
            run_id=self.run_id,
        )

    @property
    def cidfile(self):
        return os.path.join(self._workdir, "container-id") if self._workdir else None

    @property
    def container_id(self):
        """The id of the container this run created (None if `docker run` did not create one)."""
        if self._container_id is None and self.cidfile:
            try:
                with open(self.cidfile, encoding="utf-8") as f:
                    self._container_id = f.read().strip() or None
            except OSError:
                pass
        return self._container_id

    def start(self):
        self._docker = find_docker(self.docker_options.docker)
        self.ready, self._container_id = False, None
        self._workdir = tempfile.mkdtemp(prefix=f"tritonize-docker-{os.getpid()}-")
        self.run_id = uuid.uuid4().hex
        args = self.command()
        for what, port in (
            ("http", self.options.http_port),
            ("grpc", self.options.grpc_port),
            ("metrics", self.options.metrics_port),
        ):
            check_port_free(self.options.host, port, what)
        check_daemon(self._docker)
        self._mark_started()
        if self.docker_options.detach:
            run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self._start_reaper(run.pid)
            stdout, stderr = run.communicate()
            if run.returncode != 0:
                raise ServeError(self._run_failed(run.returncode, stderr))
            follow = [self._docker, "logs", "--follow", self.container_id or stdout.strip()]
        else:
            follow = args
        self.process = subprocess.Popen(
            follow, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        if not self.docker_options.detach:
            self._start_reaper(self.process.pid)
        self._start_reader()
        return self

    def _start_reaper(self, run_pid):
        self._reaper = subprocess.Popen(
            [sys.executable, "-c", REAPER, self.cidfile, self._docker, str(self.options.exit_timeout_s), str(run_pid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal is for serve, not for it
        )

    def _dismiss_reaper(self):
        """serve took care of the container (stopped it, or leaves it running with --detach)."""
        if self._reaper is None:
            return
        try:
            self._reaper.stdin.write(b"done")
            self._reaper.stdin.close()
            self._reaper.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self._reaper = None

    def _run_failed(self, code, stderr):
        if "is already in use" in stderr:
            return (
                f"a container named {self.name} already exists (another serve, or one left running): stop it "
                f"(docker rm -f {self.name}) or pick another --name; tritonize leaves it alone"
            )
        return f"docker run failed ({describe_exit(code)}):\n{stderr.strip()}"

    def wait_ready(self, timeout=300.0, on_wait=None):
        """Block until Triton in the container is ready (the first start may pull the image)."""
        start = time.monotonic()
        while True:
            self._raise_if_exited()
            if self.is_ready(timeout=1.0):
                self.ready = True
                self._mark_ready()
                if self.docker_options.detach:
                    self._dismiss_reaper()
                return time.monotonic() - start
            waited = time.monotonic() - start
            if waited > timeout:
                raise ServeError(
                    f"Triton in container {self.name} was not ready after {timeout:.0f} s\n" + self.failure_report()
                )
            if on_wait:
                on_wait(waited)
            time.sleep(0.2)

    def failure_report(self):
        code = self.process.returncode if self.process else None
        lines = self.report_lines()
        if self.container_id is None and any("is already in use" in line for line in lines):
            return self._run_failed(code, "is already in use")
        return f"container {self.name} stopped ({describe_exit(code)}).\n" + "\n".join(lines)

    def detach_message(self):
        return (
            f"Container {self.name} ({(self.container_id or '')[:12]}) keeps running in the background.\n"
            f"  logs: docker logs --follow {self.name}\n  stop: docker stop {self.name}"
        )

    def kill(self):
        """A second Ctrl-C during `docker stop`: kill the container now (stop() still removes it)."""
        if self._docker is not None and not self.detached and self.container_id:
            subprocess.run([self._docker, "kill", self.container_id], capture_output=True, timeout=30)

    def stop(self):
        """Attached: stop the container (in-flight requests finish). --detach: leave it running once ready.
        Only the container this run created (its id from --cidfile) is touched, never one found by name."""
        if self.process is None:
            return
        cid = self.container_id
        if not self.detached and cid:
            timeout = self.options.exit_timeout_s
            try:
                subprocess.run(
                    [self._docker, "stop", "--time", str(timeout), cid], capture_output=True, timeout=timeout + 30
                )
            except subprocess.TimeoutExpired:
                pass
            if self.docker_options.detach:  # started in the background but never became ready
                subprocess.run([self._docker, "rm", "--force", cid], capture_output=True, timeout=60)
        if self.process.poll() is None:
            if self.detached or not cid:
                self.process.terminate()  # only `docker logs --follow`, or a `docker run` that created nothing
            try:
                self.process.wait(timeout=self.options.exit_timeout_s + 30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader:
            self._reader.join(timeout=5)
        self._dismiss_reaper()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
