"""Load clients the benchmarks use and what they read off the servers.

HTTP: wrk (C, Debian package `wrk`; falls back to tritonize's aiohttp loadgen). gRPC: the
perf_analyzer that tritonclient[all]==2.51 ships (C++). Python clients would be the bottleneck
on a 2-core machine. server_cpu_s() sums the CPU time of a server's whole process tree
(tritonserver, its stubs, `tritonize serve`): CPU per request is far less sensitive to what other
processes on the machine do than requests per second.
"""

import asyncio
import csv
import json
import os
import re
import shutil
import subprocess
import tempfile

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_TICK = os.sysconf("SC_CLK_TCK")


def _ms(text):
    match = re.match(r"([0-9.]+)(us|ms|s|m)$", text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def client_name():
    return "wrk" if shutil.which("wrk") else "tritonize loadgen (aiohttp)"


def http_load(url, body, concurrency, duration_s, headers=None):
    """Closed-loop POSTs of `body` -> {throughput, requests, p50_ms, p90_ms, p99_ms, errors}."""
    if not shutil.which("wrk"):
        from tritonize.client.loadgen import run_http

        r = asyncio.run(run_http(url, body, concurrency, duration_s, headers=headers))
        return {
            "throughput": r.throughput,
            "requests": round(r.throughput * duration_s),
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
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": _ms(pct["50"]),
        "p90_ms": _ms(pct["90"]),
        "p99_ms": _ms(pct["99"]),
        "errors": int(errors.group(1)) if errors else 0,
    }


def grpc_load(grpc_url, model, payload_text, concurrency, duration_s, headers=None):
    """perf_analyzer over gRPC, one BYTES body a request -> the same keys as http_load."""
    from tritonize.client.perf_analyzer import perf_analyzer_binary, perf_analyzer_environment

    with tempfile.TemporaryDirectory() as tmp:
        data, report = os.path.join(tmp, "input.json"), os.path.join(tmp, "report.csv")
        with open(data, "w") as f:
            json.dump({"data": [{"payload": {"content": [payload_text], "shape": [1]}}]}, f)
        window_ms = max(int(duration_s * 1000 / 3), 500)
        cmd = [
            perf_analyzer_binary(),
            "-m",
            model,
            "-u",
            grpc_url,
            "-i",
            "grpc",
            "--input-data",
            data,
            "--concurrency-range",
            str(concurrency),
            "--measurement-interval",
            str(window_ms),
            # Three windows (its minimum), accepted whatever their spread: rounds interleave against noise.
            "--stability-percentage",
            "1000000",
            "--max-trials",
            "3",
            "--percentile",
            "99",
            "-f",
            report,
        ]
        for key, value in (headers or {}).items():
            cmd += ["-H", f"{key}:{value}"]
        env = perf_analyzer_environment(tmp)
        for _attempt in range(2):  # p99 of a window can still jump past any bound on a loaded machine
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode == 0:
                break
        if out.returncode != 0:
            raise RuntimeError(f"perf_analyzer failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        with open(report) as f:
            row = next(csv.DictReader(f))
    count = re.search(r"Request count: (\d+)", out.stdout)
    errors = re.search(r"Failed requests?: ?(\d+)", out.stdout, re.I)
    return {
        "throughput": float(row["Inferences/Second"]),
        "requests": int(count.group(1)) if count else None,
        "p50_ms": float(row["p50 latency"]) / 1000,
        "p90_ms": float(row["p90 latency"]) / 1000,
        "p99_ms": float(row["p99 latency"]) / 1000,
        "errors": int(errors.group(1)) if errors else 0,
    }


def _children():
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(name))
    return kids


def server_cpu_s(root_pid):
    """CPU seconds (user + system) used so far by root_pid and all its descendants, in all and by
    part: {"total", "stub" (python-backend instance processes), "tritonserver", "other" (launchers)}."""
    kids, todo, parts = _children(), [root_pid], {"total": 0.0, "stub": 0.0, "tritonserver": 0.0, "other": 0.0}
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open(f"/proc/{pid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / _TICK
        part = "stub" if name.startswith("triton_python") else "tritonserver" if name == "tritonserver" else "other"
        parts[part] += seconds
        parts["total"] += seconds
    return parts


def served_requests(http_url, model, token=None):
    """How many requests the model has answered (Triton's statistics: success + fail), or None."""
    import urllib.error
    import urllib.request

    from tritonize.adapter.runtime.constants import ADMIN_TOKEN_HEADER

    headers = {ADMIN_TOKEN_HEADER: token} if token else {}
    request = urllib.request.Request(f"http://{http_url}/v2/models/{model}/stats", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            stats = json.load(response)["model_stats"]
    except urllib.error.HTTPError:  # PyTriton restricts its statistics endpoint
        return None
    inference = stats[0]["inference_stats"] if stats else {}
    return int(inference.get("success", {}).get("count", 0)) + int(inference.get("fail", {}).get("count", 0))
