"""Servers and the HTTP load client the benchmarks use (wrk when installed, else tritonize's loadgen)."""

import asyncio
import contextlib
import glob
import os
import re
import shutil
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
        took = wait_http(ready_url, proc)
        yield took
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


def tritonize_serve(repo):
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
        "--no-cortex",  # Triton's own ports only; benchmarks/front_bench.py measures the Cortex endpoint
    ]
    return process(cmd, f"http://127.0.0.1:{http}/v2/health/ready", log_name="tritonize"), f"127.0.0.1:{http}"


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
        f"127.0.0.1:{http}",
    )


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text):
    match = re.match(r"([0-9.]+)(us|ms|s|m)$", text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def client_name():
    return "wrk" if shutil.which("wrk") else "tritonize loadgen (aiohttp)"


def http_load(url, body, concurrency, duration_s, headers=None):
    """Closed-loop POSTs of `body` -> {throughput, p50_ms, p90_ms, p99_ms, errors}."""
    if not shutil.which("wrk"):
        from tritonize.client.loadgen import run_http

        r = asyncio.run(run_http(url, body, concurrency, duration_s, headers=headers))
        return {
            "throughput": r.throughput,
            "p50_ms": r.p50_ms,
            "p90_ms": r.p90_ms,
            "p99_ms": r.p99_ms,
            "errors": r.errors,
        }
    with tempfile.TemporaryDirectory() as tmp:
        body_path, script = os.path.join(tmp, "body"), os.path.join(tmp, "post.lua")
        with open(body_path, "wb") as f:
            f.write(body)
        lines = [
            'wrk.method = "POST"',
            f'local f = io.open("{body_path}", "rb")',
            "wrk.body = f:read('*a')",
            "f:close()",
        ]
        for key, value in (headers or {"Content-Type": "application/json"}).items():
            lines.append(f'wrk.headers["{key}"] = "{value}"')
        with open(script, "w") as f:
            f.write("\n".join(lines) + "\n")
        out = subprocess.run(
            ["wrk", f"-t{min(concurrency, 2)}", f"-c{concurrency}", f"-d{duration_s}s", "--latency", "-s", script, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    pct = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "throughput": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
        "p50_ms": _ms(pct["50"]),
        "p90_ms": _ms(pct["90"]),
        "p99_ms": _ms(pct["99"]),
        "errors": int(errors.group(1)) if errors else 0,
    }
