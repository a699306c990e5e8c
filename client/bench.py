"""`tritonize bench`: throughput and latency of one API at several concurrencies.

Uses perf_analyzer when it is available and can express the request (no query
params), else the built-in asyncio load generator (cli/loadgen.py).
"""

import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from tritonize.adapter.runtime.constants import CONTENT_TYPE_PARAMETER, DEFAULT_URLS, INPUT_NAME
from tritonize.adapter.runtime.params import request_parameters
from tritonize.adapter.runtime.tensors import TRITON_TO_NUMPY
from tritonize.client import loadgen, stream_load
from tritonize.errors import BenchError, TritonizeError
from tritonize.host import local_http


def model_metadata(http_url, api):
    try:
        with local_http.urlopen(f"http://{http_url}/v2/models/{api}", timeout=10) as response:
            return json.load(response)
    except OSError as exc:
        raise BenchError(
            f"cannot read metadata of {api!r} from http://{http_url} ({exc}); is the server running?"
        ) from None


class Workload:
    """One request of an API, in the forms each engine needs."""

    def __init__(self, metadata, data, content_type=None, query_params=None):
        self.model = metadata["name"]
        self.inputs = {}  # name -> (datatype, shape with batch dim 1, flat list)
        names = [i["name"] for i in metadata["inputs"]]
        self.parameters = request_parameters(query_params)  # repeated keys survive (urlencoded)
        if names == [INPUT_NAME]:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise BenchError("bench sends bodies as UTF-8 text; binary bodies are not supported") from None
            self.inputs[INPUT_NAME] = ("BYTES", [1, 1], [text])
            if content_type:
                self.parameters[CONTENT_TYPE_PARAMETER] = content_type
        else:
            try:
                values = json.loads(data)
            except json.JSONDecodeError as exc:
                raise BenchError(f"--data for a typed API must be JSON {{tensor: nested list}}: {exc}") from None
            for spec in metadata["inputs"]:
                if spec["name"] not in values:
                    raise BenchError(f"--data has no value for input {spec['name']!r}")
                array = np.asarray(values[spec["name"]], dtype=TRITON_TO_NUMPY[spec["datatype"]])
                self.inputs[spec["name"]] = (spec["datatype"], [1, *array.shape], array.reshape(-1).tolist())

    def http_body(self):
        doc = {"inputs": [{"name": n, "datatype": d, "shape": s, "data": v} for n, (d, s, v) in self.inputs.items()]}
        if self.parameters:
            doc["parameters"] = self.parameters
        return json.dumps(doc).encode()

    def grpc_inputs(self, module):
        inputs = []
        for name, (datatype, shape, values) in self.inputs.items():
            inp = module.InferInput(name, shape, datatype)
            dtype = np.object_ if datatype == "BYTES" else TRITON_TO_NUMPY[datatype]
            array = np.array([v.encode() if isinstance(v, str) else v for v in values], dtype=dtype).reshape(shape)
            inp.set_data_from_numpy(array)
            inputs.append(inp)
        return inputs

    def perf_analyzer_data(self):
        return {"data": [{n: {"content": v, "shape": s[1:]} for n, (d, s, v) in self.inputs.items()}]}


def _perf_analyzer_usable():
    try:
        from tritonize.client.perf_analyzer import perf_analyzer_binary, perf_analyzer_environment

        binary, env = perf_analyzer_binary(), perf_analyzer_environment()
        ok = subprocess.run([binary, "--version"], env=env, capture_output=True, timeout=30).returncode == 0
        return (binary, env) if ok else None
    except (TritonizeError, OSError, subprocess.SubprocessError):
        return None


