"""The entrypoint of images built by `tritonize docker build`: serve's supervision around the image's
own tritonserver (`docker run IMAGE`, the Kubernetes pod from `tritonize deploy k8s --image`).

What local `tritonize serve` guarantees, the image gives the same way, with the same code:
- tritonserver runs with explicit model control and exit-on-error off (server/managed_triton.py):
  an API whose predictor fails to load leaves the others serving, and /ready names it;
- the watchdog (server/watchdog.py, rules in health/) reloads an API whose instance process died,
  in seconds, without restarting the container; a stuck API fails /live;
- the one Supervisor (server/supervisor.py) restarts tritonserver and the Cortex endpoint;
- SIGTERM: /ready false for the drain notice, then the Cortex endpoint and Triton drain, then stop;
- the same log lines ([watchdog], [supervisor]) and Triton's own metrics.

The probes ask this process (HEALTH_PORT): GET /ready, GET /live (JSON bodies saying why).
Configuration is the image's CMD (`tritonserver --model-repository=/models ...`, the flags serve
passes) and a few variables (TRITONIZE_CORTEX_PORT, TRITONIZE_DRAIN_NOTICE_S, TRITONIZE_ADMIN_TOKEN,
TRITONIZE_HEALTH_PORT, TRITONIZE_READY_TIMEOUT_S). Any other command runs as is (`docker run IMAGE bash`).
Standard library only: it runs from the zipapp in /models.
"""

import http.server
import json
import os
import secrets
import signal
import sys
import tempfile
import threading

from tritonize.adapter.runtime.constants import (
    ADMIN_TOKEN_ENV,
    ADMIN_TOKEN_HEADER,
    DEFAULT_MAX_BODY_BYTES,
    MAX_BODY_ENV,
)
from tritonize.adapter.runtime.repository_model import batch_models
from tritonize.errors import ServeError
from tritonize.host.argv import hide_from_argv, hide_from_environ
from tritonize.server.managed_triton import ManagedTritonServer
from tritonize.server.options import ServerOptions, model_control_args, restricted_api_args
from tritonize.server.supervisor import stop_all, supervisor_for

HEALTH_PORT = 8003
HEALTH_PORT_ENV = "TRITONIZE_HEALTH_PORT"
CORTEX_PORT_ENV = "TRITONIZE_CORTEX_PORT"
DRAIN_NOTICE_ENV = "TRITONIZE_DRAIN_NOTICE_S"
READY_TIMEOUT_ENV = "TRITONIZE_READY_TIMEOUT_S"
DEFAULT_DRAIN_NOTICE_S = 2.0
ZIPAPP_ENV = "TRITONIZE_ZIPAPP"  # where the zipapp is (the Cortex endpoint runs from it)
FLAG_OPTIONS = {
    "--model-repository": "model_repository",
    "--model-store": "model_repository",
    "--http-port": "http_port",
    "--grpc-port": "grpc_port",
    "--metrics-port": "metrics_port",
    "--exit-timeout-secs": "exit_timeout_s",
}


def options_from_args(args, environ):
    """ServerOptions from tritonserver's own flags (the image's CMD) and the image's variables."""
    found = {}
    for arg in args:
        key, _, value = arg.partition("=")
        if key in FLAG_OPTIONS and value:
            found[FLAG_OPTIONS[key]] = value if key.endswith(("repository", "store")) else int(value)
    cortex = environ.get(CORTEX_PORT_ENV, "off")
    return ServerOptions(
        found.pop("model_repository", "/models"),
        host="0.0.0.0",
        drain_notice_s=float(environ.get(DRAIN_NOTICE_ENV, DEFAULT_DRAIN_NOTICE_S)),
        cortex_port=None if cortex in ("", "off") else int(cortex),
        max_body_bytes=int(environ.get(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES)),
        **found,
    )


def admin_token_of(args, environ):
    """The token of a `--http-restricted-api=...:tritonize-admin-token=TOKEN` flag, else the variable."""
    for arg in args:
        if arg.startswith("--http-restricted-api=") and f":{ADMIN_TOKEN_HEADER}=" in arg:
            return arg.split(f":{ADMIN_TOKEN_HEADER}=", 1)[1]
    return environ.get(ADMIN_TOKEN_ENV) or None


class ImageTritonServer(ManagedTritonServer):
    """The image's tritonserver (the CMD's binary and flags) as serve runs the wheel's."""

    def __init__(self, command, options, on_output=None, on_event=None):
        super().__init__(options, on_output, on_event)
        self.command = command
        self.workdir = None

    @property
    def status_dir(self):
        return os.path.join(self.workdir, "status")

    def start(self):
        given = {arg.partition("=")[0] for arg in self.command}
        self.workdir = tempfile.mkdtemp(prefix="tritonize-container-")
        os.makedirs(self.status_dir)
        self.served_repository = self.options.model_repository
        args = list(self.command)
        args += [a for a in model_control_args(self.options) if a.partition("=")[0] not in given]
        if "--http-restricted-api" not in given:
            args += restricted_api_args(self.options)
        args.append(f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}")
        return self.launch(args, os.environ)

    def _cleanup(self):
        if self.workdir:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


