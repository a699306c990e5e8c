"""The runtime's failure handling, post_predict worker and metrics_client, in-process."""

import json
import threading
import time

import numpy as np
import pytest
from pipeline_helpers import answer_batch, answer_one, answer_tensors, stream_one

from tritonize.adapter.runtime.metrics import COUNTER, MemorySink, MetricNameError, MetricsClient, Recorder, TritonSink
from tritonize.adapter.runtime.params import ParameterRules
from tritonize.adapter.runtime.post_predict import PostPredictWorker
from tritonize.adapter.runtime.predictor import LoadedPredictor

RULES = ParameterRules(header_pattern="^x-", forward_sensitive=False)


class Hostile:
    """predict() misbehaves as query param op= says; post_predict records what it got."""

    def __init__(self):
        self.post = []
        self.post_delay = 0.0

    def predict(self, payload, query_params):
        op = query_params.get("op", "echo")
        if op == "surrogate-text":
            return "bad \udcff text"
        if op == "surrogate-message":
            raise ValueError("secret \udcff path /etc/x")
        if op == "system-exit":
            raise SystemExit(3)
        if op == "keyboard-interrupt":
            raise KeyboardInterrupt
        if op == "base-exception":
            raise BaseException("base")
        if op == "unprintable":
            raise type("Weird", (Exception,), {"__str__": lambda self: 1 / 0})()
        return {"echo": payload}

    def post_predict(self, response, payload, query_params):
        time.sleep(self.post_delay)
        if query_params.get("post") == "exit":
            raise SystemExit("post_predict exits")
        self.post.append((response, payload, dict(query_params)))


def params(**query):
    return json.dumps(query)


@pytest.mark.parametrize(
    "op", ["surrogate-text", "surrogate-message", "system-exit", "keyboard-interrupt", "base-exception", "unprintable"]
)
def test_hostile_predictor_gets_a_plain_500_and_no_text_leaks(op, caplog):
    reply = answer_one(LoadedPredictor(Hostile()), b"{}", params(op=op), RULES)
    assert reply.status == 500 and reply.message.startswith("internal server error (error id ")
    assert "secret" not in reply.message and "Traceback" not in reply.message
    reply.body.decode("utf-8")  # always valid UTF-8 for Triton's error object
    error_id = reply.message.split("error id ")[1].rstrip(")")
    assert error_id in caplog.text


class StreamingHostile(Hostile):
    def predict(self, payload, query_params):
        yield Hostile.predict(self, payload, query_params)


@pytest.mark.parametrize(
    "op", ["surrogate-text", "surrogate-message", "system-exit", "keyboard-interrupt", "base-exception", "unprintable"]
)
def test_hostile_streaming_predictor_ends_its_stream_with_a_plain_500(op, caplog):
    (reply,) = list(stream_one(LoadedPredictor(StreamingHostile()), b"{}", params(op=op), RULES))
    assert reply.status == 500 and reply.message.startswith("internal server error (error id ")
    assert "secret" not in reply.message and "Traceback" not in reply.message
    reply.body.decode("utf-8")
    assert reply.message.split("error id ")[1].rstrip(")") in caplog.text


def test_debug_errors_show_the_exception_text(monkeypatch):
    monkeypatch.setenv("TRITONIZE_DEBUG_ERRORS", "1")
    reply = answer_one(LoadedPredictor(Hostile()), b"{}", params(op="surrogate-message"), RULES)
    assert "ValueError: secret \\udcff path /etc/x" in reply.message


def test_one_bad_request_in_a_batch_fails_alone():
    class Batch:
        def predict(self, payload):
            return [{"n": p} for p in payload]

    items = [
        (b"[" * 5000 + b"]" * 5000, "{}"),
        (b"1", "{}"),
        (b"hi", params(content_type="text/plain; charset=undefined")),
    ]
    replies = answer_batch(LoadedPredictor(Batch()), items, RULES)
    assert [r.status for r in replies] == [400, 200, 400] and json.loads(replies[1].body) == {"n": 1}


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_post_predict_runs_after_the_reply_with_its_own_result():
    hostile = Hostile()
    hostile.post_delay = 0.5
    predictor = LoadedPredictor(hostile)
    started = time.monotonic()
    reply = answer_one(predictor, b'{"a": 1}', params(tag="1"), RULES)
    assert reply.status == 200 and time.monotonic() - started < 0.3  # not delayed by post_predict
    assert hostile.post == [] and wait_for(lambda: len(hostile.post) == 1)
    assert hostile.post == [({"echo": {"a": 1}}, {"a": 1}, {"tag": "1"})]


