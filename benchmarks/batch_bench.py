"""Items/s of a BatchAPI job against the same torch model called in-process in a loop (issue 25).

A small MLP is fabricated here (weights saved into a project folder); the BatchAPI's predict() runs the
whole batch as one tensor. The baseline is what a user would otherwise run: the same model, the same
batches, `model(torch.tensor(batch))` in a loop in one process, right before and right after each job
(averaged: on a shared machine the load moves). Both use one torch thread per worker, so
the per-worker ratio compares like with like:

    per-worker ratio = (job items/s / workers) / in-process items/s

Two job rates are reported: steady (from the first batch done to the last, read off the job's progress:
what a running job sustains) and end to end (submission to the job's end, including the workers'
start: importing torch and loading the model in each Triton instance). Goal: steady per-worker >= 0.8.

    python benchmarks/batch_bench.py [--workers 1 2] [--batches 200] [--batch-size 64] [--hidden 1024 4096]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FEATURES, CLASSES = 64, 10

PREDICTOR = """
import torch


class PythonPredictor:
    def __init__(self, config, job_spec):
        torch.set_num_threads(int(config.get("threads", 1)))
        self.model = torch.jit.load(config["model"]).eval()

    def predict(self, payload, batch_id):
        with torch.inference_mode():
            self.model(torch.tensor(payload, dtype=torch.float32))
"""

SPEC = """- name: {name}
  kind: BatchAPI
  predictor:
    type: python
    path: predictor.py
    config: {{model: {model}, threads: 1}}
"""


def fabricate_model(path, hidden):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, CLASSES),
    ).eval()
    torch.jit.script(model).save(path)


def make_items(count):
    import random

    rng = random.Random(0)
    return [[round(rng.uniform(-1, 1), 4) for _ in range(FEATURES)] for _ in range(count)]


def in_process(model_path, items, batch_size):
    """items/s of the same model in this process: one thread, a loop over the same batches."""
    import torch

    torch.set_num_threads(1)
    model = torch.jit.load(model_path).eval()
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    with torch.inference_mode():
        model(torch.tensor(batches[0], dtype=torch.float32))  # warm up
        start = time.perf_counter()
        for batch in batches:
            model(torch.tensor(batch, dtype=torch.float32))
        took = time.perf_counter() - start
    return len(items) / took


def run_job(client, api, items, batch_size, workers):
    """-> (steady items/s, end-to-end items/s, final job status)."""
    total = -(-len(items) // batch_size)
    start = time.perf_counter()
    job_id = client.submit_job(api, items=items, batch_size=batch_size, workers=workers)["job_id"]
    first = None  # (time, batches done) when the first batches were done
    while True:
        job = client.job_status(api, job_id)
        done = int((job.get("batch_metrics") or {}).get("succeeded") or 0)
        now = time.perf_counter()
        if first is None and done > 0:
            first = (now, done)
        if job["status"] not in ("status_pending", "status_enqueuing", "status_running"):
            break
        time.sleep(0.05)
    end = time.perf_counter()
    steady = None
    if first is not None and done > first[1]:
        steady = (done - first[1]) * batch_size / (end - first[0])
    return steady, len(items) / (end - start), job, total


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[1024, 4096],
                        help="MLP widths, one model each (1024: ~2 ms a batch of 64, 4096: ~25 ms)")  # fmt: skip
    parser.add_argument("--json", help="Also write the results here.")
    args = parser.parse_args()

    from tritonize import Client

    work = tempfile.mkdtemp(prefix="batch-bench-")
    project = os.path.join(work, "project")
    os.makedirs(project)
    with open(os.path.join(project, "predictor.py"), "w") as f:
        f.write(PREDICTOR)
    models = {}
    with open(os.path.join(project, "cortex.yaml"), "w") as f:
        for hidden in args.hidden:
            models[hidden] = os.path.join(work, f"mlp{hidden}.pt")
            fabricate_model(models[hidden], hidden)
            f.write(SPEC.format(name=f"mlp{hidden}", model=json.dumps(models[hidden])))
    repo = os.path.join(work, "model_repository")
    subprocess.run([sys.executable, "-m", "tritonize.cli", "build", os.path.join(project, "cortex.yaml"), "-o", repo],
                   check=True, capture_output=True)  # fmt: skip
    items = make_items(args.batches * args.batch_size)

    results = {"uptime_before": uptime(), "batch_size": args.batch_size, "batches": args.batches, "runs": []}
    print(f"load before: {results['uptime_before']}")
    http, grpc, metrics, cortex = harness.free_ports(4)
    ports = ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    cmd = [sys.executable, "-m", "tritonize.cli", "serve", repo, *ports, "--cortex-port", str(cortex),
           "--job-store", os.path.join(work, "jobs")]  # fmt: skip
    with harness.process(cmd, f"http://127.0.0.1:{cortex}/_tritonize/ready", log_name="batch"):
        client = Client(f"127.0.0.1:{http}", cortex_url=f"127.0.0.1:{cortex}", timeout_s=120)
        for (hidden, model), workers in ((m, w) for m in models.items() for w in args.workers):
            # The baseline right before and right after the job, averaged: on a shared machine the load moves.
            before = in_process(model, items, args.batch_size)
            steady, end_to_end, job, total = run_job(client, f"mlp{hidden}", items, args.batch_size, workers)
            after = in_process(model, items, args.batch_size)
            baseline = (before + after) / 2
            row = {
                "hidden": hidden,
                "workers": workers,
                "in_process_items_s": round(baseline, 1),
                "in_process_before_after": [round(before, 1), round(after, 1)],
                "job_steady_items_s": round(steady, 1) if steady else None,
                "job_end_to_end_items_s": round(end_to_end, 1),
                "steady_per_worker_ratio": round(steady / workers / baseline, 3) if steady else None,
                "end_to_end_per_worker_ratio": round(end_to_end / workers / baseline, 3),
                "status": job["status"],
                "avg_time_per_batch_s": (job.get("batch_metrics") or {}).get("average_time_per_batch"),
                "in_process_s_per_batch": round(args.batch_size / baseline, 5),
            }
            results["runs"].append(row)
            print(json.dumps(row))
    results["uptime_after"] = uptime()
    print(f"load after: {results['uptime_after']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
