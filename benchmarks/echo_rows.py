"""P1/P2: the JSON echo on `tritonize serve`, a hand-written model on a plain tritonserver, PyTriton.

All servers run at once; every round measures each of them in turn (HTTP c=32, gRPC c=32,
HTTP c=1, gRPC c=1), so drift on a shared machine hits them alike.
"""

import contextlib
import json

import harness
from recorder import Target

from tritonize.adapter.runtime.constants import GRPC_ADMIN_TOKEN_HEADER

# `tritonize serve` restricts the statistics endpoint (read for CPU accounting and by perf_analyzer).
TOKEN = "bench-admin-token"
PAYLOAD = json.dumps({"x": [1.0, 2.0, 3.0, 4.0], "id": "abc"})
BODY = json.dumps({"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": [PAYLOAD]}]}).encode()
# perf_analyzer sends it with every request to every server alike (the plain ones ignore it).
GRPC_HEADERS = {GRPC_ADMIN_TOKEN_HEADER: TOKEN}

TRITONIZE, PERCENTILES = "tritonize serve echo", "tritonize serve --latency-percentiles echo"
HANDWRITTEN, PYTRITON = "hand-written model.py, plain tritonserver", "PyTriton @batch echo"


def measure(rec, echo_repo, raw_repo, workdir, with_percentiles=True):
    with contextlib.ExitStack() as stack:
        targets = {}
        servers = [
            (TRITONIZE, harness.tritonize_serve(echo_repo, ["--admin-token", TOKEN]), "echo", TOKEN),
            (HANDWRITTEN, harness.plain_tritonserver(raw_repo, workdir), "echo_raw", None),
            (PYTRITON, harness.pytriton_server(), "echo_pytriton", None),
        ]
        if with_percentiles:
            servers.append(
                (
                    PERCENTILES,
                    harness.tritonize_serve(echo_repo, ["--admin-token", TOKEN, "--latency-percentiles"]),
                    "echo",
                    TOKEN,
                )
            )
        for label, (server, addresses), model, token in servers:
            targets[label] = Target(label, stack.enter_context(server), addresses, model, token)
        throughput = list(targets.values())
        latency = [targets[TRITONIZE], targets[HANDWRITTEN]]
        for _ in range(rec.reps):
            for target in throughput:
                rec.http(target, BODY, 32)
            for target in throughput[:3]:
                rec.grpc(target, PAYLOAD, 32, GRPC_HEADERS)
            for target in latency:
                rec.http(target, BODY, 1)
            for target in latency:
                rec.grpc(target, PAYLOAD, 1, GRPC_HEADERS)


def goal_rows(rec):
    def key(label, what):
        return f"{label}, {what}"

    rows = []
    for proto in ("HTTP", "gRPC"):
        rows.append(
            (
                f"P1 {proto} adapter overhead",
                "tritonize serve ÷ hand-written model, plain tritonserver",
                rec.ratio(key(TRITONIZE, f"{proto} c=32"), key(HANDWRITTEN, f"{proto} c=32")),
                ">= 0.95",
            )
        )
    for proto, goal in (("HTTP", ">= 3.0"), ("gRPC", "reported")):
        rows.append(
            (
                f"P2 {proto} vs PyTriton",
                "tritonize serve ÷ PyTriton @batch",
                rec.ratio(key(TRITONIZE, f"{proto} c=32"), key(PYTRITON, f"{proto} c=32")),
                goal,
            )
        )
    for proto in ("HTTP", "gRPC"):
        for field, goal in (("p50_ms", "<= 50 µs" if proto == "HTTP" else "reported"), ("p99_ms", "reported")):
            rows.append(
                (
                    f"c=1 {proto} {field[:3]} overhead",
                    "tritonize − hand-written, µs",
                    rec.overhead_us(key(TRITONIZE, f"{proto} c=1"), key(HANDWRITTEN, f"{proto} c=1"), field),
                    goal,
                )
            )
    for proto in ("HTTP", "gRPC"):
        for field, part in (
            ("cpu_us", "all"),
            ("cpu_stub_us", "instance (stub)"),
            ("cpu_tritonserver_us", "tritonserver"),
            ("cpu_other_us", "launcher"),
        ):
            extra = rec.overhead_us(key(TRITONIZE, f"{proto} c=32"), key(HANDWRITTEN, f"{proto} c=32"), field) / 1000
            rows.append(
                (
                    f"server CPU/request {proto}, {part}",
                    "tritonize − hand-written, µs (c=32; medians, the parts need not sum)",
                    extra,
                    "reported",
                )
            )
    if rec.has(key(PERCENTILES, "HTTP c=32")):
        rows.append(
            (
                "--latency-percentiles cost",
                "serve with ÷ without, HTTP c=32",
                rec.ratio(key(PERCENTILES, "HTTP c=32"), key(TRITONIZE, "HTTP c=32")),
                "reported",
            )
        )
    return rows
