"""Cortex's `metrics_client`, served as Triton custom metrics on Triton's /metrics port.

Cortex pushed increment/gauge/histogram over statsd (UDP: failures raised nothing).
Here each call only updates an in-process table (a lock and a dict: no IPC on the
request path); a background thread per instance sends the changes to Triton
(pb_utils.MetricFamily) every METRICS_FLUSH_INTERVAL_S. One Triton metric update is
an IPC round trip (20-70 us measured on 2.51), too slow to pay per request.

Series are labelled `api=<API name>` plus the call's tags. A histogram becomes a
Prometheus histogram with the fixed HISTOGRAM_BUCKETS (statsd timers had no buckets
to carry over). The only error a predictor sees: a refused metric name (as Cortex).
"""

import logging
import re
import threading

from .constants import HISTOGRAM_BUCKETS, MAX_PENDING_OBSERVATIONS, METRICS_FLUSH_INTERVAL_S, RESERVED_METRIC_PREFIXES

log = logging.getLogger("tritonize")

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
API_LABEL = "api"


class MetricNameError(ValueError):
    """A metric name the client refuses (a programming error, raised as Cortex did)."""


def metric_name(metric):
    """'my.metric-x' -> 'my_metric_x' (Prometheus' character set, as statsd_exporter mapped it)."""
    if not isinstance(metric, str) or not metric:
        raise MetricNameError(f"metric name must be a non-empty string, got {metric!r}")
    name = _INVALID.sub("_", metric)
    if name[0].isdigit():
        name = "_" + name
    if name.lower().startswith(RESERVED_METRIC_PREFIXES):
        raise MetricNameError(
            f"metric name {metric!r} is invalid: it starts with a reserved prefix "
            f"({', '.join(RESERVED_METRIC_PREFIXES)}: Cortex's, Triton's and tritonize's own metrics)"
        )
    return name


def _labels(api_name, tags):
    labels = {}
    if tags:
        for key, value in dict(tags).items():
            key = _INVALID_LABEL.sub("_", str(key)) or "_"
            if key[0].isdigit():
                key = "_" + key
            if key == API_LABEL:
                key = "exported_api"  # Prometheus' convention when a label collides with the target's
            labels[key] = str(value)
    labels[API_LABEL] = api_name
    return tuple(sorted(labels.items()))


class MetricsClient:
    """What a predictor's __init__(metrics_client) receives."""

    def __init__(self, api_name, recorder):
        self._api_name = api_name
        self._recorder = recorder

    def increment(self, metric, value=1, tags=None):
        self._record(COUNTER, metric, value, tags)

    def gauge(self, metric, value, tags=None):
        self._record(GAUGE, metric, value, tags)

    def histogram(self, metric, value, tags=None):
        self._record(HISTOGRAM, metric, value, tags)

    def _record(self, kind, metric, value, tags):
        name = metric_name(metric)
        try:
            number = float(value)
            labels = _labels(self._api_name, tags)
        except Exception as exc:  # a metrics failure never fails a request
            self._recorder.warn_once((kind, name), f"metric {name!r}: value {value!r} or tags ignored: {exc}")
            return
        self._recorder.record(kind, name, labels, number)


class Recorder:
    """Pending metric changes of one instance, sent to a sink by a background thread."""

    def __init__(self, sink, interval_s=METRICS_FLUSH_INTERVAL_S):
        self._sink = sink
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending = {}  # (kind, name, labels) -> counter delta | gauge value | [observations]
        self._warned = set()
        self._thread = None
        self._stopped = threading.Event()

    def record(self, kind, name, labels, value):
        key = (kind, name, labels)
        with self._lock:
            if kind == COUNTER:
                self._pending[key] = self._pending.get(key, 0.0) + value
            elif kind == GAUGE:
                self._pending[key] = value
            else:
                observations = self._pending.setdefault(key, [])
                if len(observations) < MAX_PENDING_OBSERVATIONS:
                    observations.append(value)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tritonize-metrics", daemon=True)
                self._thread.start()

    def warn_once(self, key, message):
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s (further such warnings for it are not shown)", message)

    def flush(self):
        with self._flush_lock:  # the flusher thread and stop() at unload: one at a time
            with self._lock:
                pending, self._pending = self._pending, {}
            for (kind, name, labels), value in pending.items():
                try:
                    self._sink.apply(kind, name, labels, value)
                except Exception as exc:  # metrics disabled, kind clash, negative counter increment...
                    self.warn_once((kind, name), f"metric {name!r} ({kind}) not exported: {type(exc).__name__}: {exc}")

    def _run(self):
        while not self._stopped.wait(self._interval_s):
            self.flush()

    def stop(self):
        self._stopped.set()
        self.flush()