def _run_perf_analyzer(tool, workload, url, protocol, concurrency, duration_s):
    from tritonize.client.perf_analyzer import admin_header_args, start

    binary, env = tool
    with tempfile.TemporaryDirectory(prefix="tritonize-bench-") as tmp:
        data_file, csv_file = os.path.join(tmp, "input.json"), os.path.join(tmp, "out.csv")
        with open(data_file, "w") as f:
            json.dump(workload.perf_analyzer_data(), f)
        window_ms = max(500, int(duration_s * 1000 / 3))
        process = start(
            [
                binary,
                "-m",
                workload.model,
                "-u",
                url,
                "-i",
                protocol,
                "--input-data",
                data_file,
                "--concurrency-range",
                f"{concurrency}:{concurrency}",
                "--measurement-interval",
                str(window_ms),
                "--max-trials",
                "3",
                "--stability-percentage",
                "999",
                "-f",
                csv_file,
            ]
            + admin_header_args(protocol),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=duration_s * 4 + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        if process.returncode != 0 or not os.path.exists(csv_file):
            raise BenchError(f"perf_analyzer failed:\n{stdout[-2000:]}{stderr[-2000:]}")
        with open(csv_file) as f:
            row = next(csv.DictReader(f))
    throughput = float(row["Inferences/Second"])
    return loadgen.LoadResult(
        concurrency=concurrency,
        requests=int(throughput * window_ms * 3 / 1000),
        errors=0,
        seconds=window_ms * 3 / 1000,
        throughput=throughput,
        p50_ms=float(row["p50 latency"]) / 1e3,
        p90_ms=float(row["p90 latency"]) / 1e3,
        p99_ms=float(row["p99 latency"]) / 1e3,
    )


def bench(
    api,
    data,
    concurrencies,
    duration_s,
    protocol="http",
    url=None,
    http_url=None,
    content_type=None,
    query_params=None,
    engine="auto",
    progress=None,
):
    """Measure API at each concurrency -> (engine used, [LoadResult])."""
    url = url or DEFAULT_URLS[protocol]
    http_url = http_url or (url if protocol == "http" else DEFAULT_URLS["http"])
    workload = Workload(model_metadata(http_url, api), data, content_type, query_params)
    if stream_load.is_streaming(http_url, api):  # time to first chunk and chunks/s instead
        return "stream", stream_load.bench_streams(
            api, data, workload, concurrencies, duration_s, protocol, url, content_type, query_params, progress
        )
    tool = None
    if engine in ("auto", "perf_analyzer") and not workload.parameters:
        tool = _perf_analyzer_usable()
    if engine == "perf_analyzer" and tool is None:
        raise BenchError("perf_analyzer is not usable here (or cannot send query params); use --engine builtin")
    progress = sys.stderr.isatty() if progress is None else progress
    results = []
    for concurrency in concurrencies:
        with loadgen.Progress(f"concurrency {concurrency}", duration_s + (0 if tool else 1), progress):
            if tool:
                results.append(_run_perf_analyzer(tool, workload, url, protocol, concurrency, duration_s))
            elif protocol == "http":
                results.append(
                    asyncio.run(
                        loadgen.run_http(
                            f"http://{url}/v2/models/{api}/infer", workload.http_body(), concurrency, duration_s
                        )
                    )
                )
            else:
                results.append(
                    asyncio.run(
                        loadgen.run_grpc(
                            url,
                            api,
                            workload.grpc_inputs,
                            concurrency,
                            duration_s,
                            parameters=workload.parameters or None,
                        )
                    )
                )
    return ("perf_analyzer" if tool else "builtin"), results


def format_table(engine, results):
    if engine == "stream":
        return stream_load.format_table(results)
    lines = [
        f"engine: {engine}",
        f"{'concurrency':>11} {'req/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7}",
    ]
    for r in results:
        lines.append(
            f"{r.concurrency:>11} {r.throughput:>10.1f} {r.p50_ms:>8.2f} {r.p90_ms:>8.2f} {r.p99_ms:>8.2f} "
            f"{r.errors:>7}"
        )
    first = next((r.first_error for r in results if r.first_error), "")
    if first:
        lines.append(f"first error: {first}")
    return "\n".join(lines)
