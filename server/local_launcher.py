"""Run the tritonserver binary from the nvidia-pytriton wheel as a child process."""

import os
import shutil
import socket
import tempfile

from tritonize.errors import ServeError
from tritonize.host.triton_install import find_triton
from tritonize.server.gpus import check_gpus, detect_gpu_count, gpu_needs, write_cpu_repository
from tritonize.server.managed_triton import NOISE, ManagedTritonServer
from tritonize.server.options import model_control_args, runtime_environment, tritonserver_args
from tritonize.server.stale_runs import WORKDIR_PREFIX, remove_stale_leftovers


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


class LocalTritonServer(ManagedTritonServer):
    """start() / wait_ready() / is_ready() / stop() around the wheel's tritonserver, as a child process."""

    noise = NOISE

    def __init__(self, options, on_output=None, on_event=None):
        super().__init__(options, on_output, on_event)
        self.workdir = None
        self.cpu_overrides = {}  # serve --cpu: {model: the GPUs it was built for}

    @property
    def http_url(self):
        return f"http://{self.options.host}:{self.options.http_port}"

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
        self.served_repository = repository
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
        return self.launch(args, env)

    def _cleanup(self):
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
