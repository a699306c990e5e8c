"""Starting and stopping the Cortex endpoint process beside Triton (used by server/serve.py)."""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time

from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV
from tritonize.adapter.runtime.repository_model import RepositoryFormatError, read_repository_settings
from tritonize.errors import ServeError

START_TIMEOUT_S = 30.0


def _loopback(host):
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)


class CortexEndpointProcess:
    """python -m tritonize.cortex_endpoint, a child of `serve` that dies with it (PR_SET_PDEATHSIG + parent poll)."""

    def __init__(self, options, triton_host=None, runner=None):
        self.options = options
        self.triton_host = triton_host or _loopback(options.host)
        # How to run it: this Python's package, or (in images) the zipapp [python3, /models/....pyz].
        self.runner = runner or [sys.executable, "-m", "tritonize.cortex_endpoint"]
        self.process = None

    @property
    def url(self):
        return f"http://{self.options.host}:{self.options.cortex_port}"

    def command(self):
        opts = self.options
        return [
            *self.runner,
            "--repository",
            opts.model_repository,
            "--host",
            opts.host,
            "--port",
            str(opts.cortex_port),
            "--triton-host",
            self.triton_host,
            "--triton-http-port",
            str(opts.http_port),
            "--triton-grpc-port",
            str(opts.grpc_port),
            "--max-body-bytes",
            str(opts.max_body_bytes),
            "--parent-pid",
            str(os.getpid()),
            # One source for these: serve's own options (the endpoint drains like Triton, times out like it).
            "--grace-period",
            f"{opts.exit_timeout_s:g}",
            "--drain-notice",
            f"{opts.drain_notice_s or 0:g}",
            *(["--request-timeout", f"{opts.request_timeout_s:g}"] if opts.request_timeout_s else []),
            *(["--job-store", opts.job_store] if opts.job_store else []),
            *(["--admin-token-stdin"] if self.runs_jobs() else []),
        ]

    def runs_jobs(self):
        """The repository has a BatchAPI: the endpoint runs its jobs and gets the admin token (over stdin)."""
        try:
            settings = read_repository_settings(self.options.model_repository)
        except (RepositoryFormatError, OSError):
            return False  # the endpoint reports it when it starts
        return any(api.batch for api in settings.apis.values())

    def stop_timeout_s(self):
        """How long stop() waits: the endpoint's drain notice and grace period, and a little more."""
        return (self.options.drain_notice_s or 0) + self.options.exit_timeout_s + 5.0

    def start(self, timeout_s=START_TIMEOUT_S):
        missing = [name for name in ("httptools",) if importlib.util.find_spec(name) is None]
        if missing:
            raise ServeError(
                f"the Cortex endpoint needs {' and '.join(missing)}: pip install 'tritonize[server]' "
                "(or serve --no-cortex)"
            )
        # Its own process group: the workers it forks (cortex_endpoint/__main__.py) are stopped with it, even when the
        # first process died without stopping them (a restart then finds the port free).
        # Never the admin token: predictors running as the same user can read /proc/<pid>/environ.
        env = {name: value for name, value in os.environ.items() if name != ADMIN_TOKEN_ENV}
        command = self.command()
        jobs = "--admin-token-stdin" in command
        stdin = subprocess.PIPE if jobs else subprocess.DEVNULL
        self.process = subprocess.Popen(command, stdin=stdin, start_new_session=True, env=env)
        if jobs:  # a BatchAPI's jobs load its model: the token goes over a pipe, never argv or environ
            try:
                self.process.stdin.write(((self.options.admin_token or "") + "\n").encode())
                self.process.stdin.close()
            except OSError:  # it died already: reported below
                pass
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServeError(f"the Cortex endpoint exited at start (code {self.process.returncode}); see above")
            try:
                with socket.create_connection((_loopback(self.options.host), self.options.cortex_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ServeError(f"the Cortex endpoint did not listen on port {self.options.cortex_port} in {timeout_s:.0f} s")

    def died(self):
        """-> its exit code if it exited on its own since start(), else None."""
        return None if self.process is None else self.process.poll()

    def announce_draining(self):
        """SIGTERM now, without waiting: its readiness turns false at once and it keeps answering for its drain
        notice, beside Triton's (with BatchAPIs its readiness asks the realtime models, not Triton's strict
        readiness that the launcher's notice turns false). stop() then waits for it."""
        if self.process is not None and self.process.poll() is None:
            self._terminate()

    def _terminate(self):
        try:  # the whole group: the workers drain beside the first process
            os.killpg(self.process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s=None):
        """SIGTERM: it drains (readiness false, no new connections, in-flight requests finish) within
        timeout_s (default: its drain notice + grace period + 5 s), then whatever is left is killed."""
        if self.process is None:
            return
        timeout_s = self.stop_timeout_s() if timeout_s is None else timeout_s
        if self.process.poll() is None:
            self._terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:  # workers left by a first process that died (SIGKILL, OOM killer)
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
