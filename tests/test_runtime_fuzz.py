"""Adversarial pass over the runtime's request path, in-process: bad bytes in every field.

Every combination must be answered (never raise), with a status the client can act on
and an error message that is valid UTF-8 and free of tracebacks.
"""

import itertools
import json
import random

import numpy as np
import pytest

from tritonize.adapter.runtime.params import ParameterRules
from tritonize.adapter.runtime.pipeline import Pipeline
from tritonize.adapter.runtime.predictor import LoadedPredictor
from tritonize.adapter.runtime.repository_model import ApiSettings, PredictorSettings

RULES = ParameterRules(header_pattern="^x-", forward_sensitive=False)


def settings(**kwargs):
    return ApiSettings(name="fuzz", predictor=PredictorSettings(path="predictor.py"), **kwargs)


class Weird:
    """Returns / raises what query param `r` names."""

    def predict(self, payload, query_params, headers):
        kind = query_params.get("r", "echo")
        if kind == "echo":
            return {"type": type(payload).__name__}
        return RESULTS[kind]()


class BatchedWeird(Weird):
    def predict(self, payload, query_params, headers):
        return [Weird.predict(self, p, q, h) for p, q, h in zip(payload, query_params, headers)]


class Circular(Exception):
    status_code = 418

    @property
    def detail(self):
        loop = []
        loop.append(loop)
        return loop


class BadHeaders:
    body, status_code = b"x", 200

    @property
    def headers(self):
        raise RuntimeError("headers exploded")


class Tolist:
    def tolist(self):
        raise MemoryError("tolist exploded")


def deep():
    value = []
    for _ in range(100000):
        value = [value]
    return value


def raise_(exc):
    raise exc


RESULTS = {
    "surrogate": lambda: "\udcff",
    "inf": lambda: {"x": float("inf")},
    "generator": lambda: (i for i in range(3)),
    "status-str": lambda: type("R", (), {"body": b"", "status_code": "abc"})(),
    "status-none-body": lambda: type("R", (), {"body": None, "status_code": 200})(),
    "bad-headers": BadHeaders,
    "tolist": Tolist,
    "deep": deep,
    "object-array": lambda: np.array([{1}, {2}], dtype=object),
    "circular-http-exception": lambda: raise_(Circular()),
    "memory-error": lambda: raise_(MemoryError()),
    "recursion": lambda: raise_(RecursionError("deep")),
    "generator-exit": lambda: raise_(GeneratorExit()),
}

BODIES = [
    b"",
    b"{}",
    b"1" * 5000,  # more digits than Python reads as an int
    b"-" + b"9" * 5000,
    b"\xff\xfe\x00",
    b"[" * 3000,
    b"[" * 5000 + b"]" * 5000,
    b'"\\ud800"',
    b"\x00" * 10,
    "é".encode("utf-16"),
    b"--B\r\n\r\n--B--",
    b"a=%ZZ&&=&",
]
CONTENT_TYPES = [
    None,
    "application/json",
    "text/plain; charset=undefined",
    "text/plain; charset=utf-16",
    "text/plain; charset=unicode_escape",
    "text/plain; charset=",
    "text/plain; charset=rot13",
    "multipart/form-data; boundary=B",
    "multipart/form-data; boundary=",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/vnd.x+json",
    ";;;=;",
    "\udcff",
]
PARAMETERS = [
    "{}",
    "",
    "[]",
    "null",
    '{"a": 1e999}',
    '{"a": {"b": 1}}',
    '{"tritonize_query": "%ff=%fe&a"}',
    '{"tritonize_query": 5}',
    '{"content_type": true}',
    '{"X-A": "1", "x-a": "2", "X-a": "3"}',
    '{"tritonize-admin-token": "t", "x-tritonize-admin-token": "t"}',
    '{"a": "\\udcff"}',
    "{" * 5000,
]


class StreamingWeird(Weird):
    """The same answers, as a streaming predictor: one chunk."""

    def predict(self, payload, query_params, headers):
        yield Weird.predict(self, payload, query_params, headers)


class BatchedStreamingWeird(Weird):
    def predict(self, payload, query_params, headers):
        yield BatchedWeird.predict(self, payload, query_params, headers)


PREDICTORS = {  # (plain or streaming, batching) -> the predictor class
    ("plain", False): Weird,
    ("plain", True): BatchedWeird,
    ("stream", False): StreamingWeird,
    ("stream", True): BatchedStreamingWeird,
}


def answers(kind, batching, items):
    """One final Reply per item, through the pipeline as a plain or a streaming API answers it
    (a stream's answer: its first error, else its last chunk); every stream must end."""
    pipeline = Pipeline(LoadedPredictor(PREDICTORS[kind, batching]()), settings(predictor_batching=batching), RULES)
    if kind == "plain":
        return pipeline.answer(items)
    groups = [list(enumerate(items))] if batching else [[(i, item)] for i, item in enumerate(items)]
    final, ended = {}, set()
    for group in groups:
        for events in pipeline.stream([item for _, item in group]):
            for position, reply in events:
                index = group[position][0]
                assert index not in ended, "a chunk after the end of its stream"
                if reply is None or not reply.ok:
                    ended.add(index)
                if reply is not None:
                    final[index] = reply
    assert ended == set(range(len(items))), "a stream that never ended"
    return [final[index] for index in range(len(items))]


KINDS = ["plain", "stream"]


def check(reply):
    assert 200 <= reply.status < 600
    if not reply.ok:
        text = reply.body.decode("utf-8")  # strict: Triton's error must be valid UTF-8
        assert "Traceback" not in text and 'File "' not in text, text


@pytest.mark.parametrize("kind", KINDS)
def test_bodies_content_types_and_parameters(kind):
    dispatcher = Pipeline(LoadedPredictor(Weird()), settings(), RULES)
    for body, content_type, parameters in itertools.product(BODIES, CONTENT_TYPES, PARAMETERS):
        if content_type is not None and parameters.startswith("{") and parameters != "{" * 5000:
            try:
                extra = json.loads(parameters)
            except ValueError:
                extra = None
            if isinstance(extra, dict):
                extra["content_type"] = content_type
                parameters = json.dumps(extra)
        (reply,) = answers(kind, False, [(dispatcher.body(np.array([[body]], dtype=object)), parameters)])
        check(reply)
        assert reply.status in (200, 400), (body[:20], content_type, parameters[:40], reply.message)  # never a 500


@pytest.mark.parametrize("api", KINDS)
@pytest.mark.parametrize("kind", sorted(RESULTS))
def test_odd_results_and_exceptions(kind, api):
    for batching in (False, True):
        body = b"{}"
        for reply in answers(api, batching, [(body, json.dumps({"r": kind})), (body, "{}")]):
            check(reply)
        assert answers(api, batching, [(body, "{}")])[0].status == 200


@pytest.mark.parametrize("kind", KINDS)
def test_random_bytes_everywhere(kind):
    rng = random.Random(1234)
    dispatcher = Pipeline(LoadedPredictor(Weird()), settings(), RULES)
    for _ in range(2000):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(40)))
        text = "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xD800, 0xE000), 0])) for _ in range(8))
        parameters = json.dumps({"content_type": rng.choice(CONTENT_TYPES[1:-1]) + text, "x-h": text, "q": text})
        (reply,) = answers(kind, False, [(dispatcher.body(np.array([[body]], dtype=object)), parameters)])
        check(reply)
