"""Streaming without Triton: which APIs stream (build), and the runtime's stream code with a fake sender."""

import os
import threading
import time

import numpy as np
import pytest
from conftest import FIXTURES, run_tritonize
from pipeline_helpers import api_settings, stream_batch, stream_one

from tritonize.adapter.build import build, load_apis
from tritonize.adapter.runtime.constants import DEFAULT_STREAM_THREADS
from tritonize.adapter.runtime.params import ParameterRules
from tritonize.adapter.runtime.pipeline import Pipeline
from tritonize.adapter.runtime.streaming import StreamExecutor, parse_error_chunk
from tritonize.adapter.signature import predict_is_generator
from tritonize.errors import SpecError

STREAMING = os.path.join(FIXTURES, "streaming")
FINAL = 1
RULES = ParameterRules(header_pattern="^x-")


def test_generator_predict_is_seen_in_the_source():
    yields = "class PythonPredictor:\n    def predict(self, payload):\n        yield 1\n"
    yields_from = "class PythonPredictor:\n    def predict(self, payload):\n        yield from [1]\n"
    nested = (
        "class PythonPredictor:\n    def predict(self, payload):\n"
        "        def inner():\n            yield 1\n        return list(inner())\n"
    )
    plain = "class PythonPredictor:\n    def predict(self, payload):\n        return (x for x in [1])\n"
    inherited = "class PythonPredictor(Base):\n    pass\n"
    assert predict_is_generator(yields) is True
    assert predict_is_generator(yields_from) is True
    assert predict_is_generator(nested) is False  # a helper generator inside does not make predict one
    assert predict_is_generator(plain) is False
    assert predict_is_generator(inherited) is None


def _spec(tmp_path, predictor_source, extra=""):
    (tmp_path / "p.py").write_text(predictor_source)
    (tmp_path / "cortex.yaml").write_text(f"- name: api\n  predictor:\n    path: p.py\n{extra}")
    return str(tmp_path / "cortex.yaml")


YIELDING = "class PythonPredictor:\n    def predict(self, payload):\n        yield payload\n"
RETURNING = "class PythonPredictor:\n    def predict(self, payload):\n        return iter([payload])\n"


def test_build_makes_streaming_apis_decoupled(tmp_path):
    result = build(os.path.join(STREAMING, "cortex.yaml"), str(tmp_path / "repo"))
    by_name = {api.name: api for api in result.apis}
    assert by_name["stream"].streaming and by_name["batched-stream"].streaming and not by_name["echo"].streaming
    assert "decoupled: true" in (tmp_path / "repo" / "stream" / "config.pbtxt").read_text()
    assert "decoupled" not in (tmp_path / "repo" / "echo" / "config.pbtxt").read_text()
    settings = (tmp_path / "repo" / "stream" / "1" / "tritonize_api.json").read_text()
    assert '"stream": true' in settings and '"stream_threads": 4' in settings
    batched = (tmp_path / "repo" / "batched-stream" / "1" / "tritonize_api.json").read_text()
    assert f'"stream_threads": {DEFAULT_STREAM_THREADS}' in batched


def test_explicit_stream_key(tmp_path):
    spec = _spec(tmp_path, RETURNING, "  tritonize:\n    stream: true\n")
    (api,) = build(spec, str(tmp_path / "repo")).apis
    assert api.streaming  # returns an iterator without yielding: the spec says it streams
    spec = _spec(tmp_path, YIELDING, "  tritonize:\n    stream: false\n")
    with pytest.raises(SpecError, match="yields.*tritonize.stream: false"):
        build(spec, str(tmp_path / "repo2"))
    spec = _spec(tmp_path, YIELDING, "  tritonize:\n    stream: maybe\n")
    with pytest.raises(SpecError, match="tritonize.stream: expected true or false"):
        load_apis(spec)


def test_threads_per_process(tmp_path):
    spec = _spec(tmp_path, YIELDING, "    threads_per_process: 0\n")
    with pytest.raises(SpecError, match="threads_per_process: expected a positive integer"):
        load_apis(spec)
    # Not streaming: the setting means nothing, and says so.
    spec = _spec(tmp_path, RETURNING.replace("iter([payload])", "payload"), "    threads_per_process: 3\n")
    result = build(spec, str(tmp_path / "repo"))
    assert any("threads_per_process (not needed" in w for w in result.warnings)


def test_typed_tensor_apis_do_not_stream(tmp_path):
    extra = (
        "    tensors:\n      inputs: [{name: x, dtype: float32, shape: [2]}]\n"
        "      outputs: [{name: y, dtype: float32, shape: [2]}]\n"
    )
    with pytest.raises(SpecError, match="typed tensor API cannot stream"):
        build(_spec(tmp_path, YIELDING, extra), str(tmp_path / "repo"))


