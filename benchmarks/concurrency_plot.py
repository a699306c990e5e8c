"""Throughput and p99 against concurrency: the JSON echo on tritonize, a hand-written model.py, PyTriton, FastAPI.

    python benchmarks/concurrency_plot.py [--concurrency 1,2,4,8,16,32,64] [--duration 2] [--reps 1]
                                          [--out docs/img/concurrency.png] [--replot]

The servers of P1/P2 (benchmarks/run.py: `tritonize serve` of benchmarks/projects/echo, the hand-written
model.py on a plain tritonserver, PyTriton @batch) and the same predictor served by FastAPI/uvicorn
(one worker, as Cortex ran one process per replica), all up at once; every concurrency level
measures each server in turn (wrk, HTTP, the P1 payload). Writes the PNG (needs matplotlib: the
`tune` extra), its numbers beside it (<out>.json: --replot draws the PNG again from them) and prints
them as a Markdown table.
"""

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import echo_rows  # noqa: E402
import harness  # noqa: E402
import loads  # noqa: E402

ECHO = os.path.join(HERE, "projects", "echo", "predictor.py")
SERVERS = (
    "tritonize serve",
    "hand-written model.py, plain tritonserver",
    "PyTriton @batch",
    "FastAPI/uvicorn (1 worker)",
)


def build(work):
    """The repositories of P1 (run.py): the tritonize echo, the hand-written model."""
    echo_repo = os.path.join(work, "echo_repo")
    subprocess.run(
        [sys.executable, "-m", "tritonize.cli", "build", ECHO, "-o", echo_repo, "--name", "echo"],
        check=True,
        capture_output=True,
    )
    raw_repo = os.path.join(work, "raw_repo")
    shutil.copytree(os.path.join(HERE, "projects", "handwritten"), raw_repo)
    return echo_repo, raw_repo


def sweep(levels, duration, reps, work):
    echo_repo, raw_repo = build(work)
    results = {}
    with contextlib.ExitStack() as stack:
        (tritonize_server, tritonize_at) = harness.tritonize_serve(echo_repo)
        (plain_server, plain_at) = harness.plain_tritonserver(raw_repo, work)
        (pytriton_server, pytriton_at) = harness.pytriton_server()
        fastapi_server, fastapi_at = harness.fastapi_server(ECHO, 1)
        for context in (tritonize_server, plain_server, pytriton_server, fastapi_server):
            stack.enter_context(context)
        targets = {
            SERVERS[0]: (f"http://{tritonize_at.http}/v2/models/echo/infer", echo_rows.BODY),
            SERVERS[1]: (f"http://{plain_at.http}/v2/models/echo_raw/infer", echo_rows.BODY),
            SERVERS[2]: (f"http://{pytriton_at.http}/v2/models/echo_pytriton/infer", echo_rows.BODY),
            SERVERS[3]: (f"http://{fastapi_at}/predict", echo_rows.PAYLOAD.encode()),
        }
        for url, body in targets.values():  # warm-up
            loads.http_load(url, body, 8, 1)
        for concurrency in levels:
            for _ in range(reps):
                for label, (url, body) in targets.items():
                    result = loads.http_load(url, body, concurrency, duration)
                    if result["errors"]:
                        raise SystemExit(f"{label} c={concurrency}: {result['errors']} failed requests")
                    results.setdefault((label, concurrency), []).append(result)
                    print(
                        f"  {label:<44} c={concurrency:<3} {result['throughput']:9.1f} req/s  "
                        f"p50 {result['p50_ms']:7.3f} ms  p99 {result['p99_ms']:7.3f} ms  "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    return {key: {k: statistics.median(r[k] for r in rs) for k in ("throughput", "p50_ms", "p99_ms")}
            for key, rs in results.items()}  # fmt: skip


def plot(medians, levels, path, subtitle):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label in SERVERS:
        left.plot(levels, [medians[(label, c)]["throughput"] for c in levels], marker="o", label=label)
        right.plot(levels, [medians[(label, c)]["p99_ms"] for c in levels], marker="o", label=label)
    for axis, ylabel in ((left, "requests/s"), (right, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(c) for c in levels])
        axis.set_xlabel("concurrent clients (wrk, HTTP)")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
    right.set_yscale("log")
    right.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    right.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    right.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    fig.suptitle(f"JSON echo: throughput and p99 against concurrency\n{subtitle}", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,2,4,8,16,32,64")
    parser.add_argument("--duration", type=int, default=2, help="seconds per point (wrk takes whole seconds)")
    parser.add_argument("--reps", type=int, default=1)
    # In the docs site (docs/performance.md shows it); benchmarks/RESULTS.md links it there.
    parser.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "docs", "img", "concurrency.png"))
    parser.add_argument("--replot", action="store_true", help="draw the PNG again from <out>.json, measure nothing")
    args = parser.parse_args()
    data_path = os.path.splitext(args.out)[0] + ".json"
    if args.replot:
        with open(data_path) as f:
            data = json.load(f)
        levels, subtitle = data["levels"], data["subtitle"]
        medians = {(row["server"], row["concurrency"]): row for row in data["points"]}
    else:
        levels = [int(c) for c in args.concurrency.split(",")]
        start_load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="concurrency-") as work:
            medians = sweep(levels, args.duration, args.reps, work)
        load = f"load average {start_load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        subtitle = (
            f"{os.cpu_count()} CPUs shared by servers and client; {args.duration} s x {args.reps} per point; {load}"
        )
        points = [{"server": label, "concurrency": c, **medians[(label, c)]} for label, c in medians]
        with open(data_path, "w") as f:
            json.dump({"levels": levels, "subtitle": subtitle, "points": points}, f, indent=1)
    plot(medians, levels, args.out, subtitle)
    print(f"\n{subtitle}; wrote {args.out}\n")
    print("| server | " + " | ".join(f"c={c}" for c in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for label in SERVERS:
        cells = [f"{medians[(label, c)]['throughput']:.0f} / {medians[(label, c)]['p99_ms']:.1f}" for c in levels]
        print(f"| {label} (req/s / p99 ms) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
