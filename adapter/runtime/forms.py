"""Form bodies as Cortex passed them (starlette's `await request.form()`), parsed with the stdlib.

application/x-www-form-urlencoded -> FormData of str; multipart/form-data ->
FormData of str (fields) and UploadFile (parts with a filename). Anything
malformed is a BadRequest (400) naming what is wrong. codec.py chooses by content type
and imports this module on the first form body only.
"""

from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value
from urllib.parse import parse_qsl

from .constants import MAX_FORM_FIELDS
from .datastructures import FormData, Headers, UploadFile
from .errors import BadRequest


def parse_urlencoded(body):
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"form body is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    except ValueError:
        raise BadRequest(f"form body has more than {MAX_FORM_FIELDS} fields") from None
    return FormData(pairs)


def _split_parts(body, boundary):
    """The raw parts between the boundaries (RFC 2046 section 5.1.1)."""
    delimiter = b"--" + boundary
    if body.startswith(delimiter):
        position = len(delimiter)
    else:  # a preamble before the first boundary is allowed
        first = body.find(b"\r\n" + delimiter)
        if first < 0:
            raise BadRequest("malformed multipart form: the boundary from the content type never appears")
        position = first + 2 + len(delimiter)
    separator = b"\r\n" + delimiter
    parts = []
    while not body.startswith(b"--", position):
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise BadRequest("malformed multipart form: a boundary line is not followed by CRLF")
        start = line_end + 2
        end = body.find(separator, start)
        if end < 0:
            raise BadRequest("malformed multipart form: the closing boundary is missing (truncated body?)")
        parts.append(body[start:end])
        if len(parts) > MAX_FORM_FIELDS:
            raise BadRequest(f"form body has more than {MAX_FORM_FIELDS} fields")
        position = end + len(separator)
    return parts


def _text(value):
    # Browsers send non-ASCII names as raw UTF-8 inside quotes; the header parser saw latin-1.
    value = collapse_rfc2231_value(value)
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _parse_part(part, index):
    head, separator, data = part.partition(b"\r\n\r\n")
    if not separator:
        if not part.startswith(b"\r\n"):
            raise BadRequest(f"malformed multipart form: part {index} has no blank line after its headers")
        head, data = b"", part[2:]
    message = HeaderParser().parsestr(head.decode("latin-1"))
    disposition = message.get("content-disposition")
    if disposition is None or message.get_content_disposition() != "form-data":
        raise BadRequest(f"malformed multipart form: part {index} has no Content-Disposition: form-data header")
    name = message.get_param("name", header="content-disposition")
    if not name:
        raise BadRequest(f"malformed multipart form: part {index} has no name")
    name = _text(name)
    filename = message.get_param("filename", header="content-disposition")
    if filename is not None:
        headers = Headers((key, str(value)) for key, value in message.items())
        return name, UploadFile(_text(filename), data, message.get("content-type", ""), headers)
    try:
        return name, data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"form field {name!r} is not valid UTF-8 (send it as a file part)") from None


def parse_multipart(body, params):
    boundary = params.get("boundary")
    if not boundary or len(boundary) > 200:
        raise BadRequest("multipart/form-data content type without a boundary parameter")
    try:
        boundary = boundary.encode("latin-1")
    except UnicodeEncodeError:
        raise BadRequest("multipart boundary is not ASCII") from None
    return FormData(_parse_part(part, index) for index, part in enumerate(_split_parts(body, boundary), 1))