class Health:
    """What the probes read: /ready and /live, from the supervisor's state."""

    def __init__(self, server, front, supervisor):
        self.server, self.front, self.supervisor = server, front, supervisor
        self.ready = False  # Triton loaded (and not being restarted)
        self.draining = False

    def readiness(self):
        apis, problems = {}, []
        if self.draining:
            problems.append("draining (SIGTERM)")
        if not self.ready:
            problems.append("Triton is not ready (starting or restarting)")
        else:
            try:
                index = self.server.admin.index(timeout=3.0)
            except Exception as exc:
                index = []
                problems.append(f"Triton's repository index did not answer: {exc}")
            options = getattr(self.server, "options", None)
            batch = set(batch_models(options.model_repository)) if options is not None else set()
            for model in index:
                # No reason text: a predictor's traceback names paths; the log has it, probes may be public.
                state = model.get("state", "")
                if model["name"] in batch:  # a BatchAPI: loaded by its jobs, never waited for
                    apis[model["name"]] = "running a job" if state == "READY" else "idle (BatchAPI)"
                    continue
                apis[model["name"]] = "ready" if state == "READY" else f"{state.lower()} (see the log)"
            loaded = [name for name, state in apis.items() if state == "ready"]
            if len(apis) > len(batch & set(apis)) and not loaded:
                problems.append("no API is loaded")
        for name, what in self.supervisor.degraded.items():
            problems.append(f"{name}: {what}")
        return not problems, {"ready": not problems, "problems": problems, "apis": apis}

    def liveness(self):
        problems = []
        if self.ready and not self.draining and not self.server.admin.live(timeout=3.0):
            problems.append("Triton does not answer /v2/health/live")
        watchdog = self.server.watchdog
        for model, seconds in sorted((watchdog.stuck if watchdog else {}).items()):
            problems.append(f"API {model!r} is stuck: requests wait and none finished for {seconds:.0f} s")
        return not problems, {"live": not problems, "problems": problems}


def serve_health(health, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            check = {"/ready": health.readiness, "/live": health.liveness}.get(self.path.split("?")[0])
            if check is None:
                self.send_error(404)
                return
            ok, body = check()
            data = json.dumps(body).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass  # probes every few seconds: not worth a log line

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="tritonize-health", daemon=True).start()
    return server


def print_line(line):
    print(line, flush=True)


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop()


def run(command, environ=None, out=None):
    """Supervise tritonserver (and the Cortex endpoint) until SIGTERM/SIGINT; the exit code."""
    environ = os.environ if environ is None else environ
    out = out or print_line
    options = options_from_args(command[1:], environ)
    options.admin_token = admin_token_of(command[1:], environ)
    if options.admin_token is None:
        options.admin_token = secrets.token_hex(16)
        out(f"tritonize: admin APIs need the header {ADMIN_TOKEN_HEADER}: {options.admin_token}")
    server = ImageTritonServer(command, options, on_output=print_line, on_event=lambda e: out(f"[watchdog] {e}"))
    front = None
    if options.cortex_port:
        from tritonize.cortex_endpoint.endpoint_process import CortexEndpointProcess

        front = CortexEndpointProcess(
            options, runner=[sys.executable, environ.get(ZIPAPP_ENV, "/models/tritonize_cortex_endpoint.pyz")]
        )
    health = Health(server, front, None)
    supervisor = supervisor_for(
        server, front, out, float(environ.get(READY_TIMEOUT_ENV, "600")), on_ready=lambda r: setattr(health, "ready", r)
    )
    health.supervisor = supervisor
    health_server = serve_health(health, int(environ.get(HEALTH_PORT_ENV, HEALTH_PORT)))
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        port = health_server.server_port
        out(f"tritonize: supervising {command[0]} on {options.model_repository} (health on :{port})")
        server.start()
        took = server.wait_ready(timeout=float(environ.get(READY_TIMEOUT_ENV, "600")))
        for name, why in sorted(server.failed_apis.items()):
            out(f"warning: API {name!r} failed to load; serving the others (/ready names it):\n{why}")
        if front is not None:
            front.start()
        health.ready = True
        out(f"tritonize: ready in {took:.1f} s ({', '.join(server._api_names())})")
        supervisor.run()
    except _Stop:
        out("tritonize: stopping (readiness false, draining in-flight requests)...")
        health.draining = True
        return 0
    except ServeError as exc:
        out(f"error: {exc}")
        return 1
    finally:
        for sig in previous:
            signal.signal(sig, lambda signum, frame: server.kill())
        try:
            health.draining = True
            stop_all(server, front, options)
        finally:
            health_server.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def reap_as_init(child_pid):
    """PID 1 in a container adopts every orphan: reap them all, pass signals on to the child, and
    exit with its status (what tini does; Kubernetes gives a container no init)."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda signum, frame: os.kill(child_pid, signum))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if pid == child_pid:
            return os.waitstatus_to_exitcode(status) if status & 0x7F == 0 else 128 + (status & 0x7F)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or os.path.basename(argv[0]) != "tritonserver":
        if not argv:
            print("usage: ENTRYPOINT tritonserver --model-repository=... [flags]", file=sys.stderr)
            return 2
        os.execvp(argv[0], argv)  # `docker run IMAGE bash`: as is
    # The admin token (from a Secret in pods, `docker run -e` elsewhere) stays in os.environ for this
    # process; /proc/<pid>/environ and cmdline, which predictors of the same user can read, lose it
    # (the reaper below, PID 1, inherits the blanked memory). Triton gets it as flags it blanks too.
    token = admin_token_of(argv, os.environ)
    hide_from_environ(os.getpid(), token)
    hide_from_argv(os.getpid(), token)
    if os.getpid() == 1:
        child = os.fork()
        if child:
            return reap_as_init(child)
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
