"""Split Triton request parameters into Cortex's query_params and headers.

Triton hands the model one JSON object holding both the request's KServe
`parameters` (our query params) and the HTTP/gRPC headers that matched the
server's header-forward pattern. Keys matching that pattern are headers; the
rest are query params; `content_type` is reserved for the body's content type.
"""

import json
import os
import re
from urllib.parse import parse_qsl

from .constants import (
    ADMIN_TOKEN_HEADER,
    CONTENT_TYPE_PARAMETER,
    DEFAULT_HEADER_PATTERN,
    GRPC_ADMIN_TOKEN_HEADER,
    HEADER_PATTERN_ENV,
    QUERY_PARAMETER,
    SENSITIVE_HEADERS_ENV,
)
from .errors import BadRequest

# Never handed to predictors unless the operator opts in.
SENSITIVE_HEADERS = frozenset(
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        ADMIN_TOKEN_HEADER,
        GRPC_ADMIN_TOKEN_HEADER,
    ]
)

# More than this many request parameters (query params + forwarded headers) is refused.
MAX_PARAMETERS = 1000


class Headers(dict):
    """Lower-cased header names; lookups ignore case, like starlette's Headers."""

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default) if isinstance(key, str) else default


class ParameterRules:
    """Which parameter keys are headers; read once per model instance."""

    def __init__(self, header_pattern=None, forward_sensitive=None):
        if header_pattern is None:
            header_pattern = os.environ.get(HEADER_PATTERN_ENV, DEFAULT_HEADER_PATTERN)
        if forward_sensitive is None:
            forward_sensitive = os.environ.get(SENSITIVE_HEADERS_ENV, "") == "1"
        self.header_regex = re.compile(header_pattern, re.IGNORECASE) if header_pattern else None
        self.forward_sensitive = forward_sensitive

    def is_header(self, key):
        return self.header_regex is not None and self.header_regex.search(key) is not None


def _as_string(key, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise BadRequest(f"parameter {key!r} must be a string, number or boolean")


def split_parameters(parameters_json, rules):
    """-> (query_params dict, Headers, content type or None)."""
    if not parameters_json or parameters_json == "{}":
        return {}, Headers(), None
    try:
        pairs = json.loads(parameters_json, object_pairs_hook=lambda items: items)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request parameters are not a JSON object: {exc}") from None
    if not isinstance(pairs, list):
        raise BadRequest("request parameters are not a JSON object")
    if len(pairs) > MAX_PARAMETERS:
        raise BadRequest(f"too many request parameters and headers: {len(pairs)}, at most {MAX_PARAMETERS}")
    query_params, headers, content_type = {}, Headers(), None
    seen = set()
    for key, value in pairs:
        text = _as_string(key, value)
        if key == QUERY_PARAMETER:
            # The whole query string (the Cortex endpoint sends it): a repeated key keeps its last
            # value, as starlette's query_params[key] did.
            try:
                query_params.update(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMETERS))
            except ValueError:
                raise BadRequest(f"too many query parameters, at most {MAX_PARAMETERS}") from None
            continue
        folded = key.lower()
        is_header = key != CONTENT_TYPE_PARAMETER and rules.is_header(key)
        ident = folded if is_header else key
        if ident in seen:
            # Triton appends a forwarded header even when a body parameter has
            # the same name: refuse rather than let one silently win.
            raise BadRequest(f"{key!r} was sent twice (as a header and a parameter, or twice); rename one of them")
        seen.add(ident)
        if key == CONTENT_TYPE_PARAMETER:
            content_type = text
        elif is_header:
            if folded in SENSITIVE_HEADERS and not rules.forward_sensitive:
                continue
            headers[folded] = text
        else:
            query_params[key] = text
    return query_params, headers, content_type
