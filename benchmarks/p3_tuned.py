"""Issue 28's P3 question: what `tritonize tune` picks for the MiniLM embeddings example on this
machine's CPUs, and how the chosen setting compares with FastAPI (2 workers) at the same p99.

In one run: `tritonize tune` (the README's command) searches examples/embeddings' `embeddings` API
(CPU instances, the spec's one torch thread per instance) within the p99 budget and writes its choice
into a copy of the spec, which is built and served by `tritonize serve` (as a user would); then the
tuned server, FastAPI with 2 workers (benchmarks/fastapi_app.py, one torch thread each) and, for
reference, run.py's P3 setting (2 instances, batches of 32, 5 ms) are each swept over concurrency
1, 2, 4, ... with the same load generator (wrk) and body (the example's sample.json) in interleaved
rounds, all three servers up the whole time. A target's score is its highest throughput at a level
whose p99 kept the budget (tune's own rule, `tune.search.sweep`).

    python benchmarks/p3_tuned.py [--p99-ms 100] [--max-minutes 8] [--rounds 2] [--json out.json]
"""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import loads  # noqa: E402
from run import EMBEDDINGS_PREDICTOR, EMBEDDINGS_SPEC, TORCH_THREADS, infer_body, tritonize  # noqa: E402

from tritonize.adapter.build import load_apis  # noqa: E402
from tritonize.adapter.runtime.repository_model import write_marker  # noqa: E402
from tritonize.client.loadgen import LoadResult  # noqa: E402
from tritonize.tune.search import Budget, sweep  # noqa: E402

API = "embeddings"


def tune_command(project, args):
    """The README's command, on a copy of the example (with --write: the choice goes into the copy)."""
    return [
        "tune", os.path.join(project, "cortex.yaml"), "--api", API, "--kind", "cpu", "--p99", f"{args.p99_ms:g}ms",
        "--payload", f"@{os.path.join(project, 'sample.json')}", "--max-minutes", f"{args.max_minutes:g}",
        "--level-duration", f"{args.level_s:g}s", "--report-dir", args.report_dir or os.path.join(project, "report"),
        "--write",
    ]  # fmt: skip


def run_tuner(project, args):
    """`tritonize tune` as a user runs it; its output printed; returns the chosen API settings."""
    result = subprocess.run(
        [sys.executable, "-m", "tritonize.cli", *tune_command(project, args)], capture_output=True, text=True
    )
    print(result.stdout, flush=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-3000:])
        raise SystemExit(f"tritonize tune exited {result.returncode}")
    (api,) = [a for a in load_apis(os.path.join(project, "cortex.yaml")) if a.name == API]
    return api, result.stdout


def build_one(spec, work, name, extra=()):
    """`tritonize build` the spec on CPU; a repository with only the `embeddings` model in it."""
    staging, repo = os.path.join(work, f"staging-{name}"), os.path.join(work, f"repo-{name}")
    tritonize("build", spec, "-o", staging, "--kind", "cpu", *extra)
    os.makedirs(repo)
    shutil.move(os.path.join(staging, API), os.path.join(repo, API))
    write_marker(repo, [API])
    return repo


def sweep_target(url, body, budget, args, headers=None):
    def run_level(concurrency):
        r = loads.http_load(url, body, concurrency, args.level_s_compare, headers)  # int: wrk takes whole seconds
        return LoadResult(concurrency, r["requests"], r["errors"], args.level_s_compare, r["throughput"],
                          r["p50_ms"], r["p90_ms"], r["p99_ms"])  # fmt: skip

    levels = sweep(run_level, budget, args.max_concurrency)
    kept = [lv for lv in levels if budget.keeps(lv)]
    best = max(kept, key=lambda lv: lv.throughput) if kept else None
    return {
        "best_rps": round(best.throughput, 1) if best else 0.0,
        "at_concurrency": best.concurrency if best else None,
        "p99_ms": round(best.p99_ms, 1) if best else None,
        "levels": [[lv.concurrency, round(lv.throughput, 1), round(lv.p99_ms, 1), lv.errors] for lv in levels],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--p99-ms", type=float, default=100.0)
    parser.add_argument("--max-minutes", type=float, default=8.0, help="The tuner's time limit.")
    parser.add_argument("--level-s", type=float, default=2.0, help="The tuner's time per concurrency level.")
    parser.add_argument("--level-s-compare", type=int, default=4, help="wrk's time per level in the comparison.")
    parser.add_argument("--max-concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--report-dir", help="Also write the tuner's points.csv and tune.png here.")
    parser.add_argument("--json", help="Write the results here.")
    args = parser.parse_args()
    budget = Budget("p99", args.p99_ms)
    out = {"budget": str(budget), "cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
    work = tempfile.mkdtemp(prefix="p3-tuned-")
    try:
        project = os.path.join(work, "embeddings")
        shutil.copytree(os.path.dirname(EMBEDDINGS_SPEC), project, ignore=shutil.ignore_patterns("__pycache__"))
        t0 = time.monotonic()
        api, tuner_output = run_tuner(project, args)
        batching = api.batching if api.batching.predictor_batching else None
        out.update(
            tuner_choice={
                "instances": api.instances,
                "max_batch_size": batching.max_batch_size if batching else None,
                "batch_interval_us": batching.max_queue_delay_us if batching else None,
            },
            tuner_summary=[line for line in tuner_output.splitlines() if line.startswith(("Measured", "Chosen"))],
            tuner_minutes=round((time.monotonic() - t0) / 60, 1),
        )
        tuned_repo = build_one(os.path.join(project, "cortex.yaml"), work, "tuned")
        p3_repo = build_one(EMBEDDINGS_SPEC, work, "p3", ["--instances", "2"])  # run.py's P3 setting
        rounds = {"tuned": [], "fastapi": [], "p3": []}
        with open(os.path.join(project, "sample.json"), "rb") as f:
            text = f.read().strip()
        body = infer_body(text.decode())
        with contextlib.ExitStack() as stack:
            targets = {}
            for name, repo in (("tuned", tuned_repo), ("p3", p3_repo)):
                server, addresses = harness.tritonize_serve(repo)
                stack.enter_context(server)
                targets[name] = (f"http://{addresses.http}/v2/models/{API}/infer", body)
            server, url = harness.fastapi_server(EMBEDDINGS_PREDICTOR, 2, json.dumps({"threads": TORCH_THREADS}))
            stack.enter_context(server)
            targets["fastapi"] = (f"http://{url}/predict", text)
            for _ in range(args.rounds):
                for name in ("tuned", "fastapi", "p3"):
                    result = sweep_target(*targets[name], budget, args)
                    rounds[name].append(result)
                    print(name, json.dumps(result), flush=True)
        mean = {name: sum(r["best_rps"] for r in rs) / len(rs) for name, rs in rounds.items()}
        out.update(
            rounds=rounds,
            mean_rps={name: round(v, 1) for name, v in mean.items()},
            ratio_tuned_vs_fastapi=round(mean["tuned"] / mean["fastapi"], 2) if mean["fastapi"] else None,
            ratio_p3_setting_vs_fastapi=round(mean["p3"] / mean["fastapi"], 2) if mean["fastapi"] else None,
            load_average_after=os.getloadavg(),
            client=loads.client_name(),
        )
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr or "")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
