"""`tritonize status`: each API's state, instances, requests, errors and latencies, like `cortex get`.

Reads Triton's repository index, model configs and statistics (HTTP endpoint: counts and
mean latencies since each model loaded) and /metrics (metrics endpoint: the runtime's error
counter, and p50/p99 summaries when the server exports them: `serve --latency-percentiles`).
Behind a load balancer, each read is answered by whichever replica the balancer picks.
"""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from tritonize.adapter.built_repository import config_from_triton_json, instance_count
from tritonize.adapter.runtime.constants import (
    ADMIN_TOKEN_ENV,
    ADMIN_TOKEN_HEADER,
    BATCH_API,
    BATCH_INPUT_NAME,
    DEFAULT_PORTS,
    ERROR_METRIC,
    LOADED_MODELS_METRIC,
    REALTIME_API,
    SINGLE_MODEL_NAME,
)
from tritonize.errors import StatusError
from tritonize.health.prometheus import parse_metrics
from tritonize.host import local_http


@dataclass
class ApiStatus:
    name: str
    state: str  # ready / loading / failed / unloaded
    reason: str = ""
    instances: int = 0
    requests: int = 0
    errors: int = 0
    # Means since the model loaded, from Triton's statistics (always available).
    mean_ms: float | None = None
    queue_mean_ms: float | None = None
    # From the latency summaries in /metrics (only with serve --latency-percentiles).
    p50_ms: float | None = None
    p99_ms: float | None = None
    queue_p50_ms: float | None = None
    queue_p99_ms: float | None = None
    # python_client APIs: {(model name, version): instances holding it in memory}.
    models: dict | None = None
    # Requests queued and not yet executing: growing while `requests` stays put = a stuck
    # predictor (serve's watchdog and the Kubernetes liveness check tell it: health/stuck.py).
    waiting: int = 0
    # RealtimeAPI, or BatchAPI: loaded only while a job runs (state "running"), else "idle".
    kind: str = REALTIME_API


def _url(base, path):
    return (base if "://" in base else f"http://{base}") + path


def _request(base, path, token=None, method="GET", timeout=5):
    headers = {ADMIN_TOKEN_HEADER: token} if token else {}
    request = urllib.request.Request(
        _url(base, path), method=method, headers=headers, data=b"{}" if method == "POST" else None
    )
    try:
        with local_http.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")[:200]
        if exc.code in (401, 403):
            raise StatusError(
                f"{_url(base, path)}: {exc.code} {body} (pass --token or set {ADMIN_TOKEN_ENV})"
            ) from None
        raise StatusError(f"{_url(base, path)}: HTTP {exc.code} {body}") from None
    except OSError as exc:
        raise StatusError(f"cannot reach {_url(base, path)} ({exc}); is the server running?") from None


def loaded_models(samples, api):
    """{(model name, version): instances} that a python_client API holds in memory (its gauge)."""
    models = {}
    for name, labels, value in samples:
        if name == LOADED_MODELS_METRIC and labels.get("model") == api and value == 1:
            key = (labels.get("model_name", ""), labels.get("model_version", ""))
            models[key] = models.get(key, 0) + 1
    return models or None


def _quantile(samples, metric, model, quantile):
    for name, labels, value in samples:
        if name == metric and labels.get("model") == model and labels.get("quantile") == quantile:
            return None if value != value else value / 1000.0  # NaN: no request in the window
    return None


_STATES = {"READY": "ready", "LOADING": "loading", "UNLOADING": "unloading", "UNAVAILABLE": "failed"}


