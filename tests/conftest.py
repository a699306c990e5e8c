import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(TESTS_DIR, "fixtures")


def free_ports(count):
    """Distinct free TCP ports on 127.0.0.1."""
    sockets, ports = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports


def tritonize_cmd(*args):
    return [sys.executable, "-m", "tritonize.cli", *args]


def run_tritonize(*args, check=True, **kwargs):
    result = subprocess.run(tritonize_cmd(*args), capture_output=True, text=True, timeout=300, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"tritonize {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


class ServeProcess:
    """`tritonize serve` as a child process on free ports."""

    def __init__(self, repository, extra_args=(), env=None, ports=None, stdout=None):
        self.http_port, self.grpc_port, self.metrics_port = ports or free_ports(3)
        (self.cortex_port,) = free_ports(1)
        if "--cortex-port" not in extra_args and "--no-cortex" not in extra_args:
            # The Cortex endpoint's default port (8080) may be taken on a shared machine.
            extra_args = [*extra_args, "--cortex-port", str(self.cortex_port)]
        self.log_path = os.path.join(os.path.dirname(repository), f"serve-{self.http_port}.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            tritonize_cmd(
                "serve",
                repository,
                "--http-port",
                str(self.http_port),
                "--grpc-port",
                str(self.grpc_port),
                "--metrics-port",
                str(self.metrics_port),
                *extra_args,
            ),
            stdout=stdout or self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else {**os.environ, **env},
        )

    @property
    def http_url(self):
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self):
        return f"127.0.0.1:{self.grpc_port}"

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.output()}")

    def wait_cortex(self, timeout=30):
        """Wait until the Cortex endpoint listens (serve starts it once Triton is ready)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.cortex_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the Cortex endpoint did not listen in {timeout}s:\n{self.output()}")

    def stop(self, timeout=60):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError(f"serve did not stop within {timeout}s:\n{self.output()}")
        self.log.close()
        return self.process.returncode


def _gpu_count():
    from tritonize.server.gpus import detect_gpu_count

    return detect_gpu_count()


GPU_COUNT = _gpu_count()
HAS_GPU = GPU_COUNT > 0
