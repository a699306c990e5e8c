"""Streaming benchmark: tritonize's decoupled path vs the same generator in-process vs PyTriton's decoupled model.

    python benchmarks/stream_bench.py [--reps 2] [--duration 4] [--write]

* TTFC (time to first chunk) at concurrency 1, through tritonize (gRPC stream and HTTP SSE) minus
  the same generator's TTFC in-process (the runtime's Pipeline.stream, no Triton): goal <= 2 ms.
* Chunk throughput at concurrency 16, each stream 64 small JSON chunks with no work, divided by the
  same generator consumed in-process (one thread): goal >= 0.5 on a 2-core machine.
* PyTriton 0.7's decoupled @batch model (benchmarks/pytriton_stream.py) on the same work and client.
Both servers run side by side and are measured interleaved, rep by rep, so load on a shared machine
hits them alike; medians are reported. --write appends a dated "Streaming" section to RESULTS.md.
"""

import argparse
import asyncio
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import harness  # noqa: E402

from tritonize.adapter.runtime.params import ParameterRules  # noqa: E402
from tritonize.adapter.runtime.pipeline import Pipeline  # noqa: E402
from tritonize.adapter.runtime.repository_model import ApiSettings, PredictorSettings  # noqa: E402
from tritonize.client import stream_load  # noqa: E402

CHUNKS = 64
BODY = json.dumps({"n": CHUNKS}).encode()
ONE_CHUNK = json.dumps({"n": 1}).encode()  # TTFC without the stream's later chunks competing for the cores
PROJECT = os.path.join(ROOT, "benchmarks", "projects", "stream", "predictor.py")


class _Predictor:
    """The bench predictor, called as the runtime calls it (LoadedPredictor's signature)."""

    wants_payload = True

    def __init__(self):
        sys.path.insert(0, os.path.dirname(PROJECT))
        from predictor import PythonPredictor

        self.instance = PythonPredictor()

    def predict(self, payload, query_params, headers):
        return self.instance.predict(payload)


def in_process(seconds=2.0):
    """(TTFC in ms, chunks/s) of the runtime's stream pipeline on the bench predictor, no Triton."""
    pipeline = Pipeline(
        _Predictor(), ApiSettings(name="bench", predictor=PredictorSettings(path="p.py")), ParameterRules()
    )
    ttfcs, chunks, start = [], 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        steps = pipeline.stream([(BODY, "{}")])
        next(steps)
        ttfcs.append(time.perf_counter() - t0)
        chunks += 1 + sum(1 for events in steps for _, reply in events if reply is not None)
    return statistics.median(ttfcs) * 1e3, chunks / (time.perf_counter() - start)


def _grpc_inputs(body):
    def make(module):
        inp = module.InferInput("payload", [1, 1], "BYTES")
        data = np.empty((1, 1), dtype=np.object_)
        data[0, 0] = body
        inp.set_data_from_numpy(data)
        return [inp]

    return make


def measure(grpc_url, http_url, model, concurrency, duration_s, protocol, body=BODY):
    if protocol == "grpc":
        run = stream_load.run_grpc(grpc_url, model, _grpc_inputs(body), concurrency, duration_s)
    else:
        body = json.dumps({"payload": body.decode()}).encode()
        run = stream_load.run_http(
            f"http://{http_url}/v2/models/{model}/generate_stream", body, concurrency, duration_s
        )
    result = asyncio.run(run)
    if result.errors or not result.streams:
        raise RuntimeError(f"{model} c={concurrency} {protocol}: {result}")
    return result


