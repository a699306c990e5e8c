"""Soak benchmark: N requests (default 50k, in rounds) at concurrency 64 against a
batching API on `tritonize serve`; errors, throughput and the RSS of tritonserver
and its stub after every round. Results: benchmarks/SOAK.md.

    .venv/bin/python benchmarks/soak.py [--requests 50000] [--rounds 5] [--concurrency 64]
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, tritonize_serve  # noqa: E402
from soak_load import memory_snapshot, soak_http  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        repo = os.path.join(work, "repo")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tritonize.cli",
                "build",
                os.path.join(ROOT, "benchmarks", "projects", "soak", "cortex.yaml"),
                "-o",
                repo,
            ],
            check=True,
            capture_output=True,
        )
        server, url = tritonize_serve(repo)
        with server:
            pid = int(
                subprocess.run(
                    ["pgrep", "-f", "--", f"--model-repository={repo}"], capture_output=True, text=True
                ).stdout.split()[0]
            )
            start = memory_snapshot(pid)
            print(f"before: tritonserver {start['tritonserver']} KiB, stub {sum(start['stubs'].values())} KiB")
            print("| round | requests | errors | wrong answers | req/s | tritonserver RSS (KiB) | stub RSS (KiB) |")
            print("|---|---|---|---|---|---|---|")
            total_errors = 0
            per_round = args.requests // args.rounds
            for round_index in range(1, args.rounds + 1):
                result = asyncio.run(soak_http(f"http://{url}", "soak", per_round, args.concurrency))
                errors = per_round - result["statuses"].get("200", 0)
                total_errors += errors + result["wrong"]
                mem = memory_snapshot(pid)
                print(
                    f"| {round_index} | {per_round} | {errors} | {result['wrong']} | {result['throughput']} | "
                    f"{mem['tritonserver']} | {sum(mem['stubs'].values())} |",
                    flush=True,
                )
                if result["first_error"]:
                    print(f"  first error: {result['first_error']}")
            growth = mem["tritonserver"] - start["tritonserver"]
            stub_growth = sum(mem["stubs"].values()) - sum(start["stubs"].values())
            print(
                f"total: {per_round * args.rounds} requests, {total_errors} errors; RSS growth: tritonserver "
                f"{growth:+d} KiB, stub {stub_growth:+d} KiB"
            )
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
