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
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    parser.add_argument(
        "--workers", type=int, default=0, help=f"processes sharing the listening socket (default: {default_workers()})"
    )
    args = parser.parse_args(argv)

    from tritonize.errors import TritonizeError

    from .routes import load_routes

    try:
        routes = load_routes(args.repository)
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
    run(args, routes, sock, args.parent_pid)
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return 0


def run(args, routes, sock, parent_pid):
    from .app import CORS, CortexFront
    from .server import HttpServer
    from .streaming import GrpcStreamer
    from .upstream import TritonPool

    async def serve():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        front = CortexFront(
            routes,
            TritonPool(args.triton_host, args.triton_http_port),
            GrpcStreamer(args.triton_host, args.triton_grpc_port),
        )
        server = HttpServer(front.handle, args.max_body_bytes, CORS, log_error=_log_error)
        if parent_pid:
            loop.create_task(_watch_parent(parent_pid, stop))
        try:
            await server.serve(sock, stop)
        finally:
            await front.close()

    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on every platform): asyncio's loop is slower, not wrong
        asyncio.run(serve())
    else:
        uvloop.run(serve())


async def _watch_parent(parent_pid, stop):
    while os.getppid() == parent_pid:
        await asyncio.sleep(PARENT_POLL_S)
    if not stop.done():
        stop.set_result(None)


def _log_error(exc):
    print(f"tritonize front: request failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
