import json

import pytest

from tritonize.adapter.runtime.errors import BadRequest
from tritonize.adapter.runtime.params import Headers, ParameterRules, split_parameters


def split(params, pattern="^x-", sensitive=False):
    raw = params if isinstance(params, str) else json.dumps(params)
    return split_parameters(raw, ParameterRules(header_pattern=pattern, forward_sensitive=sensitive))


def test_query_params_headers_and_content_type():
    query, headers, ctype = split({"model": "s", "n": 3, "flag": True, "X-Tenant": "a", "content_type": "text/plain"})
    assert query == {"model": "s", "n": "3", "flag": "true"}
    assert headers == {"x-tenant": "a"} and headers["X-TENANT"] == "a" and "x-Tenant" in headers
    assert headers.get("X-Tenant") == "a" and headers.get("nope", 1) == 1
    assert ctype == "text/plain"


def test_empty_parameters():
    assert split("{}") == ({}, Headers(), None)
    assert split("") == ({}, Headers(), None)


def test_sensitive_headers_dropped_unless_opted_in():
    params = {"Authorization": "Bearer s", "Cookie": "c", "X-Id": "1"}
    assert split(params, pattern=".*")[1] == {"x-id": "1"}
    assert split(params, pattern=".*", sensitive=True)[1] == {"authorization": "Bearer s", "cookie": "c", "x-id": "1"}


def test_duplicate_key_from_header_and_parameter_is_400():
    # What Triton sends when a header has the same name as a body parameter.
    with pytest.raises(BadRequest) as err:
        split('{"x-model": "from-body", "X-Model": "from-header"}')
    assert "sent twice" in err.value.message


def test_nested_parameter_is_400():
    with pytest.raises(BadRequest):
        split('{"a": {"b": 1}}')


def test_no_pattern_means_no_headers():
    assert split({"x-a": "1"}, pattern="") == ({"x-a": "1"}, Headers(), None)
