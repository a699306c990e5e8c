"""The servers the benchmarks start: `tritonize serve`, a plain tritonserver, PyTriton, FastAPI.

Each is a context manager yielding the process (with .took: seconds until it answered) and
its addresses. All listen on free 127.0.0.1 ports.
"""

import contextlib
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def wait_http(url, process, timeout=300, method="GET"):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}) before {url} answered")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=1) as r:
                if r.status < 500:
                    return time.monotonic() - start
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and method == "GET" and not url.endswith("/ready"):
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout}s")


@contextlib.contextmanager
def process(cmd, ready_url, env=None, log_name="server"):
    log = tempfile.NamedTemporaryFile("w+", prefix=f"bench-{log_name}-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT)
    try:
        proc.took = wait_http(ready_url, proc)
        yield proc
    except Exception:
        log.seek(0)
        sys.stderr.write(log.read()[-3000:])
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        # PyTriton leaves its 4 MiB shared-memory pools behind when stopped by a signal.
        for region in glob.glob(f"/dev/shm/pytrtion{proc.pid}-*"):
            with contextlib.suppress(OSError):
                os.unlink(region)
        log.close()
        os.unlink(log.name)


class Addresses:
    def __init__(self, http, grpc):
        self.http, self.grpc = f"127.0.0.1:{http}", f"127.0.0.1:{grpc}"


def tritonize_serve(repo, extra_args=()):
    http, grpc, metrics = free_ports(3)
    cmd = [
        sys.executable,
        "-m",
        "tritonize.cli",
        "serve",
        repo,
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc),
        "--metrics-port",
        str(metrics),
        "--no-cortex",  # Triton's own ports only; benchmarks/cortex_endpoint_bench.py measures the Cortex endpoint
        *extra_args,
    ]
    return process(cmd, f"http://127.0.0.1:{http}/v2/health/ready", log_name="tritonize"), Addresses(http, grpc)


def plain_tritonserver(repo, workdir, extra_args=()):
    """The same tritonserver binary with only the flags any deployment needs: ports (on 127.0.0.1),
    repository, backend dir and --disable-auto-complete-config (the configs are complete)."""
    from tritonize.host.triton_install import find_triton

    triton = find_triton()
    backends = triton.make_backend_dir(os.path.join(workdir, "plain-backends"))
    http, grpc, metrics = free_ports(3)
    cmd = [
        triton.binary,
        f"--model-repository={repo}",
        f"--backend-directory={backends}",
        "--disable-auto-complete-config",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        "--metrics-address=127.0.0.1",
        f"--http-port={http}",
        f"--grpc-port={grpc}",
        f"--metrics-port={metrics}",
        *extra_args,
    ]
    # environment(): the stub runs this Python (PATH, LD_LIBRARY_PATH), as for any python-backend deployment.
    return (
        process(cmd, f"http://127.0.0.1:{http}/v2/health/ready", env=triton.environment(), log_name="plain"),
        Addresses(http, grpc),
    )


def fastapi_server(predictor_path, workers=2, config="{}"):
    (port,) = free_ports(1)
    env = dict(os.environ, BENCH_PREDICTOR=predictor_path, BENCH_CONFIG=config)
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.fastapi_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return process(cmd, f"http://127.0.0.1:{port}/docs", env=env, log_name="fastapi"), f"127.0.0.1:{port}"


def pytriton_server():
    http, grpc, metrics = free_ports(3)
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "pytriton_echo.py"), str(http), str(grpc), str(metrics)]
    return (
        process(cmd, f"http://127.0.0.1:{http}/v2/models/echo_pytriton/ready", log_name="pytriton"),
        Addresses(http, grpc),
    )
