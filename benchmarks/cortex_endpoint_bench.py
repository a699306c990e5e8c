"""The Cortex endpoint (cortex_endpoint/, POST /<api>) against Triton's own /infer and FastAPI, in one run.

    python benchmarks/cortex_endpoint_bench.py [--duration 4] [--reps 3] [--skip-mlp]

Interleaved rounds (Triton /infer, the front, FastAPI) so a noisy machine hits them alike; reports
medians and the ratios issue 16 sets goals for: echo throughput cortex_endpoint/Triton at c=32 (>= 0.7),
added p50 at c=1 (<= 1 ms), MLP throughput cortex_endpoint/Triton at c=32 (>= 0.95).
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.harness import fastapi_server, free_ports, process  # noqa: E402
from benchmarks.loads import client_name, http_load  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECTS = os.path.join(ROOT, "benchmarks", "projects")


def tritonize(*args):
    subprocess.run([sys.executable, "-m", "tritonize.cli", *args], check=True, capture_output=True, cwd=ROOT)


def envelope(text):
    return json.dumps({"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": [text]}]}).encode()


@contextlib.contextmanager
def serve_with_front(repo):
    http, grpc, metrics, cortex = free_ports(4)
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
        "--cortex-port",
        str(cortex),
    ]
    with process(cmd, f"http://127.0.0.1:{cortex}/_tritonize/ready", log_name="tritonize-front"):
        yield f"127.0.0.1:{http}", f"127.0.0.1:{cortex}"


def _processes(pattern):
    """PIDs whose command line contains `pattern`, with all their descendants (the python-backend stubs)."""
    found, children = set(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
        if pattern in cmdline:
            found.add(int(entry))
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cpu_seconds(pids):
    """User + system CPU time of these processes (those still alive)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def measure(targets, concurrencies, reps, duration, groups):
    """targets: {label: (url, body)} -> {(label, c): medians}, rounds interleaved; groups: {name: pids} whose
    CPU per request is recorded too (load-independent where the machine is shared: RESULTS.md)."""
    raw = {}
    for c in concurrencies:
        for _ in range(reps):
            for label, (url, body) in targets.items():
                before = {name: cpu_seconds(pids) for name, pids in groups.items()}
                result = http_load(url, body, c, duration)
                served = max(result["throughput"] * duration, 1)
                for name, pids in groups.items():
                    result[f"{name}_us"] = (cpu_seconds(pids) - before[name]) / served * 1e6
                raw.setdefault((label, c), []).append(result)
    return {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for key, rs in raw.items()}


def scenario(name, api, repo, predictor, payload, fastapi_workers, args):
    body = json.dumps(payload).encode()
    with serve_with_front(repo) as (triton, cortex):
        fastapi, fastapi_url = fastapi_server(predictor, workers=fastapi_workers)
        with fastapi:
            targets = {
                "Triton /v2/models/<api>/infer": (f"http://{triton}/v2/models/{api}/infer", envelope(body.decode())),
                "Cortex endpoint POST /<api>": (f"http://{cortex}/{api}", body),
                f"FastAPI/uvicorn ({fastapi_workers} worker{'s' if fastapi_workers > 1 else ''})": (
                    f"http://{fastapi_url}/predict",
                    body,
                ),
            }
            groups = {
                "front": _processes(f"tritonize.cortex_endpoint --repository {repo} "),
                "triton": _processes(f"--model-repository={repo}"),
            }
            results = measure(targets, (1, 32), args.reps, args.duration, groups)
    return name, results


def report(scenarios):
    lines = []
    for name, results in scenarios:
        lines.append(f"\n{name}\n")
        lines.append("| server | c=1 req/s | c=1 p50 ms | c=32 req/s | c=32 p50 / p99 ms | errors |")
        lines.append("|---|---|---|---|---|---|")
        labels = sorted({label for label, _ in results}, key=list(dict.fromkeys(k for k, _ in results)).index)
        for label in labels:
            one, many = results[(label, 1)], results[(label, 32)]
            lines.append(
                f"| {label} | {one['throughput']:.0f} | {one['p50_ms']:.2f} | {many['throughput']:.0f} | "
                f"{many['p50_ms']:.2f} / {many['p99_ms']:.2f} | {one['errors'] + many['errors']:.0f} |"
            )
        triton, front = labels[0], labels[1]
        ratio = results[(front, 32)]["throughput"] / results[(triton, 32)]["throughput"]
        added = results[(front, 1)]["p50_ms"] - results[(triton, 1)]["p50_ms"]
        fastapi = results[(front, 32)]["throughput"] / results[(labels[2], 32)]["throughput"]
        lines.append(
            f"\nfront / Triton throughput at c=32: **{ratio:.2f}**; added p50 at c=1: **{added:+.2f} ms**; "
            f"front / FastAPI at c=32: {fastapi:.2f}"
        )
        via, direct = results[(front, 32)], results[(triton, 32)]
        lines.append(
            f"CPU per request at c=32: front {via['front_us']:.0f} us; Triton {direct['triton_us']:.0f} us direct, "
            f"{via['triton_us']:.0f} us via the front"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=4, help="seconds per point (wrk takes whole seconds)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-mlp", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="front-bench-") as work:
        echo_repo, mlp_repo = os.path.join(work, "echo_repo"), os.path.join(work, "mlp_repo")
        echo = os.path.join(PROJECTS, "echo", "predictor.py")
        mlp = os.path.join(PROJECTS, "mlp", "predictor.py")
        tritonize("build", echo, "-o", echo_repo, "--name", "echo")
        scenarios = [scenario("JSON echo", "echo", echo_repo, echo, {"x": [1.0, 2.0, 3.0, 4.0]}, 1, args)]
        if not args.skip_mlp:
            tritonize("build", mlp, "-o", mlp_repo, "--name", "mlp", "--max-batch-size", "32", "--instances", "2")
            payload = {"x": [float(i % 7) / 7 for i in range(256)]}
            scenarios.append(scenario("batched MLP (2 instances)", "mlp", mlp_repo, mlp, payload, 2, args))
    load = os.getloadavg()
    print(
        f"client: {client_name()}; {args.reps} interleaved rounds of {args.duration:g} s; "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; {os.cpu_count()} CPUs"
    )
    print(report(scenarios))


if __name__ == "__main__":
    main()
