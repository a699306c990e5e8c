"""One tritonserver process under tritonize's control, wherever its binary comes from.

The local launcher (the nvidia-pytriton wheel's binary, server/local_launcher.py) and the image's
supervisor (the image's own tritonserver, server/container.py) both run Triton this way: explicit
model control with exit-on-error off (an API that fails to load leaves the others serving), the
watchdog from the first second (server/watchdog.py), readiness from the repository index, and the
bounded drain on stop. Standard library only: it runs from the zipapp inside images.
"""

import glob
import os
import signal
import subprocess
import time

from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV, STATUS_DIR_ENV
from tritonize.adapter.runtime.repository_model import startup_models
from tritonize.errors import AdminError, ServeError
from tritonize.host.argv import hide_from_argv
from tritonize.server.admin import TritonAdmin
from tritonize.server.launcher import Launcher, describe_exit
from tritonize.server.watchdog import StubWatchdog

# Harmless on CPU machines, printed by every start.
NOISE = (
    "CudaDriverHelper has not been initialized",
    "Failed to initialize NVML",
    "DCGM unable to start",
    "Unable to find any CUDA",
    "cudaGetDeviceCount",
    # A stub's own line once tritonserver died under it: a consequence, never the cause.
    "Non-graceful termination detected",
)

# After a drain Triton still waits (up to --exit-timeout-secs) for clients to close keep-alive
# connections, though nothing is left to answer on them.
DRAINED_EXIT_WAIT_S = 2.0


def die_with_parent():
    """Runs in the child before exec: tritonserver gets SIGTERM if tritonize dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class ManagedTritonServer(Launcher):
    """wait_ready() / stop() / the watchdog around a tritonserver this process starts with launch()."""

    noise = NOISE

    drains = True  # stop(deadline) unloads every model first (server/supervisor.py's stop_all)

    def __init__(self, options, on_output=None, on_event=None):
        super().__init__()
        self.options = options
        self.on_output = on_output  # called with each log line (noise removed)
        self.on_event = on_event  # called with what the watchdog sees and does
        self.admin = None
        self.watchdog = None
        self.argv_hidden = False  # the admin token blanked in tritonserver's command line
        self._notice_given = False

    @property
    def http_url(self):
        host = "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host
        return f"http://{host}:{self.options.http_port}"

    @property
    def shm_prefix(self):
        return f"tritonize{os.getpid()}_{self.options.http_port}_"

    @property
    def status_dir(self):
        raise NotImplementedError

    def launch(self, args, env):
        """Start tritonserver (args[0]) with the runtime's environment; the watchdog from the start."""
        self.failed_apis = {}
        env = dict(env)
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
            preexec_fn=die_with_parent,
        )
        self._start_reader()
        self.admin = TritonAdmin(self.http_url, self.options.admin_token)
        # Watching from the start: an instance that dies while (or right after) its model loads is a
        # crash too, healed once the model is loaded.
        self._start_watchdog()
        return self

    def _cleanup(self):
        """After stop(): what this launcher made besides the process."""

    def wait_ready(self, timeout=300.0, on_wait=None):
        """Block until Triton says ready; raise ServeError with the reason if it dies or times out."""
        start = time.monotonic()
        while True:
            self._raise_if_exited()
            states = self._load_states()
            if states is not None:
                self._check_loaded(states)
                if self.watchdog is not None:
                    self.watchdog.reload_timeout_s = timeout
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
        # Only the models loaded at start: a BatchAPI's model is loaded by its jobs (and may never be).
        wanted = set(self._api_names())
        states = {m["name"]: (m.get("state", ""), m.get("reason", "")) for m in index if m["name"] in wanted}
        if (wanted and not states) or any(state in ("", "LOADING", "UNLOADING") for state, _ in states.values()):
            return None
        return states

    def _check_loaded(self, states):
        failed = {name: reason for name, (state, reason) in states.items() if state != "READY"}
        if not failed:
            return
        reports = self.load_failures()
        self.failed_apis = {name: reports.get(name) or reason or "not loaded" for name, reason in failed.items()}
        if (states and len(failed) == len(states)) or self.options.exit_on_error:
            raise ServeError(self.failure_report())

    def _start_watchdog(self):
        host = "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host
        self.watchdog = StubWatchdog(
            self.process.pid,
            self.admin,
            self.shm_prefix,
            report=self.on_event,
            metrics_url=f"http://{host}:{self.options.metrics_port}",
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
        """The models loaded at start (every one but the BatchAPIs)."""
        return startup_models(self.options.model_repository)

    def kill(self):
        """Stop now: SIGKILL to tritonserver and its stubs (stop() still cleans up)."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def announce_draining(self):
        """Say not ready (and keep answering) for the drain notice: load balancers polling readiness
        take this server out while it still answers (unloading at once would refuse what they send
        meanwhile: 404 / NOT_FOUND). The Cortex endpoint's readiness asks Triton's: it follows."""
        if self._notice_given or self.process is None or self.process.poll() is not None or self._ready_mark is None:
            return
        self._notice_given = True
        if self.options.drain_notice_s > 0:
            self.admin.announce_not_ready()
            time.sleep(self.options.drain_notice_s)

    def stop(self, deadline=None):
        """Drain, then SIGTERM, then make sure nothing is left behind; bounded by `deadline` (monotonic;
        default: the exit timeout from now) plus DRAINED_EXIT_WAIT_S.

        Triton 2.51 alone does not drain under keep-alive load: after SIGTERM it keeps answering
        on open connections until --exit-timeout-secs, then drops whatever is in flight. So every
        model is unloaded first: Triton lets the running requests finish, refuses new ones with
        an error (and /v2/health/ready says false), and only then gets SIGTERM. A drain that ran out
        of time (a stream that never ends) is not given Triton's own exit timeout a second time."""
        if self.process is None:
            return
        if self.watchdog is not None:
            self.watchdog.stop()  # stubs exit during shutdown: not crashes
            self.watchdog = None
        drained = None
        if self._ready_mark is not None and self.process.poll() is None:
            self.announce_draining()
            drained = self._drain(deadline or time.monotonic() + self.options.exit_timeout_s)
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                # Drained (or out of time): nothing is left to finish, Triton only waits for connections.
                wait = DRAINED_EXIT_WAIT_S if drained is not None else self.options.exit_timeout_s + 10
                self.process.wait(timeout=wait)
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
        self._notice_given = False
        self._cleanup()

    def _drain(self, deadline):
        """Unload every model and wait (until deadline) until none is loaded: True if so, False if it
        ran out of time, None if the admin API did not answer (nothing was drained)."""
        try:
            names = [m["name"] for m in self.admin.index(timeout=5.0) if m.get("state") in ("READY", "LOADING")]
            for name in names:
                self.admin.unload(name)
        except (AdminError, OSError):
            return None
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                states = [m.get("state") for m in self.admin.index(timeout=5.0)]
            except (AdminError, OSError):
                return False
            if not any(state in ("READY", "LOADING", "UNLOADING") for state in states):
                return True
            time.sleep(0.05)
        return False
