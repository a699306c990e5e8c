"""python -m tritonize.cortex_endpoint: the Cortex endpoint for one model repository (started by `serve`)."""

import argparse
import asyncio
import ctypes
import os
import signal
import socket
import sys

PARENT_POLL_S = 1.0


def default_workers():
    # Two event loops measured 10-70 % more throughput than one on a loaded 2-CPU machine (RESULTS.md).
    return min(2, os.cpu_count() or 1)


def _die_with_parent():
    """SIGTERM when the parent dies (Linux); run() also polls, for other systems and races at start."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def bind(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tritonize.cortex_endpoint")
    parser.add_argument("--repository", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--triton-host", default="127.0.0.1")
    parser.add_argument("--triton-http-port", type=int, required=True)
    parser.add_argument("--triton-grpc-port", type=int, required=True)
    parser.add_argument("--max-body-bytes", type=int, default=0)
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=0,
        help="seconds: serve --request-timeout, for APIs whose spec sets none (a dead instance after it: 504)",
    )
    parser.add_argument(
        "--grace-period", type=float, default=30.0, help="on SIGTERM: seconds in-flight requests and streams may take"
    )
    parser.add_argument(
        "--drain-notice", type=float, default=0.0, help="on SIGTERM: seconds readiness says false before closing"
    )
    parser.add_argument("--header-timeout", type=float, default=None, help="seconds to receive a header block")
    parser.add_argument("--body-timeout", type=float, default=None, help="seconds to receive a whole body")
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    parser.add_argument(
        "--workers", type=int, default=0, help=f"processes sharing the listening socket (default: {default_workers()})"
    )
    parser.add_argument(
        "--job-store",
        default=None,
        help="the BatchAPI job store folder (default: $TRITONIZE_JOB_STORE, else one under ~/.cache/tritonize/jobs)",
    )
    parser.add_argument(
        "--admin-token-stdin",
        action="store_true",
        help="read Triton's admin token from the first line of stdin (a BatchAPI's jobs load its model)",
    )
    args = parser.parse_args(argv)
    # Never in argv or the environment: predictors running as the same user can read /proc/<pid>/environ.
    admin_token = (sys.stdin.readline().strip() or None) if args.admin_token_stdin else None

    from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV, REQUEST_TIMEOUT_ENV
    from tritonize.errors import TritonizeError

    from .routes import batch_apis, load_routes

    os.environ.pop(ADMIN_TOKEN_ENV, None)  # admin rights only for BatchAPI jobs, from stdin, never inherited
    try:
        environ = {REQUEST_TIMEOUT_ENV: str(args.request_timeout)} if args.request_timeout > 0 else os.environ
        routes = load_routes(args.repository, environ)
    except TritonizeError as exc:
        print(f"tritonize front: {exc}", file=sys.stderr)
        return 2
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"tritonize front: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    jobs = None
    if batch_apis(routes):
        from tritonize.batch.store import default_store

        jobs = (args.job_store or default_store(args.repository, os.environ), admin_token)
    if args.parent_pid:
        _die_with_parent()
    children = []
    for _ in range((args.workers or default_workers()) - 1):
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            run(args, routes, sock, os.getppid(), jobs=jobs)  # a worker lives as long as the first process
            os._exit(0)
        children.append(pid)
    # SIGTERM reaches the workers at once (they drain beside this process), not after this one drained.
    # The first process alone runs the jobs (batch/manager.py's JobEngine); every process answers their routes.
    run(args, routes, sock, args.parent_pid, on_stop=lambda: _signal(children, signal.SIGTERM), jobs=jobs, engine=True)
    for pid in children:
        _signal([pid], signal.SIGTERM)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return 0


def _signal(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def run(args, routes, sock, parent_pid, on_stop=None, jobs=None, engine=False):
    from . import server as http
    from .app import CORS, CORS_WITH_JOBS, CortexFront
    from .streaming import GrpcStreamer
    from .upstream import TritonPool

    job_routes = job_engine = None
    if jobs is not None:
        from tritonize.adapter.runtime.repository_model import read_repository_settings

        from .jobs import JobRoutes
        from .routes import batch_apis

        store_root, admin_token = jobs
        apis = read_repository_settings(args.repository).apis
        job_routes = JobRoutes(store_root, batch_apis(routes), {name: apis[name] for name in batch_apis(routes)})
        if engine:
            job_engine = _job_engine(args, store_root, batch_apis(routes), admin_token)

    async def serve():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def stopping():
            if not stop.done():
                stop.set_result(None)
                if on_stop is not None:
                    on_stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
        front = CortexFront(
            routes,
            TritonPool(args.triton_host, args.triton_http_port),
            GrpcStreamer(args.triton_host, args.triton_grpc_port),
            jobs=job_routes,
        )
        server = http.HttpServer(
            front.handle,
            args.max_body_bytes,
            CORS if job_routes is None else CORS_WITH_JOBS,
            log_error=_log_error,
            header_timeout_s=args.header_timeout or http.HEADER_TIMEOUT_S,
            body_timeout_s=args.body_timeout or http.BODY_TIMEOUT_S,
        )
        if parent_pid:
            loop.create_task(_watch_parent(parent_pid, stopping))
        if job_engine is not None:
            job_engine.start()
        try:
            await server.serve(
                sock,
                stop,
                grace_s=args.grace_period,
                drain_notice_s=args.drain_notice,
                on_drain=lambda: setattr(front, "draining", True),
            )
        finally:
            if job_engine is not None:  # progress is on disk; in-flight batches run again after a restart
                await loop.run_in_executor(None, job_engine.stop)
            await front.close()

    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on every platform): asyncio's loop is slower, not wrong
        asyncio.run(serve())
    else:
        uvloop.run(serve())


def _job_engine(args, store_root, apis, admin_token):
    import functools

    from tritonize.adapter.runtime.repository_model import batch_load_config
    from tritonize.batch.manager import JobEngine
    from tritonize.batch.triton import TritonClient

    def load_config(api, workers, job_spec):
        return batch_load_config(args.repository, api, workers, job_spec)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    client_factory = functools.partial(TritonClient, args.triton_host, args.triton_http_port, admin_token)
    return JobEngine(store_root, apis, client_factory, load_config, log=log)


async def _watch_parent(parent_pid, stopping):
    while os.getppid() == parent_pid:
        await asyncio.sleep(PARENT_POLL_S)
    stopping()


def _log_error(exc):
    print(f"tritonize front: request failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
