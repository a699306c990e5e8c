"""Split Triton request parameters into Cortex's query_params and headers.

Triton hands the model one JSON object holding both the request's KServe
`parameters` and the HTTP/gRPC headers that matched the server's header-forward
pattern (a repeated header line: the key repeated, in order). The rule (README):
- `content_type` is the body's content type;
- `tritonize_query` is a URL-encoded query string; tritonize's client sends query
  params this way, so repeated keys, Triton's reserved names such as `timeout` and
  names matching the header pattern all reach query_params;
- any other key matching the header pattern is a header; the rest are query params.
"""

import json
import os
import re
from urllib.parse import parse_qsl, urlencode

from .constants import (
    CONTENT_TYPE_PARAMETER,
    DEFAULT_HEADER_PATTERN,
    HEADER_PATTERN_ENV,
    MAX_PARAMETERS,
    NEVER_FORWARDED_HEADERS,
    QUERY_PARAMETER,
    RESERVED_PARAMETERS,
    SENSITIVE_HEADERS,
    SENSITIVE_HEADERS_ENV,
)
from .datastructures import Headers, QueryParams
from .errors import BadRequest

_NO_QUERY, _NO_HEADERS = QueryParams(), Headers()
# Built once (json.loads with a hook builds a decoder per call); objects as [(key, value)], repeats kept.
_PAIRS_DECODER = json.JSONDecoder(object_pairs_hook=list)


def forwarded_header_pattern(header_pattern, forward_sensitive):
    """The pattern Triton forwards by: --forward-sensitive-headers adds the sensitive names to it."""
    if not forward_sensitive:
        return header_pattern
    sensitive = "^(?:" + "|".join(SENSITIVE_HEADERS) + ")$"  # plain names: nothing to escape
    return f"(?:{header_pattern})|{sensitive}" if header_pattern else sensitive


def reserved_names_matched(header_pattern):
    """The reserved parameter names a header pattern would also forward as headers (must be none)."""
    if not header_pattern:
        return []
    regex = re.compile(header_pattern, re.IGNORECASE)
    return [name for name in RESERVED_PARAMETERS if regex.search(name)]


class ParameterRules:
    """Which parameter keys are headers; read once per model instance."""

    def __init__(self, header_pattern=None, forward_sensitive=None):
        if header_pattern is None:
            header_pattern = os.environ.get(HEADER_PATTERN_ENV, DEFAULT_HEADER_PATTERN)
        if forward_sensitive is None:
            forward_sensitive = os.environ.get(SENSITIVE_HEADERS_ENV, "") == "1"
        pattern = forwarded_header_pattern(header_pattern, forward_sensitive)
        self.header_regex = re.compile(pattern, re.IGNORECASE) if pattern else None
        self.forward_sensitive = forward_sensitive
        self.dropped = frozenset(NEVER_FORWARDED_HEADERS + (() if forward_sensitive else SENSITIVE_HEADERS))

    def is_header(self, key):
        return self.header_regex is not None and self.header_regex.search(key) is not None


def _as_string(key, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise BadRequest(f"parameter {key!r} must be a string, number or boolean")


def decode_query(text):
    """A URL-encoded query string -> [(key, value)], as starlette parsed `?a=1&a=2`."""
    try:
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMETERS)
    except ValueError:
        raise BadRequest(f"too many query parameters: more than {MAX_PARAMETERS} (at most {MAX_PARAMETERS})") from None


def split_parameters(parameters_json, rules):
    """-> (QueryParams, Headers, content type or None)."""
    if not parameters_json or parameters_json == "{}":
        return _NO_QUERY, _NO_HEADERS, None
    try:
        pairs = _PAIRS_DECODER.decode(parameters_json)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request parameters are not a JSON object: {exc}") from None
    if not isinstance(pairs, list):
        raise BadRequest("request parameters are not a JSON object")
    if len(pairs) > MAX_PARAMETERS:
        raise BadRequest(f"too many request parameters and headers: {len(pairs)}, at most {MAX_PARAMETERS}")
    query, headers, content_type, encoded_query = [], [], None, None
    for key, value in pairs:
        text = _as_string(key, value)
        if key in RESERVED_PARAMETERS:
            if (content_type if key == CONTENT_TYPE_PARAMETER else encoded_query) is not None:
                raise BadRequest(f"parameter {key!r} was sent twice")
            if key == CONTENT_TYPE_PARAMETER:
                content_type = text
            else:
                encoded_query = text
        elif rules.is_header(key):
            name = key.lower()
            if name not in rules.dropped:
                headers.append((name, text))
        else:
            query.append((key, text))
    if encoded_query is not None:
        query = decode_query(encoded_query) + query
        if len(query) > MAX_PARAMETERS:
            raise BadRequest(f"too many query parameters: {len(query)}, at most {MAX_PARAMETERS}")
    if content_type is not None:  # the body's own type (a forwarded Content-Type was the envelope's: dropped)
        headers.insert(0, ("content-type", content_type))
    return QueryParams(query), Headers.from_lower_case(headers), content_type


def query_pairs(query_params):
    """A dict (a list value: repeated key), a list of (key, value) or a QueryParams -> [(str, str)]."""
    if not query_params:
        return []
    if hasattr(query_params, "multi_items"):
        items = query_params.multi_items()
    elif isinstance(query_params, dict):
        items = query_params.items()
    else:
        items = query_params
    pairs = []
    for key, value in items:
        values = value if isinstance(value, (list, tuple)) else [value]
        pairs.extend((str(key), str(v)) for v in values)
    return pairs


def request_parameters(query_params=None, content_type=None):
    """The request parameters tritonize's client sends: query params URL-encoded in QUERY_PARAMETER."""
    parameters = {}
    pairs = query_pairs(query_params)
    if pairs:
        parameters[QUERY_PARAMETER] = urlencode(pairs)
    if content_type:
        parameters[CONTENT_TYPE_PARAMETER] = content_type
    return parameters
