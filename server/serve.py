"""`tritonize serve`: start Triton, show progress, stream logs, stop cleanly on Ctrl-C/SIGTERM."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from tritonize.adapter.built_repository import read_built_repository
from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV, ADMIN_TOKEN_HEADER, GRPC_ADMIN_TOKEN_HEADER
from tritonize.cortex_endpoint.endpoint_process import CortexEndpointProcess
from tritonize.errors import ServeError
from tritonize.server.launcher import Launcher
from tritonize.server.local_launcher import LocalTritonServer, check_port_free
from tritonize.server.supervisor import stop_all, supervisor_for
from tritonize.server.triton_log import is_triton_log_line

if TYPE_CHECKING:
    from tritonize.server.docker_launcher import DockerOptions
    from tritonize.server.options import ServerOptions
    from tritonize.server.watch import WatchedSource


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def serve(
    options: ServerOptions,
    out: Callable[[str], Any] = print,
    ready_timeout_s: float = 300.0,
    show_progress: bool | None = None,
    docker: DockerOptions | None = None,
    watch: WatchedSource | None = None,
) -> int:
    """Run until interrupted (or, with docker.detach, until ready); return the exit code.
    watch: a server/watch.py WatchedSource (serve --watch), started once Triton is ready."""
    if not os.path.isdir(options.model_repository):
        raise ServeError(f"{options.model_repository}: no such model repository (run `tritonize build` first)")
    repository = read_built_repository(options.model_repository)
    apis = repository.names
    if not apis:
        raise ServeError(f"{options.model_repository} holds no models (no */config.pbtxt)")
    started = {"ready": False}
    out = _quiet_when_closed(out)
    if options.admin_token is None:
        options.admin_token = secrets.token_urlsafe(24)

    def on_output(line: str) -> None:
        # Before ready: Triton's startup log and tables are noise unless --verbose; predictor output
        # (print() in __init__, its logging, tritonize's lines) always shows.
        if started["ready"] or options.log_verbose or not is_triton_log_line(line):
            print(line, file=sys.stderr, flush=True)

    show_progress = sys.stderr.isatty() if show_progress is None else show_progress
    if docker is not None:
        from tritonize.server.docker_launcher import DockerTritonServer

        server: Launcher = DockerTritonServer(options, docker, on_output=on_output)
    else:
        server = LocalTritonServer(options, on_output=on_output, on_event=lambda line: out(f"[watchdog] {line}"))
    # The Cortex endpoint (POST /<api>): its own process, started once Triton is ready, stopped first.
    # Not with --detach: serve exits once the container is ready, and the front would die with it.
    detach = docker is not None and docker.detach
    front = CortexEndpointProcess(options) if options.cortex_port and not detach else None
    if front is not None:
        check_port_free(options.host, options.cortex_port, "cortex")
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        where = f" in Docker ({docker.image})" if docker is not None else ""
        out(f"Starting Triton{where} on {options.model_repository} ({len(apis)} API(s): {', '.join(apis)})")
        server.start()
        for name, gpus in sorted(server.cpu_overrides.items()):
            built = "every GPU" if gpus is None else "GPU " + ", ".join(map(str, gpus))
            out(f"  --cpu: {name} was built for {built}; running it on CPU instances")

        def on_wait(waited: float) -> None:
            if show_progress:
                sys.stderr.write(f"\r  loading models... {waited:4.1f} s")
                sys.stderr.flush()

        took = server.wait_ready(timeout=ready_timeout_s, on_wait=on_wait)
        if show_progress:
            sys.stderr.write("\n")
        started["ready"] = True
        for name, why in sorted(server.failed_apis.items()):
            out(f"warning: API {name!r} failed to load; serving the others (/v2/health/ready says false):\n{why}")
        if front is not None:
            front.start()
        out(
            ready_banner(
                options,
                [name for name in apis if name not in repository.batch_names],
                took,
                cortex=front is not None,
                streams=repository.streaming_names,
                batch=repository.batch_names,
            )
        )
        if server.detached:
            out(server.detach_message())
            return 0
        if watch is not None:
            watch.start(server, ready_timeout_s)
        supervisor_for(server, front, out, ready_timeout_s, on_ready=lambda ready: started.update(ready=ready)).run()
    except _Stop:
        out("Stopping Triton (finishing in-flight requests; Ctrl-C again to kill it now)...")
        return 0
    finally:
        # A second signal must not kill us before Triton is stopped (that would orphan it):
        # it cuts the graceful wait short instead.
        for sig in previous:
            signal.signal(sig, lambda signum, frame: server.kill())
        try:
            if watch is not None:
                watch.stop()
            stop_all(server, front, options)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _quiet_when_closed(out: Callable[[str], Any]) -> Callable[[str], None]:
    """`serve | head`: once our stdout is gone, keep serving without printing."""
    state = {"closed": False}

    def write(text: str) -> None:
        if not state["closed"]:
            try:
                out(text)
            except (BrokenPipeError, ValueError):
                state["closed"] = True

    return write


def _try_lines(options: ServerOptions, host: str, apis: list[str], streams: Sequence[str]) -> list[str]:
    """How to call the first API: /infer, or for a streaming API (decoupled) generate_stream."""
    plain = [api for api in apis if api not in streams]
    lines = []
    if streams:
        lines.append(f"  streaming APIs (predict --stream, /generate_stream): {', '.join(streams)}")
    if plain:
        example = json.dumps(
            {"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": ['{"x": 1}']}]}
        )
        return lines + [
            f"Try: tritonize predict {plain[0]} --data '{{\"x\": 1}}' --url {host}:{options.http_port}",
            f"  or: curl -s http://{host}:{options.http_port}/v2/models/{plain[0]}/infer -d '{example}'",
        ]
    if not apis:  # only BatchAPIs: nothing answers requests until a job loads one
        return lines
    return lines + [
        f"Try: tritonize predict {apis[0]} --stream --data '{{\"x\": 1}}' --url {host}:{options.http_port}",
        f"  or: curl -N http://{host}:{options.http_port}/v2/models/{apis[0]}/generate_stream "
        f"-d '{json.dumps({'payload': json.dumps({'x': 1})})}'",
    ]


def ready_banner(
    options: ServerOptions,
    apis: list[str],
    took: float,
    cortex: bool = False,
    streams: Sequence[str] = (),
    batch: Sequence[str] = (),
) -> str:
    """apis: the models loaded at start; batch: the BatchAPIs (loaded for each job, not at start)."""
    host = options.host
    lines = [
        f"Ready in {took:.1f} s.",
        f"  HTTP    http://{host}:{options.http_port}/v2/models/<api>/infer",
        f"  gRPC    {host}:{options.grpc_port}",
        f"  metrics http://{host}:{options.metrics_port}/metrics",
        f"  APIs    {', '.join(apis) or '(none loaded at start)'}",
        *([f"  BatchAPIs {', '.join(batch)} (not loaded: each job loads its workers)"] if batch else []),
        *(
            [f"  Cortex  http://{host}:{options.cortex_port}/<api>  (POST the payload, as Cortex clients do)"]
            if cortex
            else []
        ),
        *_try_lines(options, host, apis, streams),
        f"Admin APIs (model repository, shared memory, statistics, trace, logging) need the header "
        f"'{ADMIN_TOKEN_HEADER}: {options.admin_token}' (gRPC metadata: '{GRPC_ADMIN_TOKEN_HEADER}')",
        f"  for tritonize commands: export {ADMIN_TOKEN_ENV}={options.admin_token}",
        "Press Ctrl-C to stop.",
    ]
    if host in ("0.0.0.0", "::", ""):
        lines.insert(
            -1,
            f"warning: listening on {host or 'every address'}: anyone who can reach this machine can call the APIs; "
            "the admin token above is in this output (keep it out of shared logs, or pass your own with "
            f"--admin-token / {ADMIN_TOKEN_ENV})",
        )
    return "\n".join(lines)