def test_post_predict_with_batching_gets_each_requests_own_item():
    class Batch(Hostile):
        def predict(self, payload, query_params):
            return [{"i": p} for p in payload]

    batch = Batch()
    predictor = LoadedPredictor(batch)
    answer_batch(predictor, [(b"1", params(t="a")), (b"{bad", "{}"), (b"2", params(t="b"))], RULES)
    assert wait_for(lambda: len(batch.post) == 2)
    assert batch.post == [({"i": 1}, 1, {"t": "a"}), ({"i": 2}, 2, {"t": "b"})]


def test_post_predict_for_typed_tensors_gets_each_requests_own_arrays():
    class Typed(Hostile):
        def predict(self, payload, query_params):
            return {"y": payload["x"].sum(axis=1, keepdims=True)}

    typed = Typed()
    tensors = {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [2]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [1]}],
    }
    items = [({"x": np.array([[1, 2]], np.float32)}, params(t="a")), ({"x": np.array([[3, 4]], np.float32)}, "{}")]
    answer_tensors(LoadedPredictor(typed), items, tensors, RULES, batching=True)
    assert wait_for(lambda: len(typed.post) == 2)
    (y0, x0, q0), (y1, x1, _) = typed.post
    assert y0["y"].tolist() == [[3.0]] and x0["x"].tolist() == [[1, 2]] and q0 == {"t": "a"}
    assert y1["y"].tolist() == [[7.0]] and x1["x"].tolist() == [[3, 4]]


def test_post_predict_failure_is_logged_and_the_worker_keeps_going(caplog):
    hostile = Hostile()
    predictor = LoadedPredictor(hostile)
    answer_one(predictor, b"1", params(post="exit"), RULES)
    answer_one(predictor, b"2", "{}", RULES)
    assert wait_for(lambda: len(hostile.post) == 1) and "post_predict() failed" in caplog.text


def test_full_post_predict_queue_drops_counts_and_never_blocks(caplog):
    release = threading.Event()
    calls, drops = [], []
    worker = PostPredictWorker(
        lambda **kw: (release.wait(5), calls.append(kw)), on_drop=lambda: drops.append(1), max_pending=2
    )
    started = time.monotonic()
    for i in range(10):
        worker.submit({"i": i})
    assert time.monotonic() - started < 0.5
    assert 7 <= worker.dropped == len(drops) <= 8 and "post_predict is falling behind" in caplog.text
    release.set()
    worker.stop(5)
    assert len(calls) == 10 - worker.dropped


def test_metrics_client_names_tags_and_aggregation():
    sink = MemorySink()
    recorder = Recorder(sink, interval_s=60)
    metrics = MetricsClient("iris", recorder)
    for _ in range(3):
        metrics.increment("my.counter", tags={"model": "v1", "api": "spoof", "1bad-key": 2})
    metrics.gauge("temp", 1)
    metrics.gauge("temp", 42.5)
    metrics.histogram("latency_ms", 120)
    metrics.increment("ignored", value="not a number")  # logged, never raised
    recorder.flush()
    labels = (("_1bad_key", "2"), ("api", "iris"), ("exported_api", "spoof"), ("model", "v1"))
    assert sink.values[("my_counter", labels)] == 3.0
    assert sink.values[("temp", (("api", "iris"),))] == 42.5
    assert sink.values[("latency_ms", (("api", "iris"),))] == [120.0]
    assert not any(name == "ignored" for name, _ in sink.values)


@pytest.mark.parametrize("name", ["cortex_x", "istio_requests", "nv_inference_count", "tritonize_request_errors", ""])
def test_reserved_metric_names_are_refused(name):
    with pytest.raises(MetricNameError, match="reserved prefix|non-empty"):
        MetricsClient("api", Recorder(MemorySink())).increment(name)


class FakeFamily:
    COUNTER, GAUGE, HISTOGRAM = "COUNTER", "GAUGE", "HISTOGRAM"
    made = []

    def __init__(self, name, description, kind):
        self.name, self.kind = name, kind
        FakeFamily.made.append(self)

    def Metric(self, labels, buckets=None):
        return FakeMetric(self, labels, buckets)


class FakeMetric:
    def __init__(self, family, labels, buckets):
        self.family, self.labels, self.buckets, self.calls = family, labels, buckets, []

    def increment(self, value):
        self.calls.append(("increment", value))

    def set(self, value):
        self.calls.append(("set", value))

    def observe(self, value):
        self.calls.append(("observe", value))


