"""python -m tritonize.front: run the Cortex endpoint for one model repository (started by `tritonize serve`)."""

import argparse
import asyncio
import ctypes
import os
import signal
import sys

PARENT_POLL_S = 1.0


def _die_with_parent(parent_pid):
    """SIGTERM when the parent dies (Linux), and a poll for other systems and for races at start."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    async def watch():
        while os.getppid() == parent_pid:
            await asyncio.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    return watch


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tritonize.front")
    parser.add_argument("--repository", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--triton-host", default="127.0.0.1")
    parser.add_argument("--triton-http-port", type=int, required=True)
    parser.add_argument("--triton-grpc-port", type=int, required=True)
    parser.add_argument("--max-body-bytes", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the listening socket")
    args = parser.parse_args(argv)

    import uvicorn

    from tritonize.errors import TritonizeError

    from .app import CortexFront
    from .routes import load_routes
    from .streaming import GrpcStreamer
    from .upstream import TritonPool

    try:
        routes = load_routes(args.repository)
    except TritonizeError as exc:
        print(f"tritonize front: {exc}", file=sys.stderr)
        return 2
    app = CortexFront(
        routes,
        TritonPool(args.triton_host, args.triton_http_port),
        args.max_body_bytes,
        GrpcStreamer(args.triton_host, args.triton_grpc_port),
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="none",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )
    sock = config.bind_socket()
    parent = args.parent_pid or None
    children = []
    for _ in range(max(args.workers, 1) - 1):
        pid = os.fork()
        if pid == 0:
            _serve(uvicorn.Server(config), sock, os.getppid())  # a worker dies with the first process
            os._exit(0)
        children.append(pid)
    _serve(uvicorn.Server(config), sock, parent)
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return 0


def _serve(server, sock, parent_pid):
    watch = _die_with_parent(parent_pid) if parent_pid else None

    async def run():
        if watch is not None:
            asyncio.ensure_future(watch())
        await server.serve(sockets=[sock])

    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on every platform): asyncio's loop is slower, not wrong
        asyncio.run(run())
    else:
        uvloop.run(run())


if __name__ == "__main__":
    sys.exit(main())
