"""The Cortex endpoint's pieces that need no Triton: body limits and inflation, routes, the wire it writes."""

import gzip
import json
import struct
import zlib

import pytest

from tritonize.adapter.runtime.repository_model import ApiSettings, PredictorSettings, write_api_settings
from tritonize.cortex_endpoint.body import BodyError, Inflater, check_declared
from tritonize.cortex_endpoint.routes import Route, load_routes
from tritonize.cortex_endpoint.upstream import error_message, infer_request, infer_result
from tritonize.errors import ServeError


@pytest.mark.parametrize(
    "length,encoding,status",
    [(b"11", None, 413), (b"11", b"identity", 413), (b"x", None, 400), (b"5", b"br", 415), (b"5", b"compress", 415)],
)
def test_declared_bodies_refused_before_reading(length, encoding, status):
    with pytest.raises(BodyError) as info:
        check_declared(length, encoding, 10)
    assert info.value.status == status


def test_declared_sizes_within_the_limit_or_compressed_are_read():
    check_declared(b"10", None, 10)
    check_declared(b"1000", b"gzip", 10)  # judged once inflated
    check_declared(b"1000", None, 0)  # 0: no limit


@pytest.mark.parametrize("encoding,compress", [(b"gzip", gzip.compress), (b"deflate", zlib.compress)])
def test_inflater_stops_at_the_limit_in_bounded_steps(encoding, compress):
    bomb = compress(b"0" * (8 << 20))
    inflater = Inflater(encoding, 1000)
    fed = 0
    with pytest.raises(BodyError) as info:
        for fed in range(0, len(bomb), 512):
            inflater.feed(bomb[fed : fed + 512], 0)
    assert info.value.status == 413
    assert fed == 0  # refused within the first 512 compressed bytes, never inflating the 8 MiB
    small = compress(b'{"a": 1}')
    inflater = Inflater(encoding, 1000)
    assert inflater.feed(small[:3], 0) + inflater.feed(small[3:], 0) == b'{"a": 1}'
    inflater.finish()


def test_inflater_refuses_garbage_and_truncation():
    with pytest.raises(BodyError, match="not valid gzip"):
        Inflater(b"gzip", 100).feed(b"definitely not gzip", 0)
    inflater = Inflater(b"gzip", 100)
    inflater.feed(gzip.compress(b"hello")[:-4], 0)
    with pytest.raises(BodyError, match="truncated gzip"):
        inflater.finish()


def _model(repo, name, decoupled=False, endpoint=None):
    (repo / name / "1").mkdir(parents=True)
    policy = "model_transaction_policy { decoupled: true }\n" if decoupled else ""
    (repo / name / "config.pbtxt").write_text(f'name: "{name}"\n{policy}')
    settings = ApiSettings(name, PredictorSettings("p.py"), stream=decoupled, endpoint=endpoint)
    write_api_settings(str(repo / name / "1"), settings)


def test_routes_name_endpoint_and_streaming(tmp_path):
    _model(tmp_path, "a", endpoint="/v1/a")
    _model(tmp_path, "s", decoupled=True)
    (tmp_path / "tritonize_cortex_endpoint.pyz").write_text("")  # files at the top are not models
    (tmp_path / "handmade" / "1").mkdir(parents=True)  # a model without tritonize settings: Triton's alone
    (tmp_path / "handmade" / "config.pbtxt").write_text('name: "handmade"\n')
    assert load_routes(tmp_path) == {"/a": Route("a"), "/v1/a": Route("a"), "/s": Route("s", streaming=True)}
    _model(tmp_path, "b", endpoint="a")
    with pytest.raises(ServeError, match="both answer on /a"):
        load_routes(tmp_path)


def test_infer_request_is_a_binary_tensor_envelope():
    data = infer_request(
        "echo",
        b'{"x": 1}',
        {"content_type": "application/json", "tritonize_query": "a=1&a=2"},
        [(b"x-tenant", b"acme"), (b"host", b"h")],
    )
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v2/models/echo/infer HTTP/1.1"
    assert b"x-tenant: acme" in lines and b"host: h" in lines
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    json_size = int(headers[b"Inference-Header-Content-Length"])
    assert int(headers[b"Content-Length"]) == len(body)
    envelope = json.loads(body[:json_size])
    assert envelope["inputs"] == [
        {"name": "payload", "shape": [1, 1], "datatype": "BYTES", "parameters": {"binary_data_size": 12}}
    ]
    assert envelope["parameters"] == {"content_type": "application/json", "tritonize_query": "a=1&a=2"}
    assert body[json_size:] == struct.pack("<I", 8) + b'{"x": 1}'


