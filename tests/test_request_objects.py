"""Cortex's request objects and form payloads, without starlette (runtime, in-process)."""

import copy
import json
import pickle

import pytest

from tritonize.adapter.runtime.codec import decode_payload
from tritonize.adapter.runtime.datastructures import FormData, Headers, QueryParams, UploadFile
from tritonize.adapter.runtime.errors import BadRequest


def test_query_params_behave_like_starlettes():
    query = QueryParams([("a", "1"), ("b", "x"), ("a", "2")])
    assert query["a"] == "2" and query.get("a") == "2" and query.getlist("a") == ["1", "2"]
    assert list(query) == ["a", "b"] and len(query) == 2 and dict(query) == {"a": "2", "b": "x"}
    assert query.multi_items() == [("a", "1"), ("b", "x"), ("a", "2")] and str(query) == "a=1&b=x&a=2"
    assert json.loads(json.dumps(query)) == {"a": "2", "b": "x"}
    with pytest.raises(TypeError):
        query["a"] = "3"
    assert copy.deepcopy(query).getlist("a") == ["1", "2"] and pickle.loads(pickle.dumps(query)) == query


def test_headers_are_case_insensitive_first_value_and_multi():
    headers = Headers([("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2"), ("X-Id", "7")])
    assert headers["X-FORWARDED-FOR"] == "1.1.1.1" and headers.getlist("x-Forwarded-for") == ["1.1.1.1", "2.2.2.2"]
    assert "x-id" in headers and "X-ID" in headers and headers.get("nope") is None and headers.get(3) is None
    assert headers.keys() == ["x-forwarded-for", "x-forwarded-for", "x-id"]
    assert dict(headers) == {"x-forwarded-for": "1.1.1.1", "x-id": "7"}
    assert headers.raw[0] == (b"x-forwarded-for", b"1.1.1.1")
    with pytest.raises(KeyError):
        headers["missing"]
    with pytest.raises(TypeError):
        headers["x-id"] = "8"


MULTIPART = (
    b"preamble\r\n--XyZ\r\n"
    b'Content-Disposition: form-data; name="field"\r\n\r\nh\xc3\xa9llo\r\n'
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="file"; filename="d\xc3\xa9mo.bin"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n\xff--Xy\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="field"\r\n\r\nsecond\r\n'
    b"--XyZ--\r\nepilogue"
)


def test_multipart_form_becomes_form_data_with_upload_files():
    form = decode_payload(MULTIPART, "multipart/form-data; boundary=XyZ")
    assert isinstance(form, FormData) and form.getlist("field") == ["héllo", "second"] and form["field"] == "second"
    upload = form["file"]
    assert isinstance(upload, UploadFile) and upload.filename == "démo.bin" and upload.size == 9
    assert upload.content_type == "application/octet-stream" and upload.headers["content-type"] == upload.content_type
    assert upload.file.read() == b"\x00\x01\r\n\xff--Xy" and upload.seek(0) == 0 and upload.read(2) == b"\x00\x01"
    form.close()


def test_urlencoded_form():
    form = decode_payload(b"a=1&b=caf%C3%A9&a=&c", "application/x-www-form-urlencoded")
    assert form.multi_items() == [("a", "1"), ("b", "café"), ("a", ""), ("c", "")]


@pytest.mark.parametrize(
    "body, content_type, words",
    [
        (MULTIPART, "multipart/form-data", "without a boundary"),
        (MULTIPART, "multipart/form-data; boundary=other", "never appears"),
        (MULTIPART[: MULTIPART.index(b"--XyZ--")], "multipart/form-data; boundary=XyZ", "closing boundary is missing"),
        (
            b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--",
            "multipart/form-data; boundary=B",
            "Content-Disposition",
        ),
        (
            b'--B\r\nContent-Disposition: form-data; name="f"\r\n\r\n\xff\r\n--B--',
            "multipart/form-data; boundary=B",
            "not valid UTF-8",
        ),
        (b"--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--", "multipart/form-data; boundary=B", "no name"),
        (b"--Bgarbage", "multipart/form-data; boundary=B", "not followed by CRLF"),
        (b"a=%FF", "application/x-www-form-urlencoded", "not valid UTF-8"),
        (b"\xff=1", "application/x-www-form-urlencoded", "not valid UTF-8"),
        (b"&".join(b"k=v" for _ in range(1001)), "application/x-www-form-urlencoded", "more than 1000 fields"),
    ],
)
def test_malformed_forms_are_400(body, content_type, words):
    with pytest.raises(BadRequest) as err:
        decode_payload(body, content_type)
    assert words in err.value.message


@pytest.mark.parametrize(
    "body, content_type, words",
    [
        (b"[" * 5000 + b"]" * 5000, None, "nested too deeply"),
        (b"hi", "text/plain; charset=undefined", "cannot decode"),
        (b"hi", "text/plain; charset=base64", "unknown charset"),
        (b"1" * 5000, None, "number Python refuses to read"),
    ],
)
def test_hostile_bodies_are_400(body, content_type, words):
    with pytest.raises(BadRequest) as err:
        decode_payload(body, content_type)
    assert words in err.value.message
