"""Interleaved measurements: every raw number kept, with the server CPU each request cost."""

import os
import statistics

import loads


class Target:
    """One server + model to load: its process (for CPU accounting) and addresses."""

    def __init__(self, label, proc, addresses, model, token=None):
        self.label, self.proc, self.addresses, self.model, self.token = label, proc, addresses, model, token

    def url(self):
        return f"http://{self.addresses.http}/v2/models/{self.model}/infer"


class Recorder:
    def __init__(self, reps, duration):
        self.reps, self.duration, self.raw = reps, duration, {}

    def _served(self, target):
        """Requests the server answered so far, or None where it does not say (not a Triton, restricted)."""
        if target.addresses is None:
            return None
        return loads.served_requests(target.addresses.http, target.model, target.token)

    def _record(self, key, target, run):
        """run() -> a load result; adds cpu_us (server CPU per request) and keeps it under key."""
        cpu0, n0 = loads.server_cpu_s(target.proc.pid), self._served(target)
        result = run()
        cpu1, n1 = loads.server_cpu_s(target.proc.pid), self._served(target)
        answered = n1 - n0 if n0 is not None and n1 is not None else result["requests"]
        for part in ("total", "stub", "tritonserver", "other"):
            suffix = "" if part == "total" else f"_{part}"
            result[f"cpu{suffix}_us"] = (cpu1[part] - cpu0[part]) / max(answered, 1) * 1e6
        result["load"] = os.getloadavg()[0]
        self.raw.setdefault(key, []).append(result)
        print(
            f"  {key:<44} {result['throughput']:9.1f} req/s  p50 {result['p50_ms']:7.3f} ms  "
            f"p99 {result['p99_ms']:7.3f} ms  cpu {result['cpu_us']:6.1f} us/req (stub {result['cpu_stub_us']:5.1f}, "
            f"tritonserver {result['cpu_tritonserver_us']:5.1f}, launcher {result['cpu_other_us']:4.1f})  "
            f"load {result['load']:.1f}",
            flush=True,
        )
        if result["errors"]:
            raise SystemExit(f"{key}: {result['errors']} failed requests; the comparison would be meaningless")
        return result

    def http(self, target, body, concurrency, headers=None, url=None):
        url = url or target.url()
        key = f"{target.label}, HTTP c={concurrency}"
        if key not in self.raw:  # warm-up: first requests of each batch size are slow in torch
            loads.http_load(url, body, concurrency, 2, headers)
        return self._record(key, target, lambda: loads.http_load(url, body, concurrency, self.duration, headers))

    def grpc(self, target, payload_text, concurrency, headers=None):
        key = f"{target.label}, gRPC c={concurrency}"
        return self._record(
            key,
            target,
            lambda: loads.grpc_load(
                target.addresses.grpc, target.model, payload_text, concurrency, self.duration, headers
            ),
        )

    def median(self, key, field="throughput"):
        return statistics.median(r[field] for r in self.raw[key])

    def has(self, key):
        return key in self.raw

    def ratio(self, key, baseline):
        return self.median(key) / self.median(baseline)

    def overhead_us(self, key, baseline, field):
        """Median latency of key minus that of baseline, in microseconds."""
        return (self.median(key, field) - self.median(baseline, field)) * 1000