def test_infer_result_and_error_message():
    header = json.dumps(
        {
            "outputs": [
                {"name": "response", "parameters": {"binary_data_size": 6}},
                {"name": "content_type", "parameters": {"binary_data_size": 14}},
            ]
        }
    ).encode()
    body = header + struct.pack("<I", 2) + b"ok" + struct.pack("<I", 10) + b"text/plain"
    out = infer_result(200, {b"inference-header-content-length": str(len(header)).encode()}, body)
    assert out == {"response": b"ok", "content_type": b"text/plain"}
    assert error_message(b'{"error": "boom"}') == "boom"
    assert error_message(b"not json") == "not json"


@pytest.mark.parametrize("split", [0, 1, 10, 25, 26, 27, 40])
def test_every_gzip_member_is_inflated_wherever_the_reads_split(split):
    data = gzip.compress(b"hello ") + gzip.compress(b"world")
    inflater = Inflater(b"gzip", 1000)
    out = inflater.feed(data[:split], 0)
    out += inflater.feed(data[split:], len(out))
    inflater.finish()
    assert out == b"hello world"


@pytest.mark.parametrize(
    "encoding,data",
    [
        (b"gzip", gzip.compress(b"x") + b"garbage"),
        (b"deflate", zlib.compress(b"x") + b"zz"),
        (b"gzip", gzip.compress(b"x") + b"\x1f"),  # a member that never comes
    ],
)
def test_bytes_after_a_compressed_stream_are_a_400(encoding, data):
    inflater = Inflater(encoding, 1000)
    with pytest.raises(BodyError) as info:
        inflater.feed(data, 0)
        inflater.finish()
    assert info.value.status == 400


def test_several_members_count_against_the_limit_together():
    inflater = Inflater(b"gzip", 10)
    with pytest.raises(BodyError) as info:
        inflater.feed(gzip.compress(b"x" * 6) + gzip.compress(b"y" * 6), 0)
    assert info.value.status == 413


def test_response_header_values_with_cr_lf_or_nul_are_not_headers():
    from tritonize.cortex_endpoint.server import valid_header

    assert valid_header(b"content-type", b"text/plain; charset=utf-8")
    assert valid_header(b"x-a", b"tab\tand obs-text \xe9")
    for value in (b"text/plain\r\nSet-Cookie: a=b", b"a\nb", b"a\rb", b"a\x00b", b"a\x7fb"):
        assert not valid_header(b"content-type", value)
    assert not valid_header(b"bad name", b"x") and not valid_header(b"x:y", b"x")


def test_forwarded_headers_drop_what_grpc_metadata_cannot_carry():
    from tritonize.cortex_endpoint.app import HeaderError, forwarded_headers
    from tritonize.cortex_endpoint.streaming import MetadataError, grpc_metadata

    content_type, forward = forwarded_headers(
        [
            (b"content-type", b"application/json"),
            (b"x-data-bin", b"aGk="),
            (b"x-a!b", b"1"),
            (b"x_under", b"2"),
            (b"grpc-timeout", b"1S"),
            (b"x-fine", b"ok"),
            (b"content-length", b"2"),
        ]
    )
    assert content_type == b"application/json"
    assert forward == [(b"x_under", b"2"), (b"x-fine", b"ok")]
    with pytest.raises(HeaderError):
        forwarded_headers([(b"x-bad", b"caf\xe9")])
    assert grpc_metadata([(b"host", b"h"), (b"x-fine", b" ok ")]) == (("x-fine", "ok"),)
    for value, status in ((b"a\tb", 400), ("café".encode(), 400), (b"v" * 8000, 431)):
        with pytest.raises(MetadataError) as info:
            grpc_metadata([(b"x-a", value)])
        assert info.value.status == status


def test_an_empty_compressed_body_is_an_empty_body():
    inflater = Inflater(b"gzip", 10)
    assert inflater.feed(b"", 0) == b""
    inflater.finish()