class Predictor:
    """A LoadedPredictor stand-in: predict(payload, query_params, headers)."""

    wants_payload = True

    def __init__(self, function):
        self.function = function

    def predict(self, payload, query_params, headers):
        return self.function(payload)


def _bodies(replies):
    return [(reply.status, reply.body) for reply in replies]


def test_each_item_is_encoded_like_a_return_value():
    def predict(payload):
        yield {"a": 1}
        yield "text"
        yield b"\x00bin"

    replies = list(stream_one(Predictor(predict), b"{}", "{}", RULES))
    assert [(r.body, r.content_type) for r in replies] == [
        (b'{"a": 1}', "application/json"),
        (b"text", "text/plain; charset=utf-8"),
        (b"\x00bin", "application/octet-stream"),
    ]


def test_error_mid_stream_ends_it_and_bad_bodies_never_reach_predict():
    def predict(payload):
        yield 1
        raise ValueError("boom")

    replies = list(stream_one(Predictor(predict), b"{}", "{}", RULES))
    assert replies[0].body == b"1" and replies[1].status == 500
    assert replies[1].message.startswith("internal server error (error id ")  # the reason: in the log
    assert len(replies) == 2
    called = []
    replies = list(stream_one(Predictor(lambda p: called.append(p)), b"{nope", "{}", RULES))
    assert len(replies) == 1 and replies[0].status == 400 and not called
    # NaN cannot be JSON: that chunk is the stream's last, a 500.
    replies = list(stream_one(Predictor(lambda p: iter([1, float("nan"), 2])), b"{}", "{}", RULES))
    assert [r.status for r in replies] == [200, 500]


def test_closing_the_stream_closes_the_predictors_generator():
    closed = []

    def predict(payload):
        try:
            while True:
                yield 1
        finally:
            closed.append(True)

    replies = stream_one(Predictor(predict), b"{}", "{}", RULES)
    next(replies)
    replies.close()
    assert closed == [True]


def test_error_chunk_status_round_trips():
    assert parse_error_chunk("[404] no such model\nsecond line") == (404, "no such model\nsecond line")
    assert parse_error_chunk("Request for unknown model") is None


def test_batched_stream_steps():
    def predict(payloads):
        counts = [p["n"] for p in payloads]
        for step in range(max(counts)):
            yield [step if step < n else None for n in counts]

    items = [(b'{"n": 1}', "{}"), (b"{bad", "{}"), (b'{"n": 3}', "{}")]
    steps = list(stream_batch(Predictor(predict), items, RULES))
    assert [(i, r.status) for i, r in steps[0]] == [(1, 400)]  # refused at once, alone
    flat = [(i, None if r is None else r.body) for events in steps[1:] for i, r in events]
    assert flat == [(0, b"0"), (2, b"0"), (0, None), (2, b"1"), (2, b"2"), (2, None)]

    def wrong(payloads):
        yield [1]  # one item for a batch of two

    steps = list(stream_batch(Predictor(wrong), items[:1] * 2, RULES))
    assert all(
        r.status == 500 and r.message.startswith("internal server error") for _, r in steps[0]
    )  # reason: in the log


class FakeSender:
    def __init__(self, log, cancel_after=None):
        self.log, self.cancel_after, self.sent = log, cancel_after, 0

    def send(self, response=None, flags=0):
        if response is not None:
            self.sent += 1
        self.log.append((self, response, flags))

    def is_cancelled(self):
        return self.cancel_after is not None and self.sent >= self.cancel_after


class FakeRequest:
    def __init__(self, sender, body):
        self.sender, self.body = sender, body

    def get_response_sender(self):
        return self.sender

    def parameters(self):
        return "{}"


def _input_array(request, name):
    return np.array([[request.body]], dtype=object)


def _executor(predictor, threads=4, batching=False):
    pipeline = Pipeline(predictor, api_settings(predictor_batching=batching), RULES)
    return StreamExecutor(pipeline, threads, _input_array, lambda reply: reply, FINAL)


