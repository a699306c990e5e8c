import json

import numpy as np
import pytest

from tritonize.adapter.runtime.codec import decode_payload, encode_result, error_from_http_exception
from tritonize.adapter.runtime.errors import BadRequest, PredictorFailure, RequestError, triton_code_for_status


@pytest.mark.parametrize(
    "body, ctype, expected",
    [
        (b'{"a": [1, 2]}', None, {"a": [1, 2]}),
        (b"[1, 2]", "application/json", [1, 2]),
        (b'{"a": 1}', "application/vnd.api+json; charset=utf-8", {"a": 1}),
        ("héllo".encode(), "text/plain", "héllo"),
        ("héllo".encode("latin-1"), "text/plain; charset=latin-1", "héllo"),
        ("héllo".encode("utf-16"), 'Text/Plain; Charset="utf-16"', "héllo"),
        (b"\x00\xff", "application/octet-stream", b"\x00\xff"),
        (b"abc", "image/png", b"abc"),
    ],
)
def test_decode_by_content_type(body, ctype, expected):
    assert decode_payload(body, ctype) == expected


@pytest.mark.parametrize(
    "body, ctype, words",
    [
        (b'{"a": ', None, "malformed JSON in request body"),
        (b"", None, "empty request body"),
        (b"  ", "application/json", "empty request body"),
        (b"\xff\xfe{", None, "not valid UTF-8 JSON"),
        (b"\xff", "text/plain", "not valid utf-8 text"),
        (b"x", "text/plain; charset=nope", "unknown charset 'nope'"),
    ],
)
def test_undecodable_bodies_are_400(body, ctype, words):
    with pytest.raises(BadRequest) as err:
        decode_payload(body, ctype)
    assert err.value.status == 400 and words in err.value.message


class Response:
    def __init__(self, body, status_code=200, media_type=None, headers=None):
        self.body, self.status_code, self.media_type = body, status_code, media_type
        if headers is not None:
            self.headers = headers


def test_encode_return_values():
    assert encode_result({"a": 1}) == (b'{"a": 1}', "application/json")
    assert encode_result([1, "x"]) == (b'[1, "x"]', "application/json")
    assert encode_result(3.5) == (b"3.5", "application/json")
    assert encode_result(None) == (b"null", "application/json")
    assert encode_result("hi ✓") == ("hi ✓".encode(), "text/plain; charset=utf-8")
    assert encode_result(b"\x00") == (b"\x00", "application/octet-stream")
    assert encode_result({"v": np.arange(3), "s": np.float32(1.5)}) == (
        b'{"v": [0, 1, 2], "s": 1.5}',
        "application/json",
    )


def test_encode_response_like_objects():
    assert encode_result(Response(b'{"ok":1}', 201, "application/json")) == (b'{"ok":1}', "application/json")
    assert encode_result(Response(b"x", headers={"content-type": "text/csv"})) == (b"x", "text/csv")
    with pytest.raises(RequestError) as err:
        encode_result(Response(b'{"error":"bad"}', 400, "application/json"))
    assert (err.value.status, err.value.message) == (400, '{"error":"bad"}')
    for status in (302, 101):
        with pytest.raises(PredictorFailure) as err:
            encode_result(Response(b"", status))
        assert f"status {status}" in err.value.message


@pytest.mark.parametrize(
    "value, words",
    [({1, 2}, "not JSON serializable"), ({"x": float("nan")}, "Out of range"), (object(), "not JSON serializable")],
)
def test_unencodable_results_are_500(value, words):
    with pytest.raises(PredictorFailure) as err:
        encode_result(value)
    assert err.value.status == 500 and words in err.value.message


def test_http_exception_like():
    class HTTPException(Exception):
        def __init__(self, status_code, detail):
            self.status_code, self.detail = status_code, detail

    error = error_from_http_exception(HTTPException(422, {"field": "x"}))
    assert (error.status, json.loads(error.message)) == (422, {"field": "x"})
    assert error_from_http_exception(ValueError("x")) is None


@pytest.mark.parametrize(
    "status, code",
    [
        (400, "INVALID_ARG"),
        (422, "INVALID_ARG"),
        (404, "NOT_FOUND"),
        (500, "INTERNAL"),
        (501, "UNSUPPORTED"),
        (503, "UNAVAILABLE"),
        (429, "UNAVAILABLE"),
        (502, "INTERNAL"),
    ],
)
def test_status_to_triton_code(status, code):
    assert triton_code_for_status(status) == code
