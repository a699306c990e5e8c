import json

import pytest

from tritonize.adapter.runtime.errors import BadRequest
from tritonize.adapter.runtime.params import (
    Headers,
    ParameterRules,
    forwarded_header_pattern,
    request_parameters,
    reserved_names_matched,
    split_parameters,
)


def split(params, pattern="^x-", sensitive=False):
    raw = params if isinstance(params, str) else json.dumps(params)
    return split_parameters(raw, ParameterRules(header_pattern=pattern, forward_sensitive=sensitive))


def test_query_params_headers_and_content_type():
    query, headers, ctype = split({"model": "s", "n": 3, "flag": True, "X-Tenant": "a", "content_type": "text/plain"})
    assert query == {"model": "s", "n": "3", "flag": "true"}
    assert headers == {"x-tenant": "a", "content-type": "text/plain"}
    assert headers["X-TENANT"] == "a" and "x-Tenant" in headers
    assert headers.get("X-Tenant") == "a" and headers.get("nope", 1) == 1
    assert ctype == "text/plain"


def test_empty_parameters():
    assert split("{}") == ({}, Headers(), None)
    assert split("") == ({}, Headers(), None)


def test_sensitive_headers_dropped_unless_opted_in():
    params = {"Authorization": "Bearer s", "Cookie": "c", "X-Id": "1", "tritonize-admin-token": "t"}
    assert split(params, pattern=".*")[1] == {"x-id": "1"}
    assert split(params, pattern=".*", sensitive=True)[1] == {"authorization": "Bearer s", "cookie": "c", "x-id": "1"}


def test_forward_sensitive_headers_alone_extends_the_pattern():
    # Triton forwards only what its pattern matches: the flag must add the names to it.
    pattern = forwarded_header_pattern("^x-", True)
    assert pattern.startswith("(?:^x-)|") and "authorization" in pattern
    assert split({"Authorization": "Bearer s", "X-A": "1"}, sensitive=True)[1] == {
        "authorization": "Bearer s",
        "x-a": "1",
    }
    assert forwarded_header_pattern("^x-", False) == "^x-"


def test_repeated_header_lines_reach_getlist():
    # What Triton sends for two X-Forwarded-For lines: the key twice, in order.
    _, headers, _ = split('{"X-Forwarded-For": "1.1.1.1", "x-forwarded-for": "2.2.2.2"}')
    assert headers["x-forwarded-for"] == "1.1.1.1" and headers.getlist("X-Forwarded-For") == ["1.1.1.1", "2.2.2.2"]
    assert headers.items() == [("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2")]


def test_query_string_parameter_keeps_repeats_reserved_and_header_like_names():
    parameters = request_parameters([("q", "1"), ("q", "2"), ("timeout", "5"), ("x-a", "b")], "text/plain")
    assert set(parameters) == {"tritonize_query", "content_type"}
    query, headers, ctype = split(parameters)
    assert query.getlist("q") == ["1", "2"] and query["q"] == "2"  # starlette: the last one
    assert query["timeout"] == "5" and query["x-a"] == "b" and "x-a" not in headers
    assert str(query) == "q=1&q=2&timeout=5&x-a=b"
    assert request_parameters({"k": ["a", "b"], "n": 3}) == {"tritonize_query": "k=a&k=b&n=3"}


def test_plain_parameter_matching_the_header_pattern_is_a_header():
    query, headers, _ = split({"x-model": "from-body", "X-Model": "from-header"})
    assert query == {} and headers.getlist("x-model") == ["from-body", "from-header"]


def test_reserved_parameter_twice_is_400():
    with pytest.raises(BadRequest, match="sent twice"):
        split('{"content_type": "text/plain", "content_type": "application/json"}')


def test_too_many_query_params_is_400():
    with pytest.raises(BadRequest, match="at most 1000"):
        split(request_parameters({f"p{i}": "v" for i in range(1001)}))


def test_nested_parameter_is_400():
    with pytest.raises(BadRequest):
        split('{"a": {"b": 1}}')


def test_no_pattern_means_no_headers():
    assert split({"x-a": "1"}, pattern="") == ({"x-a": "1"}, Headers(), None)


@pytest.mark.parametrize(
    "pattern, matched",
    [
        (".*", ["content_type", "tritonize_query"]),
        ("^x-", []),
        ("^[a-z0-9-]+$", []),
        ("^content", ["content_type"]),
        ("", []),
    ],
)
def test_patterns_that_would_forward_reserved_names(pattern, matched):
    assert reserved_names_matched(pattern) == matched


def test_serve_refuses_a_pattern_matching_reserved_names(tmp_path):
    from tritonize.errors import ServeError
    from tritonize.server.options import ServerOptions, tritonserver_args

    with pytest.raises(ServeError, match="content_type"):
        ServerOptions(str(tmp_path), header_pattern=".*")
    options = ServerOptions(str(tmp_path), header_pattern="^[a-z0-9-]+$", forward_sensitive_headers=True)
    args = tritonserver_args(options, str(tmp_path))
    assert any(a.startswith("--http-header-forward-pattern=(?:^[a-z0-9-]+$)|^(?:authorization") for a in args)


def test_envelope_headers_never_reach_predictors():
    # With a wide pattern Triton forwards its own KServe envelope's Content-Type: not the body's.
    parameters = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "9", "X-A": "1"}
    assert split(parameters, pattern="^[a-z0-9-]+$")[1] == {"x-a": "1"}
    assert split(dict(parameters, content_type="text/plain"), pattern="^[a-z0-9-]+$")[1].items() == [
        ("content-type", "text/plain"),
        ("x-a", "1"),
    ]
