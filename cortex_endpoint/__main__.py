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
    args = parser.parse_args(argv)

    from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV, REQUEST_TIMEOUT_ENV
    from tritonize.errors import TritonizeError

    from .routes import load_routes

    os.environ.pop(ADMIN_TOKEN_ENV, None)  # the endpoint needs no admin rights: nothing it starts gets them
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
    if args.parent_pid:
        _die_with_parent()
    children = []
    for _ in range((args.workers or default_workers()) - 1):
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            run(args, routes, sock, os.getppid())  # a worker lives as long as the first process
            os._exit(0)
        children.append(pid)
    # SIGTERM reaches the workers at once (they drain beside this process), not after this one drained.
    run(args, routes, sock, args.parent_pid, on_stop=lambda: _signal(children, signal.SIGTERM))
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


def run(args, routes, sock, parent_pid, on_stop=None):
    from . import server as http
    from .app import CORS, CortexFront
    from .streaming import GrpcStreamer
    from .upstream import TritonPool

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
        )
        server = http.HttpServer(
            front.handle,
            args.max_body_bytes,
            CORS,
            log_error=_log_error,
            header_timeout_s=args.header_timeout or http.HEADER_TIMEOUT_S,
            body_timeout_s=args.body_timeout or http.BODY_TIMEOUT_S,
        )
        if parent_pid:
            loop.create_task(_watch_parent(parent_pid, stopping))
        try:
            await server.serve(
                sock,
                stop,
                grace_s=args.grace_period,
                drain_notice_s=args.drain_notice,
                on_drain=lambda: setattr(front, "draining", True),
            )
        finally:
            await front.close()

    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on every platform): asyncio's loop is slower, not wrong
        asyncio.run(serve())
    else:
        uvloop.run(serve())


async def _watch_parent(parent_pid, stopping):
    while os.getppid() == parent_pid:
        await asyncio.sleep(PARENT_POLL_S)
    stopping()


def _log_error(exc):
    print(f"tritonize front: request failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
