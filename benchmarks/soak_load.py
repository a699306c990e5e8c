"""Soak: a fixed number of requests at a fixed concurrency, and the memory of the
server's processes before and after (tests/test_e2e_soak.py, benchmarks/soak.py)."""

import asyncio
import json
import os
import time
from collections import Counter

from tritonize.adapter.runtime.constants import CONTENT_TYPE_OUTPUT_NAME, INPUT_NAME, OUTPUT_NAME


def rss_kib(pid):
    """VmRSS of a process in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return sorted(found)


def memory_snapshot(server_pid):
    """{"tritonserver": KiB, "stubs": {pid: KiB}}."""
    return {"tritonserver": rss_kib(server_pid), "stubs": {pid: rss_kib(pid) for pid in children(server_pid)}}


def infer_body(payload):
    return json.dumps(
        {
            "inputs": [{"name": INPUT_NAME, "shape": [1, 1], "datatype": "BYTES", "data": [json.dumps(payload)]}],
            "outputs": [{"name": OUTPUT_NAME}, {"name": CONTENT_TYPE_OUTPUT_NAME}],
        }
    ).encode()


async def soak_http(base_url, api, total, concurrency, timeout_s=60.0):
    """POST `total` requests to API with `concurrency` in flight; check every answer.

    -> {"requests", "seconds", "throughput", "statuses": {status: count}, "wrong": n, "first_error"}
    where `wrong` counts 200 answers whose body is not the request's own echo.
    """
    import aiohttp

    url = f"{base_url.rstrip('/')}/v2/models/{api}/infer"
    counter = iter(range(total))
    statuses, state = Counter(), {"wrong": 0, "first_error": ""}

    async def worker(session):
        for i in counter:
            try:
                async with session.post(url, data=infer_body({"i": i})) as response:
                    data = await response.read()
                    statuses[response.status] += 1
                    if response.status != 200:
                        state["first_error"] = state["first_error"] or f"HTTP {response.status}: {data[:200]!r}"
                        continue
                    out = json.loads(json.loads(data)["outputs"][0]["data"][0])
                    if out.get("i") != i:
                        state["wrong"] += 1
            except Exception as exc:  # counted, a soak reports every failure
                statuses[type(exc).__name__] += 1
                state["first_error"] = state["first_error"] or f"{type(exc).__name__}: {exc}"[:300]

    start = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    return {
        "requests": total,
        "seconds": round(seconds, 2),
        "throughput": round(total / seconds, 1),
        "statuses": {str(k): v for k, v in statuses.items()},
        "wrong": state["wrong"],
        "first_error": state["first_error"],
    }


def run_soak(base_url, api, total, concurrency, server_pid):
    """soak_http plus memory before/after; growth in KiB per process."""
    before = memory_snapshot(server_pid)
    result = asyncio.run(soak_http(base_url, api, total, concurrency))
    after = memory_snapshot(server_pid)
    result["rss_kib"] = {
        "before": before,
        "after": after,
        "tritonserver_growth": after["tritonserver"] - before["tritonserver"],
        "stub_growth": {pid: after["stubs"].get(pid, 0) - kib for pid, kib in before["stubs"].items()},
    }
    return result