def servers(work):
    repo = os.path.join(work, "repo")
    subprocess.run(
        [sys.executable, "-m", "tritonize.cli", "build", PROJECT, "--name", "stream", "-o", repo],
        check=True,
        capture_output=True,
    )
    t_http, t_grpc, t_metrics = harness.free_ports(3)
    serve = [sys.executable, "-m", "tritonize.cli", "serve", repo, "--http-port", str(t_http)]
    serve += ["--grpc-port", str(t_grpc), "--metrics-port", str(t_metrics)]
    p_http, p_grpc, p_metrics = harness.free_ports(3)
    pytriton = [sys.executable, os.path.join(ROOT, "benchmarks", "pytriton_stream.py")]
    pytriton += [str(p_http), str(p_grpc), str(p_metrics)]
    return (
        harness.process(serve, f"http://127.0.0.1:{t_http}/v2/health/ready", log_name="tritonize-stream"),
        harness.process(pytriton, f"http://127.0.0.1:{p_http}/v2/models/stream_pytriton/ready", log_name="pytriton"),
        {
            "tritonize": (f"127.0.0.1:{t_grpc}", f"127.0.0.1:{t_http}", "stream"),
            "pytriton": (f"127.0.0.1:{p_grpc}", f"127.0.0.1:{p_http}", "stream_pytriton"),
        },
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--write", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = {}  # (server, protocol, concurrency) -> [StreamLoadResult]
    local = []
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as work:
        tritonize_server, pytriton_server, targets = servers(work)
        with tritonize_server, pytriton_server:
            for grpc_url, http_url, model in targets.values():  # warm-up
                measure(grpc_url, http_url, model, 2, 1.0, "grpc")
            for _ in range(args.reps):
                local.append(in_process())
                for concurrency, body in ((1, ONE_CHUNK), (1, BODY), (16, BODY)):
                    for protocol in ("grpc", "http"):
                        for name, (grpc_url, http_url, model) in targets.items():
                            result = measure(grpc_url, http_url, model, concurrency, args.duration, protocol, body)
                            key = (name, protocol, concurrency) if body is BODY else (name, protocol, "one")
                            rows.setdefault(key, []).append(result)
                            print(
                                f"{name:9} {protocol:4} c={concurrency:<2} TTFC p50 {result.ttfc_p50_ms:6.2f} ms  "
                                f"{result.chunks_per_s:8.0f} chunks/s",
                                flush=True,
                            )
    report = render(rows, local, args, load_before, os.getloadavg())
    print(report)
    if args.write:
        with open(os.path.join(ROOT, "benchmarks", "RESULTS.md"), "a", encoding="utf-8") as f:
            f.write("\n" + report)


def render(rows, local, args, load_before, load_after):
    ttfc_local = statistics.median(t for t, _ in local)
    chunks_local = statistics.median(c for _, c in local)

    def med(key, field):
        return statistics.median(getattr(r, field) for r in rows[key])

    lines = [
        f"## Streaming ({datetime.date.today().isoformat()}, benchmarks/stream_bench.py)",
        "",
        f"Generator of {CHUNKS} small JSON chunks, no work; closed loop, {args.reps} interleaved reps of "
        f"{args.duration:g} s, medians; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"(2 cores, client on the same machine). In-process (Pipeline.stream, no Triton): TTFC "
        f"{ttfc_local * 1e3:.0f} us, {chunks_local:,.0f} chunks/s on one thread.",
        "",
        "| server | protocol | TTFC c=1 p50 (ms) | TTFC - in-process (ms) | TTFC c=1, 1-chunk stream (ms) "
        "| chunks/s c=16 | ÷ in-process | TTFC c=16 p50 (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("tritonize", "pytriton"):
        for protocol in ("grpc", "http"):
            ttfc = med((name, protocol, 1), "ttfc_p50_ms")
            chunks = med((name, protocol, 16), "chunks_per_s")
            lines.append(
                f"| {name} | {protocol} | {ttfc:.2f} | {ttfc - ttfc_local:.2f} | "
                f"{med((name, protocol, 'one'), 'ttfc_p50_ms'):.2f} | {chunks:,.0f} | "
                f"{chunks / chunks_local:.3f} | {med((name, protocol, 16), 'ttfc_p50_ms'):.2f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
