"""`tritonize tune` against brute force, on three predictors whose best setting differs by construction
(benchmarks/projects/tune_*): CPU-bound with a large fixed cost per call (batching wins), sleeping
(instances win), contention-bound (few instances, medium batches).

For each: `tune --exhaustive` measures every candidate of the grid (the brute force), then the quick
search runs from the spec's own settings on a fresh server. Goal (issue 28): the quick search's
choice reaches >= 95 % of the brute-force best throughput within the budget, in <= 15 % of its time.

    python benchmarks/tune_bench.py [--grid small|default] [--only sleeping] [--json out.json]
    python benchmarks/tune_bench.py --quick-only --grid default   # the search alone on tune's own grid
    python benchmarks/tune_bench.py --head-to-head out.json       # both choices again, in turn
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from tritonize.tune import report as tune_report
from tritonize.tune.runner import (
    BATCH_INTERVAL_US,
    INSTANCES,
    MAX_BATCH_SIZE,
    Progress,
    TuneOptions,
    canonical,
    describe_settings,
    tune,
)
from tritonize.tune.search import Budget, sweep

PREDICTORS = ("batching", "sleeping", "contention")
# The brute force must fit a session: a narrowed grid (the quick search gets the same one).
GRIDS = {
    "small": {
        "instance_steps": [1, 2, 4, 8],
        "batch_size_steps": [1, 4, 16, 64],
        "batch_interval_us_steps": [0, 2000, 10000],
    },
    "default": {},
}


def project(name):
    return os.path.join(ROOT, "benchmarks", "projects", f"tune_{name}", "cortex.yaml")


def key(settings):
    return tuple(sorted(canonical(settings).items()))


def options(args, **extra):
    return TuneOptions(
        budget=Budget("p99", args.p99_ms),
        data=b'{"x": 1}',
        level_s=args.level_s,
        warmup_s=args.warmup_s,
        max_concurrency=args.max_concurrency,
        max_minutes=1e6,
        **GRIDS[args.grid],
        **extra,
    )


def run_quick_only(name, args):
    """The quick search alone (on the default grid, too big for a brute force in a session)."""
    t0 = time.monotonic()
    quick = tune(project(name), options(args), progress=Progress(1e6, enabled=False))
    if args.json:
        tune_report.write_csv(quick, f"{os.path.splitext(args.json)[0]}-{name}-quick.csv")
    best = quick.result.best
    level = best.best_within(quick.result.budget) if best else None
    return {
        "predictor": name,
        "grid": args.grid,
        "grid_candidates": quick.search_space,
        "quick_candidates": len(quick.result.measured),
        "quick_s": round(quick.result.seconds, 1),
        "quick_wall_s": round(time.monotonic() - t0, 1),
        "mean_candidate_s": round(quick.result.seconds / max(1, len(quick.result.measured)), 1),
        "quick_best": describe_settings(best.settings) if best else None,
        "quick_best_rps_own_run": round(level.throughput, 1) if level else None,
        "stopped": quick.result.stopped,
        "load_average": os.getloadavg(),
    }


def parse_settings(text):
    """describe_settings()'s 'instances=2 max_batch_size=16 batch_interval=2ms' -> settings."""
    from tritonize.adapter.spec_values import parse_duration_us

    fields = dict(part.split("=", 1) for part in text.split())
    batching = fields.get("batching") != "off"
    return {
        INSTANCES: int(fields["instances"]),
        MAX_BATCH_SIZE: int(fields["max_batch_size"]) if batching else None,
        BATCH_INTERVAL_US: parse_duration_us(fields["batch_interval"], "interval") if batching else 0,
    }


def head_to_head(row, args, rounds=2):
    """The brute-force best and the quick choice measured in turn on one server, `rounds` times each:
    the ratio under the same noise (each search measured its choice once, at different times)."""
    from tritonize.tune.runner import CandidateServer, select_api

    opts = options(args)
    api = select_api(project(row["predictor"]), None, None)
    finalists = {"brute": parse_settings(row["brute_best"]), "quick": parse_settings(row["quick_best"])}
    rps = {name: [] for name in finalists}
    workdir = tempfile.mkdtemp(prefix="tune-bench-")
    server = CandidateServer(api, workdir, opts)
    try:
        server.start()
        for _ in range(rounds):
            for name, settings in finalists.items():
                if name == "quick" and finalists["quick"] == finalists["brute"]:
                    rps[name].append(rps["brute"][-1])
                    continue
                server.load(settings)
                levels = sweep(server.run_level, opts.budget, opts.max_concurrency)
                kept = [lv.throughput for lv in levels if opts.budget.keeps(lv)]
                rps[name].append(max(kept, default=0.0))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    mean = {name: sum(values) / len(values) for name, values in rps.items()}
    return {
        "predictor": row["predictor"],
        "brute_best": row["brute_best"],
        "quick_best": row["quick_best"],
        "brute_rps_rounds": [round(v, 1) for v in rps["brute"]],
        "quick_rps_rounds": [round(v, 1) for v in rps["quick"]],
        "ratio_head_to_head": round(mean["quick"] / mean["brute"], 3) if mean["brute"] else None,
        "load_average": os.getloadavg(),
    }


