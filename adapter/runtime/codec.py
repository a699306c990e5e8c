"""Request decoding and response encoding, as Cortex did it.

Body by content type: JSON (the default) -> parsed object, text/plain -> str,
multipart/form-data and application/x-www-form-urlencoded -> FormData (forms.py),
anything else -> bytes. Return value: dict/list/number/bool/None -> JSON,
str -> text, bytes -> binary, a starlette-style Response -> its body and status.
"""

import json

from .errors import BadRequest, PredictorFailure, RequestError, printable

# forms.py (and the email package it parses multipart bodies with) is imported on the first form
# body only: an instance that never receives one does not pay for it (issue 28: memory per instance).
MULTIPART = "multipart/form-data"
URLENCODED = "application/x-www-form-urlencoded"

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
        except RecursionError:
            raise BadRequest("JSON in request body is nested too deeply") from None
        except ValueError as exc:  # an integer of more than 4300 digits (Python's int_max_str_digits)
            raise BadRequest(f"JSON in request body has a number Python refuses to read: {exc}") from None
    if media_type == "text/plain":
        return _decode_text(body, params.get("charset", "utf-8"), content_type)
    if media_type == MULTIPART:
        from .forms import parse_multipart

        return parse_multipart(body, params)
    if media_type == URLENCODED:
        from .forms import parse_urlencoded

        return parse_urlencoded(body)
    return body


def _decode_text(body, charset, content_type):
    try:
        return body.decode(charset)
    except LookupError:
        raise BadRequest(f"unknown charset {charset!r} in content type {content_type!r}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not valid {charset} text: {exc}") from None
    except (UnicodeError, TypeError, ValueError) as exc:  # e.g. charset=undefined: a codec that always fails
        raise BadRequest(f"charset {charset!r} cannot decode the request body: {exc}") from None


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
    except RecursionError:
        raise PredictorFailure("predict() returned a value nested too deeply to encode as JSON") from None
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
            return printable(str(value))
    media_type = getattr(response, "media_type", None)
    return printable(str(media_type)) if media_type else BINARY


def _utf8(text, what):
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from bytes decoded with surrogateescape
        raise PredictorFailure(f"{what} cannot be encoded as UTF-8: {exc.reason} at position {exc.start}") from None


def encode_result(result):
    """(body bytes, content type) for a 2xx answer, or raise RequestError."""
    if is_response_like(result):
        status = _status_code(result.status_code, "Response.status_code")
        body = result.body
        if isinstance(body, str):
            body = _utf8(body, "Response.body")
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
        return _utf8(result, "the text predict() returned"), TEXT
    return encode_json(result), JSON


def success_status(result):
    """The 2xx status of a result encode_result() accepted: a Response's own (201, 204…), else 200."""
    if is_response_like(result):
        return _status_code(result.status_code, "Response.status_code")
    return 200


def _status_code(value, what):
    try:
        status = int(value)
    except (TypeError, ValueError):
        raise PredictorFailure(f"{what} must be an integer, got {type(value).__name__}") from None
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
    try:
        message = detail if isinstance(detail, str) else json.dumps(detail, default=str)
    except (TypeError, ValueError, RecursionError) as error:
        return PredictorFailure(f"HTTPException.detail cannot be sent: {error}")
    if status < 400:
        return PredictorFailure(f"predict() raised HTTPException with status {status}; only 4xx and 5xx can be sent")
    return RequestError(message, status=status)
