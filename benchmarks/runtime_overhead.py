"""Per-request cost of the runtime's request path, in-process, against a baseline git ref.

    .venv/bin/python benchmarks/runtime_overhead.py [--baseline <git ref>] [--rounds 7]

Both runtimes (this tree's adapter/runtime and the baseline's, from `git archive`)
answer the same requests through Pipeline.answer() (Dispatcher.answer() before it); rounds alternate between them
so that machine load hits both alike. Prints us/request per case and the ratio.
"""

import argparse
import importlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Echo:
    def predict(self, payload, query_params, headers):
        return {"n": len(payload["x"]), "q": query_params.get("a")}


class EchoWithPostPredict(Echo):
    def post_predict(self, response, payload):
        pass


class Batch:
    def predict(self, payload, query_params):
        return [{"n": len(p["x"])} for p in payload]


def load_runtime(name, source_dir):
    root = tempfile.mkdtemp(prefix="tritonize-bench-")
    package = os.path.join(root, name)
    subprocess.run(["cp", "-r", source_dir, package], check=True)
    sys.path.insert(0, root)
    modules = {part: importlib.import_module(f"{name}.{part}") for part in ("params", "predictor")}
    try:  # the request pipeline (pipeline.Pipeline); before it, dispatch.Dispatcher with the same body()/answer()
        modules["pipeline"] = importlib.import_module(f"{name}.pipeline").Pipeline
    except ImportError:
        modules["pipeline"] = importlib.import_module(f"{name}.dispatch").Dispatcher
    return modules


def extract_baseline(ref):
    data = subprocess.run(
        ["git", "-C", HERE, "archive", ref, "adapter/runtime"], check=True, capture_output=True
    ).stdout
    root = tempfile.mkdtemp(prefix="tritonize-baseline-")
    tarfile.open(fileobj=io.BytesIO(data)).extractall(root)
    return os.path.join(root, "adapter", "runtime")


class _Settings(dict):
    """An API's settings as both runtimes read them: keys (a baseline before the typed model), attributes (now)."""

    __getattr__ = dict.get


def cases(runtime):
    modules = runtime
    rules = modules["params"].ParameterRules(header_pattern="^x-", forward_sensitive=False)
    body = np.array([[b'{"x": [1.0, 2.0, 3.0, 4.0]}']], dtype=np.object_)
    plain = '{"a":"1","X-Tenant":"acme"}'
    encoded = '{"tritonize_query":"a=1&b=2","X-Tenant":"acme"}'  # what tritonize.Client sends

    def dispatcher(cls, batching=False):
        predictor = modules["predictor"].LoadedPredictor(cls())
        return modules["pipeline"](predictor, _Settings(predictor_batching=batching), rules)

    single, posted, batched = dispatcher(Echo), dispatcher(EchoWithPostPredict), dispatcher(Batch, True)
    return {
        "one request, no parameters": lambda: single.answer([(single.body(body), "{}")]),
        "one request, query param + header": lambda: single.answer([(single.body(body), plain)]),
        "one request with post_predict": lambda: posted.answer([(posted.body(body), plain)]),
        "one request, query as tritonize_query": lambda: single.answer([(single.body(body), encoded)]),
        "batch of 8 (server-side batching)": lambda: batched.answer([(batched.body(body), plain)] * 8),
    }


def timed(function, n):
    started = time.perf_counter()
    for _ in range(n):
        function()
    return (time.perf_counter() - started) / n * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="HEAD", help="a git ref (default: the last commit)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-n", type=int, default=5000)
    args = parser.parse_args()
    runtimes = {
        "baseline": cases(load_runtime("runtime_baseline", extract_baseline(args.baseline))),
        "this tree": cases(load_runtime("runtime_current", os.path.join(HERE, "adapter", "runtime"))),
    }
    best = {name: {case: float("inf") for case in runtimes[name]} for name in runtimes}
    for _ in range(args.rounds):
        for name, functions in runtimes.items():  # interleaved: load affects both
            for case, function in functions.items():
                best[name][case] = min(best[name][case], timed(function, args.n))
    print(f"load: {os.getloadavg()[0]:.2f}; best of {args.rounds} rounds x {args.n} calls; us per call")
    for case in best["baseline"]:
        old, new = best["baseline"][case], best["this tree"][case]
        print(f"{case:38s} baseline {old:8.2f}  this tree {new:8.2f}  ratio {new / old:5.2f}")
    metrics = importlib.import_module("runtime_current.metrics")
    client = metrics.MetricsClient("bench", metrics.Recorder(metrics.MemorySink(), interval_s=3600))
    cost = min(timed(lambda: client.increment("requests", tags={"route": "a"}), args.n) for _ in range(args.rounds))
    print(f"metrics_client.increment() with a tag: {cost:.2f} us (Triton's IPC happens in the flusher thread)")


if __name__ == "__main__":
    main()