def triton_utils():
    """triton_python_backend_utils when this runs inside Triton's stub with metrics, else None."""
    try:
        import triton_python_backend_utils as pb_utils
    except ImportError:  # not inside Triton (tritonize test, unit tests)
        return None
    return pb_utils if hasattr(pb_utils, "MetricFamily") else None


class TritonMetric:
    """One Triton metric family (pb_utils.MetricFamily) and its series, one per label set: the one
    wrapper of Triton's metric API (metrics_client's metrics, the error counter, the models gauge)."""

    def __init__(self, pb_utils, name, description, kind):
        family_kinds = pb_utils.MetricFamily
        triton_kind = getattr(family_kinds, kind.upper())
        self.name, self.kind = name, kind
        self._family = pb_utils.MetricFamily(name=name, description=description, kind=triton_kind)
        self._series = {}  # labels (sorted tuple of pairs) -> Metric

    def series(self, labels):
        """The Metric of these labels (a sorted tuple of (name, value)), created on first use."""
        metric = self._series.get(labels)
        if metric is None:
            options = {"buckets": list(HISTOGRAM_BUCKETS)} if self.kind == HISTOGRAM else {}
            metric = self._series[labels] = self._family.Metric(labels=dict(labels), **options)
        return metric

    def apply(self, labels, value):
        """counter: add value; gauge: set it; histogram: observe each of value (a list)."""
        metric = self.series(labels)
        if self.kind == COUNTER:
            if value < 0:
                raise ValueError(f"counters only go up (increment by {value})")
            metric.increment(value)
        elif self.kind == GAUGE:
            metric.set(value)
        else:
            for observation in value:
                metric.observe(observation)


def triton_metric(name, description, kind, owner=""):
    """A TritonMetric, or None outside Triton or when Triton refuses it (metrics disabled): serving goes on."""
    pb_utils = triton_utils()
    if pb_utils is None:
        return None
    try:
        return TritonMetric(pb_utils, name, description, kind)
    except Exception as exc:
        log.warning("%sno %s metric: %s", f"{owner}: " if owner else "", name, exc)
        return None


class TritonSink:
    """Applies metrics_client's changes to Triton metrics (a family per name, created on first use)."""

    def __init__(self, pb_utils, description="Custom metric of a tritonize API (metrics_client)"):
        self._pb = pb_utils
        self._description = description
        self._families = {}  # name -> TritonMetric

    def apply(self, kind, name, labels, value):
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = TritonMetric(self._pb, name, self._description, kind)
        if family.kind != kind:
            raise ValueError(f"{name!r} is already a {family.kind}, it cannot also be a {kind}")
        family.apply(labels, value)


class MemorySink:
    """Outside Triton (`tritonize test`): keeps the values, so names and values are still checked."""

    def __init__(self):
        self.values = {}

    def apply(self, kind, name, labels, value):
        key = (name, labels)
        if kind == COUNTER:
            self.values[key] = self.values.get(key, 0.0) + value
        elif kind == GAUGE:
            self.values[key] = value
        else:
            self.values.setdefault(key, []).extend(value)


def metrics_sink():
    pb_utils = triton_utils()
    return MemorySink() if pb_utils is None else TritonSink(pb_utils)