def _wait_final(log, senders, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(any(s is sender and flags == FINAL for s, _, flags in log) for sender in senders):
            return
        time.sleep(0.01)
    raise AssertionError(f"no final flag: {log}")


def test_executor_runs_streams_side_by_side_and_ends_each_with_the_final_flag():
    gate = threading.Event()

    def predict(payload):
        if payload["slow"]:
            gate.wait(10)  # blocks until the fast stream has finished
        yield payload["slow"]

    log = []
    slow, fast = FakeSender(log), FakeSender(log)
    executor = _executor(Predictor(predict))
    executor.execute([FakeRequest(slow, b'{"slow": true}'), FakeRequest(fast, b'{"slow": false}')])
    _wait_final(log, [fast])
    gate.set()
    _wait_final(log, [slow])
    for sender in (slow, fast):
        mine = [(r, f) for s, r, f in log if s is sender]
        assert mine[-1] == (None, FINAL) and len(mine) == 2  # one chunk, then the final flag alone
    error_log = []
    broken = FakeSender(error_log)
    executor.execute([FakeRequest(broken, b"{nope")])
    _wait_final(error_log, [broken])
    (reply,) = [r for _, r, _ in error_log if r is not None]
    assert reply.status == 400 and reply.message.startswith("[400] ")


def test_executor_stops_a_cancelled_stream(monkeypatch):
    import tritonize.adapter.runtime.streaming as streaming

    monkeypatch.setattr(streaming, "CANCEL_CHECK_INTERVAL_S", 0)
    closed = threading.Event()

    def predict(payload):
        try:
            while True:
                yield 1
        finally:
            closed.set()

    log = []
    sender = FakeSender(log, cancel_after=3)
    _executor(Predictor(predict)).execute([FakeRequest(sender, b"{}")])
    assert closed.wait(10)
    _wait_final(log, [sender])
    assert sender.sent == 3


def test_test_command_streams(tmp_path):
    spec = os.path.join(STREAMING, "cortex.yaml")
    result = run_tritonize("test", spec, "--api", "stream", "--stream", "-d", '{"n": 3, "kind": "text"}')
    assert result.stdout == "tok0 tok1 tok2 \n"
    result = run_tritonize("test", spec, "--api", "stream", "-d", '{"n": 3}', check=False)
    assert result.returncode != 0 and "--stream" in result.stderr
    result = run_tritonize("test", spec, "--api", "stream", "--stream", "-d", '{"n": 3, "fail_at": 1}', check=False)
    assert result.returncode == 1 and result.stdout.count("\n") == 1 and "[500]" in result.stderr


def test_a_request_cancelled_while_queued_never_reaches_predict():
    gate, calls = threading.Event(), []

    def predict(payload):
        calls.append(payload["name"])
        if payload["name"] == "first":
            gate.wait(10)
        yield payload["name"]

    log = []
    first, gone = FakeSender(log), FakeSender(log, cancel_after=0)
    executor = _executor(Predictor(predict), threads=1)
    executor.execute([FakeRequest(first, b'{"name": "first"}')])
    waiting = threading.Thread(target=executor.execute, args=([FakeRequest(gone, b'{"name": "gone"}')],))
    waiting.start()  # blocks: the one stream thread is busy
    time.sleep(0.1)
    gate.set()
    waiting.join(10)
    _wait_final(log, [first, gone])
    assert calls == ["first"] and gone.sent == 0


def test_untagged_stream_errors_get_tritons_http_statuses():
    from tritonize.adapter.runtime.stream_errors import stream_error_status

    assert stream_error_status("[422] cannot stream that") == (422, "cannot stream that")
    assert stream_error_status("Request for unknown model: 'x' is not found") == (
        404,
        "Request for unknown model: 'x' is not found",
    )
    assert stream_error_status("inference request batch-size must be <= 8") == (
        400,
        "inference request batch-size must be <= 8",
    )
    assert stream_error_status("broken", 503) == (503, "broken")


class UnreadableRequest(FakeRequest):
    """What Triton hands over when a forwarded header or gRPC metadata value is not UTF-8."""

    def parameters(self):
        raise UnicodeDecodeError("utf-8", b"\xff\xfe", 0, 1, "invalid start byte")


@pytest.mark.parametrize("batching", [False, True])
def test_a_request_whose_parameters_cannot_be_read_gets_a_400_and_its_stream_ends(batching):
    called = []

    def predict(payload):
        called.append(payload)
        yield [1] * len(payload) if batching else 1

    log = []
    bad, good = FakeSender(log), FakeSender(log)
    _executor(Predictor(predict), batching=batching).execute(
        [UnreadableRequest(bad, b"{}"), FakeRequest(good, b'{"ok": 1}')]
    )
    _wait_final(log, [bad, good])  # before the shared pipeline, the bad one never got its final flag
    (reply,) = [r for s, r, _ in log if s is bad and r is not None]
    assert reply.status == 400 and "not valid UTF-8" in reply.message
    assert [r.status for s, r, _ in log if s is good and r is not None] == [200]
    assert called == ([[{"ok": 1}]] if batching else [{"ok": 1}])


def test_a_request_whose_input_cannot_be_read_gets_a_500_and_its_stream_ends():
    def unreadable(request, name):
        raise RuntimeError("the tensor's shared memory is gone")

    log = []
    sender = FakeSender(log)
    pipeline = Pipeline(Predictor(lambda payload: iter([1])), api_settings(), RULES)
    StreamExecutor(pipeline, 2, unreadable, lambda reply: reply, FINAL).execute([FakeRequest(sender, b"{}")])
    _wait_final(log, [sender])
    (reply,) = [r for _, r, _ in log if r is not None]
    assert reply.status == 500 and reply.message.startswith("[500] internal server error (error id ")