def test_triton_sink_maps_kinds_and_keeps_one_family_per_name(caplog):
    """The mapping onto pb_utils.MetricFamily (the real one is exercised by tests/test_e2e_contract.py)."""

    class PbUtils:
        MetricFamily = FakeFamily

    FakeFamily.made.clear()
    recorder = Recorder(TritonSink(PbUtils()), interval_s=60)
    metrics = MetricsClient("a", recorder)
    metrics.increment("c", 2)
    metrics.increment("c", 3)
    metrics.histogram("h", 0.2)
    metrics.histogram("h", 7)
    metrics.gauge("c", 1)  # same name, other kind: logged, not raised
    recorder.record(COUNTER, "neg", (("api", "a"),), -1.0)
    recorder.flush()
    kinds = {family.name: family.kind for family in FakeFamily.made}
    assert kinds == {"c": "COUNTER", "h": "HISTOGRAM", "neg": "COUNTER"}
    assert "already a counter" in caplog.text and "counters only go up" in caplog.text


def test_dropped_post_predict_calls_are_counted_in_a_metric():
    release = threading.Event()

    class Slow:
        def predict(self, payload):
            return payload

        def post_predict(self, response):
            release.wait(10)

    sink = MemorySink()
    recorder = Recorder(sink, interval_s=3600)
    predictor = LoadedPredictor(Slow(), recorder, "slow-api")
    for _ in range(1010):  # the queue holds 1000 (POST_PREDICT_QUEUE_SIZE), one is running
        predictor.post_predict(1, 1, None, None)
    release.set()
    predictor.stop()
    assert 9 <= sink.values[("tritonize_post_predict_dropped", (("api", "slow-api"),))] <= 10


def test_post_predict_queue_is_bounded_in_bytes_too():
    release = threading.Event()
    calls = []
    worker = PostPredictWorker(lambda **kw: (release.wait(5), calls.append(kw)), max_bytes=100)
    worker.submit({"i": 0}, 500)  # alone: taken even if bigger than the bound
    worker.submit({"i": 1}, 60)  # 560 > 100 held: dropped
    assert worker.dropped == 1 and worker.pending_bytes == 500
    release.set()
    worker.stop(5)
    assert calls == [{"i": 0}] and worker.pending_bytes == 0
    worker = PostPredictWorker(lambda **kw: calls.append(kw), max_bytes=100)
    worker.submit({"i": 2}, 60)
    worker.submit({"i": 3}, 30)
    worker.stop(5)
    assert calls[1:] == [{"i": 2}, {"i": 3}] and worker.dropped == 0


def _items(item, n=20000):
    return b"[" + b",".join([item] * n) + b"]"


@pytest.mark.parametrize(
    "document",
    [
        _items(b"{}"),
        _items(b"[]"),
        _items(b'{"a":{}}'),
        _items(b'{"a":0}'),
        _items(b'{"a":1,"b":2.5,"c":"xy"}'),
        b"{" + b",".join(b'"k%d":0' % i for i in range(20000)) + b"}",
        _items(b"1.5"),
        _items(b"123456"),
        _items(b'"ab"'),
        _items(b'"\xc3\xa9t\xc3\xa9"'),
        b'"' + "\U0001f600".encode() + b"x" * 100000 + b'"',
        b'{"x": [1.0, 2.0, 3.0, 4.0]}',
        b"{}",
    ],
    ids=lambda document: document[:12].decode("utf-8", "replace"),
)
def test_json_held_bytes_is_at_least_what_the_parsed_document_holds(document):
    import tracemalloc

    from tritonize.adapter.runtime.post_predict import WORST_HELD_BYTES_PER_BYTE, json_held_bytes

    tracemalloc.start()
    try:
        parsed = json.loads(document)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert parsed is not None
    assert held <= json_held_bytes(document) <= WORST_HELD_BYTES_PER_BYTE * (len(document) + 1)


def test_the_queue_bound_counts_the_parsed_payload_not_the_body():
    """1 KiB of [{},{},...] is ~24 KiB of objects: a 10 KiB bound holds one such call, not ten."""
    release = threading.Event()

    class Slow:
        def predict(self, payload):
            return len(payload)

        def post_predict(self, payload):
            release.wait(10)

    predictor = LoadedPredictor(Slow())
    predictor._post_worker = PostPredictWorker(predictor._post_worker._function, max_bytes=10 * 1024)
    body = b"[" + b",".join([b"{}"] * 350) + b"]"
    assert len(body) < 1100
    for _ in range(3):
        assert answer_one(predictor, body, "{}", RULES).status == 200
    # The first call is taken alone; the next ones would hold more than 10 KiB with it (by body bytes: 3 KiB).
    assert predictor._post_worker.dropped >= 1
    release.set()
    predictor.stop()
