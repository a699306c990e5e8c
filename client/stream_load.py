"""Closed-loop load on a streaming API: N workers, each opening the next stream when its previous
one has ended. Measures time to first chunk (TTFC), whole-stream time and chunks per second.

HTTP reads Triton's generate_stream (server-sent events) with aiohttp; gRPC uses tritonclient's
asyncio ModelStreamInfer, one stream per worker.
"""

import asyncio
import time
from dataclasses import asdict, dataclass

from tritonize.client.loadgen import percentile


@dataclass
class StreamLoadResult:
    concurrency: int
    streams: int
    chunks: int
    errors: int
    seconds: float
    streams_per_s: float
    chunks_per_s: float
    ttfc_p50_ms: float
    ttfc_p99_ms: float
    stream_p50_ms: float
    first_error: str = ""

    def as_dict(self):
        return asdict(self)


def summarize(concurrency, records, errors, seconds, first_error=""):
    """records: [(ttfc_s or None, chunks, total_s)] of the streams that ended within the window."""
    ttfcs = sorted(r[0] for r in records if r[0] is not None)
    totals = sorted(r[2] for r in records)
    chunks = sum(r[1] for r in records)
    return StreamLoadResult(
        concurrency=concurrency,
        streams=len(records),
        chunks=chunks,
        errors=errors,
        seconds=round(seconds, 3),
        streams_per_s=len(records) / seconds if seconds else 0.0,
        chunks_per_s=chunks / seconds if seconds else 0.0,
        ttfc_p50_ms=percentile(ttfcs, 0.5) * 1e3,
        ttfc_p99_ms=percentile(ttfcs, 0.99) * 1e3,
        stream_p50_ms=percentile(totals, 0.5) * 1e3,
        first_error=first_error,
    )


async def _closed_loop(open_worker, concurrency, duration_s, warmup_s):
    """open_worker() -> an async function run_stream(on_chunk) -> None (raises on error)."""
    records, state = [], {"errors": 0, "first_error": ""}
    start = time.perf_counter()
    measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s

    async def worker():
        run_stream, close = await open_worker()
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                seen = {"first": None, "chunks": 0}

                def on_chunk(seen=seen):
                    seen["chunks"] += 1
                    if seen["first"] is None:
                        seen["first"] = time.perf_counter()

                try:
                    await run_stream(on_chunk)
                    ok = True
                except Exception as exc:  # counted, never fatal: a benchmark reports errors
                    ok = False
                    state["first_error"] = state["first_error"] or f"{type(exc).__name__}: {exc}"[:300]
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    if ok:
                        ttfc = None if seen["first"] is None else seen["first"] - t0
                        records.append((ttfc, seen["chunks"], t1 - t0))
                    else:
                        state["errors"] += 1
        finally:
            await close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarize(concurrency, records, state["errors"], duration_s, state["first_error"])


async def run_http(url, body, concurrency, duration_s, warmup_s=1.0, headers=None):
    """POST `body` (a generate_stream JSON request) to `url` (http://.../generate_stream) in a closed loop."""
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), headers=headers or {})

    async def open_worker():
        async def run_stream(on_chunk):
            async with session.post(url, data=body) as response:
                async for line in response.content:
                    if line.startswith(b'data: {"error"'):
                        raise RuntimeError(line[6:].decode("utf-8", "replace").strip())
                    if line.startswith(b"data:"):
                        on_chunk()
                if response.status >= 300:
                    raise RuntimeError(f"HTTP {response.status}")

        async def close():
            pass

        return run_stream, close

    try:
        return await _closed_loop(open_worker, concurrency, duration_s, warmup_s)
    finally:
        await session.close()


async def run_grpc(url, model, make_inputs, concurrency, duration_s, warmup_s=1.0, parameters=None):
    """Streams over gRPC ModelStreamInfer in a closed loop; make_inputs(module) -> [InferInput]."""
    import tritonclient.grpc.aio as grpcaio

    from tritonize.client.client import grpc_channel_args

    async def open_worker():
        client = grpcaio.InferenceServerClient(url, channel_args=grpc_channel_args(url))  # no proxy when local
        requests = asyncio.Queue()

        async def request_iterator():
            while True:
                request = await requests.get()
                if request is None:
                    return
                yield request

        responses = client.stream_infer(request_iterator()).__aiter__()
        inputs = make_inputs(grpcaio)
        request_parameters = {**(parameters or {}), "triton_enable_empty_final_response": True}

        async def run_stream(on_chunk):
            # The asyncio client ignores enable_empty_final_response: ask for the final flag as the sync client does.
            await requests.put({"model_name": model, "inputs": inputs, "parameters": request_parameters})
            while True:
                result, error = await responses.__anext__()
                if error is not None:
                    raise RuntimeError(error.message() if hasattr(error, "message") else str(error))
                response = result.get_response()
                if response.outputs:
                    on_chunk()
                final = response.parameters.get("triton_final_response")
                if final is not None and final.bool_param:
                    return

        async def close():
            await requests.put(None)
            await client.close()

        return run_stream, close

    return await _closed_loop(open_worker, concurrency, duration_s, warmup_s)


def format_table(results):
    lines = [
        "streaming API (time to first chunk, chunks/s)",
        f"{'concurrency':>11} {'streams/s':>10} {'chunks/s':>10} {'TTFC p50':>9} {'TTFC p99':>9} "
        f"{'stream p50':>10} {'errors':>7}",
    ]
    for r in results:
        lines.append(
            f"{r.concurrency:>11} {r.streams_per_s:>10.1f} {r.chunks_per_s:>10.1f} {r.ttfc_p50_ms:>7.2f}ms "
            f"{r.ttfc_p99_ms:>7.2f}ms {r.stream_p50_ms:>8.2f}ms {r.errors:>7}"
        )
    first = next((r.first_error for r in results if r.first_error), "")
    if first:
        lines.append(f"first error: {first}")
    return "\n".join(lines)


def is_streaming(http_url, api):
    """Whether the API is a decoupled (streaming) model, from its model configuration as Triton serves it."""
    import json

    from google.protobuf import json_format

    from tritonize.adapter.built_repository import config_from_triton_json
    from tritonize.adapter.built_repository import is_streaming as config_streams
    from tritonize.host import local_http

    try:
        with local_http.urlopen(f"http://{http_url}/v2/models/{api}/config", timeout=10) as response:
            config = config_from_triton_json(json.load(response))
    except (OSError, ValueError, json_format.ParseError):
        return False  # the metadata read before has already said whether the server answers
    return config_streams(config)


def bench_streams(api, data, workload, concurrencies, duration_s, protocol, url, content_type, query_params, progress):
    """`tritonize bench` on a streaming API -> [StreamLoadResult], one per concurrency."""
    import sys

    from tritonize.adapter.runtime.constants import GENERATE_STREAM_PATH
    from tritonize.client.loadgen import Progress
    from tritonize.client.streams import generate_stream_body

    progress = sys.stderr.isatty() if progress is None else progress
    results = []
    for concurrency in concurrencies:
        with Progress(f"concurrency {concurrency}", duration_s + 1, progress):
            if protocol == "http":
                body = generate_stream_body(data, content_type, query_params)
                target = f"http://{url}{GENERATE_STREAM_PATH.format(api=api)}"
                results.append(asyncio.run(run_http(target, body, concurrency, duration_s)))
            else:
                results.append(
                    asyncio.run(
                        run_grpc(
                            url,
                            api,
                            workload.grpc_inputs,
                            concurrency,
                            duration_s,
                            parameters=workload.parameters or None,
                        )
                    )
                )
    return results
