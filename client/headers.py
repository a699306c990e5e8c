"""Request headers as tritonclient sends them: {name: value}, one value per name over HTTP
(tritonclient's HTTP client merges repeated names), repeated metadata over gRPC."""


def http_headers(headers=None):
    """{name: str, or bytes}; a list value is a repeated header, its values joined with ', '
    (HTTP's own way of combining repeated header lines, RFC 9110 section 5.3)."""
    result = {}
    for key, value in (headers or {}).items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in value)
        result[str(key)] = value if isinstance(value, bytes) else str(value)
    return result


class HeaderPairs:
    """Headers with repeated names, in the form tritonclient's gRPC client reads (it calls .items())."""

    def __init__(self, pairs):
        self.pairs = pairs

    def items(self):
        return list(self.pairs)

    def __bool__(self):
        return bool(self.pairs)


def grpc_metadata(headers=None):
    """gRPC metadata: lower-case keys; a list value becomes one entry per value (each reaches
    headers.getlist); bytes values are for `-bin` keys."""
    pairs = []
    for key, value in (headers or {}).items():
        for one in value if isinstance(value, (list, tuple)) else [value]:
            pairs.append((str(key).lower(), one if isinstance(one, bytes) else str(one)))
    return HeaderPairs(pairs)
