"""A small closed-loop load generator (asyncio): N workers, each sending the next
request when its previous one is answered, for a fixed time.

HTTP uses aiohttp with raw KServe v2 JSON bodies, so the same client can also
drive a non-Triton endpoint (the benchmarks' FastAPI baseline); gRPC uses
tritonclient's asyncio client.
"""

import asyncio
import sys
import threading
import time
from dataclasses import asdict, dataclass


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    throughput: float  # successful requests per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    first_error: str = ""

    def as_dict(self):
        return asdict(self)


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * (len(sorted_values) - 1)))))
    return sorted_values[index]


def summarize(concurrency, latencies, errors, seconds, first_error=""):
    latencies = sorted(latencies)
    return LoadResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        seconds=round(seconds, 3),
        throughput=len(latencies) / seconds if seconds else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1e3,
        p90_ms=percentile(latencies, 0.90) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
        first_error=first_error,
    )


async def _closed_loop(send, concurrency, duration_s, warmup_s):
    latencies, state = [], {"errors": 0, "first_error": ""}
    start = time.perf_counter()
    measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s

    async def worker():
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                await send()
                ok = True
            except Exception as exc:  # counted, never fatal: a benchmark reports errors
                ok = False
                state["first_error"] = state["first_error"] or f"{type(exc).__name__}: {exc}"[:300]
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                if ok:
                    latencies.append(t1 - t0)
                else:
                    state["errors"] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarize(concurrency, latencies, state["errors"], duration_s, state["first_error"])


async def run_http(url, body, concurrency, duration_s, warmup_s=1.0, headers=None):
    """POST `body` to `url` (a full http://... URL) in a closed loop; non-2xx counts as an error."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers or {}) as session:

        async def send():
            async with session.post(url, data=body) as response:
                payload = await response.read()
                if response.status >= 300:
                    raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")

        return await _closed_loop(send, concurrency, duration_s, warmup_s)


async def run_grpc(url, model, make_inputs, concurrency, duration_s, warmup_s=1.0, parameters=None):
    """gRPC inference in a closed loop; make_inputs(module) -> [InferInput]."""
    import tritonclient.grpc.aio as grpcaio

    from tritonize.client.client import grpc_channel_args

    client = grpcaio.InferenceServerClient(url, channel_args=grpc_channel_args(url))  # no proxy to a local server
    inputs = make_inputs(grpcaio)
    try:

        async def send():
            await client.infer(model, inputs, parameters=parameters)

        return await _closed_loop(send, concurrency, duration_s, warmup_s)
    finally:
        await client.close()


class Progress:
    """'concurrency 8: 3.5/10 s' on a terminal, updated twice a second."""

    def __init__(self, label, total_s, enabled):
        self.label, self.total_s, self.enabled = label, total_s, enabled
        self._stop = threading.Event()

    def __enter__(self):
        if self.enabled:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def _tick(self):
        start = time.monotonic()
        while not self._stop.wait(0.5):
            sys.stderr.write(f"\r  {self.label}: {time.monotonic() - start:4.1f}/{self.total_s:.0f} s")
            sys.stderr.flush()

    def __exit__(self, *exc):
        self._stop.set()
        if self.enabled:
            self._thread.join()
            sys.stderr.write("\r" + " " * 60 + "\r")
