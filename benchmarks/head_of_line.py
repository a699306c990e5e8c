"""Head-of-line blocking: which max_batch_size suits a predictor without server_side_batching.

    python benchmarks/head_of_line.py [--reps 2] [--duration 8]

Triton's dynamic batcher hands one execute() every queued request up to max_batch_size;
tritonize answers them one after the other and Triton sends the responses when execute()
returns. With several instances, one may take all queued requests while another idles. Measured
here: a predictor sleeping 50 ms on 2 instances at concurrency 4 and 16, and the JSON echo (1 and
2 instances, concurrency 32) where handing over many requests per execute() saves IPC.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import loads  # noqa: E402
from run import PROJECTS, infer_body, tritonize  # noqa: E402

from tritonize.adapter.runtime.repository_model import write_marker  # noqa: E402

SIZES = (32, 4, 1)


def build(work):
    """One repository: sleep_b{N}_i2 and echo_b{N}_i{1,2} for each max_batch_size N."""
    repo, staging, apis = os.path.join(work, "repo"), os.path.join(work, "staging"), []
    os.makedirs(repo)
    for project, instances in (("sleep", 2), ("echo", 1), ("echo", 2)):
        for size in SIZES:
            name = f"{project}_b{size}_i{instances}"
            out = os.path.join(staging, name)
            tritonize(
                "build",
                os.path.join(PROJECTS, project, "predictor.py"),
                "-o",
                out,
                "--name",
                name,
                "--instances",
                str(instances),
            )
            config_path = os.path.join(out, name, "config.pbtxt")
            with open(config_path) as f:
                config = re.sub(r"max_batch_size: \d+", f"max_batch_size: {size}", f.read())
            with open(config_path, "w") as f:
                f.write(config)
            shutil.move(os.path.join(out, name), os.path.join(repo, name))
            apis.append(name)
    write_marker(repo, apis)
    return repo


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tritonize-hol-")
    raw = {}
    body = infer_body(json.dumps({"x": 1}))
    cases = [(f"sleep_b{s}_i2", c) for c in (4, 16) for s in SIZES]
    cases += [(f"echo_b{s}_i{i}", 32) for i in (1, 2) for s in SIZES]
    try:
        server, addresses = harness.tritonize_serve(build(work))
        with server:
            for _ in range(args.reps):
                for model, concurrency in cases:
                    url = f"http://{addresses.http}/v2/models/{model}/infer"
                    r = loads.http_load(url, body, concurrency, args.duration)
                    raw.setdefault((model, concurrency), []).append(r)
                    print(
                        f"  {model:<14} c={concurrency:<3} {r['throughput']:8.1f} req/s  p50 {r['p50_ms']:8.2f} ms"
                        f"  p99 {r['p99_ms']:8.2f} ms  errors {r['errors']}  load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| model | max_batch_size | instances | concurrency | req/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for (model, concurrency), results in raw.items():
        project, size, instances = re.match(r"(\w+)_b(\d+)_i(\d+)", model).groups()
        med = {k: statistics.median(r[k] for r in results) for k in ("throughput", "p50_ms", "p99_ms")}
        print(
            f"| {project} | {size} | {instances} | {concurrency} | {med['throughput']:.0f} | {med['p50_ms']:.1f} | "
            f"{med['p99_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
