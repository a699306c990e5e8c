"""Request decoding and response encoding, as Cortex did it.

Body by content type: JSON (the default) -> parsed object, text/plain -> str,
anything else -> bytes. Return value: dict/list/number/bool/None -> JSON,
str -> text, bytes -> binary, a starlette-style Response -> its body and status.
"""

import json

from .errors import BadRequest, PredictorFailure, RequestError

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"


def parse_content_type(content_type):
    """'Text/Plain; charset=latin-1' -> ('text/plain', {'charset': 'latin-1'})."""
    if not content_type:
        return "application/json", {}
    media_type, _, rest = content_type.partition(";")
    params = {}
    for item in rest.split(";"):
        key, sep, value = item.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return media_type.strip().lower(), params


def is_json_media_type(media_type):
    return media_type == "application/json" or media_type.endswith("+json")


def decode_payload(body, content_type):
    """Turn the raw request body into what `predict(payload=...)` receives."""
    media_type, params = parse_content_type(content_type)
    if is_json_media_type(media_type):
        try:
            return json.loads(body)
        except UnicodeDecodeError as exc:
            raise BadRequest(f"request body is not valid UTF-8 JSON: {exc}") from None
        except json.JSONDecodeError as exc:
            # Checked only here: an emptiness test up front (body.strip()) copied every body.
            if not body or body.isspace():
                raise BadRequest(
                    "empty request body: send a JSON document, or set content_type "
                    "to text/plain or application/octet-stream"
                ) from None
            raise BadRequest(
                f"malformed JSON in request body: {exc.msg} at line {exc.lineno} "
                f"column {exc.colno} (set content_type to send text or bytes)"
            ) from None
    if media_type == "text/plain":
        charset = params.get("charset", "utf-8")
        try:
            return body.decode(charset)
        except LookupError:
            raise BadRequest(f"unknown charset {charset!r} in content type {content_type!r}") from None
        except UnicodeDecodeError as exc:
            raise BadRequest(f"request body is not valid {charset} text: {exc}") from None
    return body


def _to_jsonable(value):
    # numpy arrays/scalars and torch tensors all offer tolist(); no torch import needed.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Built once: json.dumps with non-default options would build an encoder per call (hot path).
_ENCODER = json.JSONEncoder(default=_to_jsonable, allow_nan=False)


def encode_json(value):
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except (TypeError, ValueError) as exc:
        hint = (
            " (NaN and Infinity are not valid JSON: return None or a string instead)"
            if (isinstance(exc, ValueError) and "Out of range float" in str(exc))
            else ""
        )
        raise PredictorFailure(f"predict() returned a value that cannot be encoded as JSON: {exc}{hint}") from None


def is_response_like(value):
    """A starlette-style Response: anything with `body` and `status_code`."""
    return hasattr(value, "body") and hasattr(value, "status_code") and not isinstance(value, type)


def _response_content_type(response):
    headers = getattr(response, "headers", None)
    if headers is not None:
        try:
            value = headers.get("content-type")
        except Exception:  # an exotic headers object: fall back to media_type
            value = None
        if value:
            return str(value)
    media_type = getattr(response, "media_type", None)
    return str(media_type) if media_type else BINARY


def encode_result(result):
    """(body bytes, content type) for a 2xx answer, or raise RequestError."""
    if is_response_like(result):
        status = _status_code(result.status_code, "Response.status_code")
        body = result.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise PredictorFailure(f"Response.body must be bytes, got {type(body).__name__}")
        body = bytes(body)
        if 200 <= status < 300:
            return body, _response_content_type(result)
        if status < 200 or 300 <= status < 400:
            raise PredictorFailure(
                f"predict() returned a Response with status {status}; only 2xx, 4xx and 5xx "
                "statuses can be sent through Triton"
            )
        raise RequestError(body.decode("utf-8", errors="replace"), status=status)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), BINARY
    if isinstance(result, str):
        return result.encode("utf-8"), TEXT
    return encode_json(result), JSON


def _status_code(value, what):
    try:
        status = int(value)
    except (TypeError, ValueError):
        raise PredictorFailure(f"{what} must be an integer, got {value!r}") from None
    if not 100 <= status <= 599:
        raise PredictorFailure(f"{what} {status} is not an HTTP status")
    return status


def error_from_http_exception(exc):
    """A starlette/FastAPI HTTPException (status_code + detail) -> RequestError, else None."""
    status = getattr(exc, "status_code", None)
    if status is None or not hasattr(exc, "detail"):
        return None
    try:
        status = _status_code(status, "HTTPException.status_code")
    except PredictorFailure as failure:
        return failure
    detail = exc.detail
    message = detail if isinstance(detail, str) else json.dumps(detail, default=str)
    if status < 400:
        return PredictorFailure(f"predict() raised HTTPException with status {status}; only 4xx and 5xx can be sent")
    return RequestError(message, status=status)
