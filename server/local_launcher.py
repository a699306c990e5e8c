"""Run the tritonserver binary from the nvidia-pytriton wheel as a child process."""

import ctypes
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV, STATUS_DIR_ENV
from tritonize.adapter.runtime.repository_model import model_names
from tritonize.errors import AdminError, ServeError
from tritonize.host.argv import hide_from_argv
from tritonize.host.triton_install import find_triton
from tritonize.server.admin import TritonAdmin
from tritonize.server.gpus import check_gpus, detect_gpu_count, gpu_needs, write_cpu_repository
from tritonize.server.launcher import Launcher, describe_exit
from tritonize.server.options import model_control_args, runtime_environment, tritonserver_args
from tritonize.server.stale_runs import WORKDIR_PREFIX, remove_stale_leftovers
from tritonize.server.watchdog import StubWatchdog

# Harmless on CPU machines, printed by every start.
NOISE = (
    "CudaDriverHelper has not been initialized",
    "Failed to initialize NVML",
    "DCGM unable to start",
    "Unable to find any CUDA",
    "cudaGetDeviceCount",
)


def _die_with_parent():
    """Runs in the child before exec: tritonserver gets SIGTERM if tritonize dies (even by SIGKILL)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def check_port_free(host, port, what):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As tritonserver binds: a port in TIME_WAIT after a stop is free for it (and for us).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ServeError(
                f"{what} port {host}:{port} is not available ({exc.strerror}); pick another with --{what}-port"
            ) from None


# After a drain Triton still waits (up to --exit-timeout-secs) for clients to close keep-alive
# connections, though nothing is left to answer on them.
DRAINED_EXIT_WAIT_S = 2.0


class LocalTritonServer(Launcher):
    """start() / wait_ready() / is_ready() / stop() around one tritonserver process."""

    noise = NOISE

    def __init__(self, options, on_output=None, on_event=None):
        super().__init__()
        self.options = options
        self.on_output = on_output  # called with each log line (noise removed)
        self.on_event = on_event  # called with what the watchdog sees and does
        self.admin = None
        self.watchdog = None
        self.workdir = None
        self.cpu_overrides = {}  # serve --cpu: {model: the GPUs it was built for}
        self.argv_hidden = False  # the admin token blanked in tritonserver's command line

    @property
    def http_url(self):
        return f"http://{self.options.host}:{self.options.http_port}"

    @property
    def shm_prefix(self):
        return f"tritonize{os.getpid()}_{self.options.http_port}_"

    @property
    def status_dir(self):
        return os.path.join(self.workdir, "status")

    def start(self):
        opts = self.options
        if not os.path.isdir(opts.model_repository):
            raise ServeError(f"{opts.model_repository}: no such model repository (run `tritonize build` first)")
        for what, port in (("http", opts.http_port), ("grpc", opts.grpc_port), ("metrics", opts.metrics_port)):
            check_port_free(opts.host, port, what)
        if not opts.cpu_only:
            check_gpus(gpu_needs(opts.model_repository), detect_gpu_count(), opts.model_repository)
        triton = find_triton()
        remove_stale_leftovers()
        self.failed_apis = {}
        try:
            self.workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-")
            os.makedirs(self.status_dir)
            repository = opts.model_repository
            if opts.cpu_only:
                repository = os.path.join(self.workdir, "cpu_repository")
                self.cpu_overrides = write_cpu_repository(opts.model_repository, repository)
            backends = triton.make_backend_dir(os.path.join(self.workdir, "backends"))
        except OSError as exc:  # a full or read-only temporary folder
            raise ServeError(
                f"cannot prepare serve's work folder in {tempfile.gettempdir()}: {exc.strerror or exc} "
                "(TMPDIR chooses another place)"
            ) from None
        args = (
            [triton.binary]
            + tritonserver_args(opts, repository)
            + model_control_args(opts)
            + [
                f"--backend-directory={backends}",
                # A prefix of our own lets several servers share /dev/shm, and lets stop() clean up.
                f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            ]
        )
        env = triton.environment()
        env.update(runtime_environment(opts))
        env[STATUS_DIR_ENV] = self.status_dir
        env.pop(ADMIN_TOKEN_ENV, None)  # predictors (the stubs inherit this environment) need not see it
        self._mark_started()
        self.argv_hidden = False
        self.process = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches every stub
            preexec_fn=_die_with_parent,
        )
        self._start_reader()
        self.admin = TritonAdmin(self.http_url, opts.admin_token)
        return self

    def wait_ready(self, timeout=300.0, on_wait=None):
        """Block until Triton says ready; raise ServeError with the reason if it dies or times out."""
        start = time.monotonic()
        while True:
            self._raise_if_exited()
            states = self._load_states()
            if states is not None:
                self._check_loaded(states)
                self._start_watchdog(reload_timeout_s=timeout)
                self._mark_ready()
                return time.monotonic() - start
            waited = time.monotonic() - start
            if waited > timeout:
                raise ServeError(f"Triton was not ready after {timeout:.0f} s\n" + self.failure_report())
            if on_wait:
                on_wait(waited)
            time.sleep(0.1)

    def _load_states(self):
        """{model: (state, reason)} once no model is loading any more, else None."""
        if not self.admin.live(timeout=1.0):
            return None
        if not self.argv_hidden:  # live: its flags are parsed
            self.argv_hidden = hide_from_argv(self.process.pid, self.options.admin_token)
        try:
            index = self.admin.index(timeout=5.0)
        except (AdminError, OSError):
            return None
        states = {m["name"]: (m.get("state", ""), m.get("reason", "")) for m in index}
        if not states or any(state in ("", "LOADING", "UNLOADING") for state, _ in states.values()):
            return None
        return states

    def _check_loaded(self, states):
        failed = {name: reason for name, (state, reason) in states.items() if state != "READY"}
        if not failed:
            return
        reports = self.load_failures()
        self.failed_apis = {name: reports.get(name) or reason or "not loaded" for name, reason in failed.items()}
        if len(failed) == len(states) or self.options.exit_on_error:
            raise ServeError(self.failure_report())

    def _start_watchdog(self, reload_timeout_s):
        metrics_url = f"http://{self.options.host}:{self.options.metrics_port}"
        self.watchdog = StubWatchdog(
            self.process.pid,
            self.admin,
            self.shm_prefix,
            report=self.on_event,
            reload_timeout_s=reload_timeout_s,
            metrics_url=metrics_url,
        )
        self.watchdog.start()

    def load_failures(self):
        """{API: the predictor's own traceback} for the APIs whose predictor failed to load."""
        found = {}
        for path in sorted(glob.glob(os.path.join(self.status_dir, "*.load-error.txt"))):
            with open(path, encoding="utf-8") as f:
                found[os.path.basename(path)[: -len(".load-error.txt")]] = f.read().rstrip()
        return found

    def failure_report(self):
        """The predictors' own tracebacks if a load failed, else Triton's error lines."""
        parts = [f"API {name!r}: predictor failed to load:\n{text}" for name, text in self.load_failures().items()]
        parts += [
            f"API {name!r}: failed to load: {reason}"
            for name, reason in self.failed_apis.items()
            if name not in self.load_failures()
        ]
        if not parts:
            parts.append("\n".join(self.report_lines()))
        code = self.process.returncode if self.process else None
        if code is None and self.failed_apis:
            head = (
                "No API could be loaded."
                if self.failed_apis.keys() >= set(self._api_names())
                else "An API failed to load (serve --exit-on-error)."
            )
        else:
            head = f"Triton stopped ({describe_exit(code)})."
        return head + "\n" + "\n\n".join(parts)

    def _api_names(self):
        return model_names(self.options.model_repository)

    def kill(self):
        """Stop now: SIGKILL to tritonserver and its stubs (stop() still cleans up)."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self):
        """Drain, then SIGTERM, then make sure nothing is left behind.

        Triton 2.51 alone does not drain under keep-alive load: after SIGTERM it keeps answering
        on open connections until --exit-timeout-secs, then drops whatever is in flight. So every
        model is unloaded first: Triton lets the running requests finish, refuses new ones with
        an error (and /v2/health/ready says false), and only then gets SIGTERM."""
        if self.process is None:
            return
        if self.watchdog is not None:
            self.watchdog.stop()  # stubs exit during shutdown: not crashes
        drained = self._ready_mark is not None and self.process.poll() is None and self._drain()
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                # Drained: nothing is left in flight, Triton only waits for idle connections.
                self.process.wait(timeout=DRAINED_EXIT_WAIT_S if drained else self.options.exit_timeout_s + 10)
            except subprocess.TimeoutExpired:
                pass
        # Stubs share tritonserver's process group; kill whatever outlived it.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        if self._reader:
            self._reader.join(timeout=5)
        for path in glob.glob(f"/dev/shm/{self.shm_prefix}*"):
            try:
                os.unlink(path)
            except OSError:
                pass
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _drain(self):
        """Say not ready (and keep answering) for the drain notice, then unload every model and wait
        (up to the exit timeout) until none is loaded; True if so."""
        try:
            if self.options.drain_notice_s > 0:
                # Load balancers polling readiness take this server out while it still answers:
                # unloading at once would refuse what they send meanwhile (404 / NOT_FOUND).
                self.admin.announce_not_ready()
                time.sleep(self.options.drain_notice_s)
            names = [m["name"] for m in self.admin.index(timeout=5.0) if m.get("state") in ("READY", "LOADING")]
            for name in names:
                self.admin.unload(name)
        except (AdminError, OSError):
            return False
        deadline = time.monotonic() + self.options.exit_timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                states = [m.get("state") for m in self.admin.index(timeout=5.0)]
            except (AdminError, OSError):
                return False
            if not any(state in ("READY", "LOADING", "UNLOADING") for state in states):
                return True
            time.sleep(0.05)
        return False