def run_one(name, args):
    budget = Budget("p99", args.p99_ms)
    t0 = time.monotonic()
    exhaustive = tune(project(name), options(args, exhaustive=True), progress=Progress(1e6, enabled=False))
    brute_wall = time.monotonic() - t0
    t0 = time.monotonic()
    quick = tune(project(name), options(args), progress=Progress(1e6, enabled=False))
    quick_wall = time.monotonic() - t0
    if args.json:  # every measured point, for reading the numbers behind the summary
        base = os.path.splitext(args.json)[0]
        tune_report.write_csv(exhaustive, f"{base}-{name}-brute.csv")
        tune_report.write_csv(quick, f"{base}-{name}-quick.csv")
    brute_best, quick_best = exhaustive.result.best, quick.result.best
    by_key = {key(m.settings): m for m in exhaustive.result.measured}
    row = {
        "predictor": name,
        "budget": str(budget),
        "grid_candidates": len(exhaustive.result.measured),
        "quick_candidates": len(quick.result.measured),
        "brute_s": round(exhaustive.result.seconds, 1),
        "quick_s": round(quick.result.seconds, 1),
        "brute_wall_s": round(brute_wall, 1),
        "quick_wall_s": round(quick_wall, 1),
        "time_fraction": round(quick.result.seconds / exhaustive.result.seconds, 3),
        "stopped": quick.result.stopped,
        "brute_best": describe_settings(brute_best.settings) if brute_best else None,
        "quick_best": describe_settings(quick_best.settings) if quick_best else None,
    }
    if brute_best and quick_best:
        best_rps = brute_best.best_within(budget).throughput
        row["brute_best_rps"] = round(best_rps, 1)
        row["quick_best_rps_own_run"] = round(quick_best.best_within(budget).throughput, 1)
        # The quick choice as the brute force measured it (same run, same noise as its best).
        same_run = by_key.get(key(quick_best.settings))
        kept = same_run.best_within(budget) if same_run else None
        row["quick_choice_in_brute_run_rps"] = round(kept.throughput, 1) if kept else 0.0
        row["ratio_same_run"] = round(row["quick_choice_in_brute_run_rps"] / best_rps, 3)
        row["ratio_own_run"] = round(row["quick_best_rps_own_run"] / best_rps, 3)
        # The brute force's top 3 (how flat the optimum is)
        ranked = sorted(
            (m for m in exhaustive.result.measured if m.best_within(budget)),
            key=lambda m: -m.best_within(budget).throughput,
        )
        row["brute_top3"] = [
            f"{describe_settings(m.settings)}: {m.best_within(budget).throughput:.0f}" for m in ranked[:3]
        ]
    row["load_average"] = os.getloadavg()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="small")
    parser.add_argument("--only", action="append", choices=PREDICTORS)
    parser.add_argument("--p99-ms", type=float, default=100.0)
    parser.add_argument("--level-s", type=float, default=1.0)
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument("--max-concurrency", type=int, default=32)
    parser.add_argument("--quick-only", action="store_true", help="Only the quick search (no brute force).")
    parser.add_argument(
        "--head-to-head", metavar="ROWS_JSON", help="Re-measure each row's two choices in turn (a --json file)."
    )
    parser.add_argument("--json", help="Also write the rows here.")
    args = parser.parse_args()
    rows = []
    if args.head_to_head:
        with open(args.head_to_head) as f:
            for row in json.load(f):
                if row.get("brute_best") and row.get("quick_best") and (not args.only or row["predictor"] in args.only):
                    result = head_to_head(row, args)
                    rows.append(result)
                    print(json.dumps(result, indent=2), flush=True)
        return
    for name in args.only or PREDICTORS:
        print(f"--- {name} (load average before: {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
        row = run_quick_only(name, args) if args.quick_only else run_one(name, args)
        rows.append(row)
        print(json.dumps(row, indent=2), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