def collect(url, metrics_url=None, token=None, api=None, batch_apis=()):
    """-> [ApiStatus] for every model in the repository index (or just `api`).

    batch_apis: names known to be BatchAPIs (the server's repository says so; Triton's index does not): shown
    "idle" while no job has them loaded. A loaded BatchAPI is told by its config (input BATCH) anyway."""
    index = json.loads(_request(url, "/v2/repository/index", token, method="POST"))
    stats = {s["name"]: s for s in json.loads(_request(url, "/v2/models/stats", token)).get("model_stats", [])}
    samples = []
    if metrics_url:
        samples = parse_metrics(_request(metrics_url, "/metrics", token).decode("utf-8", "replace"))
    result = []
    for entry in sorted(index, key=lambda e: e["name"]):
        name = entry["name"]
        if api and name != api:
            continue
        state = _STATES.get(entry.get("state", ""), entry.get("state", "").lower() or "unloaded")
        reason = entry.get("reason", "")
        if state == "failed" and reason == "unloaded":
            state, reason = "unloaded", ""
        status = ApiStatus(name=name, state=state, reason=reason)
        if name in batch_apis:
            status.kind = BATCH_API
            if state in ("unloaded", "unloading"):
                status.state = "idle"
        if state == "ready":
            config = config_from_triton_json(json.loads(_request(url, f"/v2/models/{name}/config", token)))
            if any(tensor.name == BATCH_INPUT_NAME for tensor in config.input):
                status.kind, status.state = BATCH_API, "running"  # a job's workers
            status.instances = instance_count(config)
            inference = stats.get(name, {}).get("inference_stats", {})
            status.requests = int(inference.get("success", {}).get("count", 0))
            # Triton's own failures (rejected before the model) + the runtime's error responses, which
            # Triton 2.51 counts as successes: the model's tritonize_request_errors counter.
            runtime_errors = int(
                sum(v for n, labels, v in samples if n == ERROR_METRIC and labels.get("model") == name)
            )
            failed = int(inference.get("fail", {}).get("count", 0))
            status.requests += failed
            status.errors = failed + runtime_errors
            status.mean_ms = _mean_ms(inference.get("success", {}))
            status.queue_mean_ms = _mean_ms(inference.get("queue", {}))
            status.p50_ms = _quantile(samples, "nv_inference_request_summary_us", name, "0.5")
            status.p99_ms = _quantile(samples, "nv_inference_request_summary_us", name, "0.99")
            status.queue_p50_ms = _quantile(samples, "nv_inference_queue_summary_us", name, "0.5")
            status.queue_p99_ms = _quantile(samples, "nv_inference_queue_summary_us", name, "0.99")
            status.models = loaded_models(samples, name)
            status.waiting = int(
                sum(
                    v
                    for n, labels, v in samples
                    if n == "nv_inference_pending_request_count" and labels.get("model") == name
                )
            )
        result.append(status)
    if api and not result:
        raise StatusError(f"no API named {api!r} at {_url(url, '')}")
    return result


def _mean_ms(duration):
    """A statistics duration {count, ns} -> mean milliseconds, None before the first request."""
    count = int(duration.get("count", 0))
    return int(duration.get("ns", 0)) / count / 1e6 if count else None


def default_metrics_url(url, metrics_port=DEFAULT_PORTS["metrics"]):
    host = url.split("://", 1)[-1].rsplit(":", 1)[0] if ":" in url.split("://", 1)[-1] else url
    return f"{host}:{metrics_port}"


def _ms(value):
    return "-" if value is None else f"{value:.1f}"


PERCENTILES_HINT = "p50/p99: start the server with `tritonize serve --latency-percentiles`"


def format_table(statuses):
    """The status table; p50/p99 columns only when the server exports latency summaries."""
    percentiles = any(s.p50_ms is not None or s.queue_p50_ms is not None for s in statuses)
    kinds = any(s.kind != REALTIME_API for s in statuses)
    header = (
        ("api",) + (("kind",) if kinds else ()) + ("status", "instances", "requests", "errors", "mean ms", "queue ms")
    )
    if percentiles:
        header += ("p50 ms", "p99 ms", "queue p50", "queue p99")
    header += ("waiting",)  # queued, not executing: growing while requests stays put = stuck
    rows = [header]
    for s in statuses:
        loaded = s.state in ("ready", "running")
        row = (
            s.name,
            *((s.kind,) if kinds else ()),
            s.state,
            str(s.instances) if loaded else "-",
            str(s.requests),
            str(s.errors),
            _ms(s.mean_ms),
            _ms(s.queue_mean_ms),
        )
        if percentiles:
            row += (_ms(s.p50_ms), _ms(s.p99_ms), _ms(s.queue_p50_ms), _ms(s.queue_p99_ms))
        rows.append(row + (str(s.waiting) if loaded else "-",))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for s in statuses:
        if s.reason:
            lines.append(f"{s.name}: {s.reason}")
    if not percentiles and any(s.state == "ready" for s in statuses):
        lines.append(f"(means since each API loaded; {PERCENTILES_HINT})")
    for s in statuses:
        if s.models:
            lines.append(f"{s.name}: models in memory: {_models_text(s.models, s.instances)}")
    return "\n".join(lines)


def _models_text(models, instances):
    parts = []
    for (name, version), count in sorted(models.items(), key=lambda item: (item[0][0], int(item[0][1] or 0))):
        text = f"version {version}" if name == SINGLE_MODEL_NAME else f"{name} {version}"
        parts.append(text if instances <= 1 else f"{text} ({count} of {instances} instances)")
    return ", ".join(parts)
