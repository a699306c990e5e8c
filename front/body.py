"""Reading a request body under the size limit, before any of it reaches Triton.

The limit applies to the body the predictor would get: a gzip/deflate body is inflated
here, in bounded steps, and refused as soon as the inflated size passes the limit
(a 1 MB gzip bomb costs at most the limit, never its 1 GiB).
"""

import zlib

# zlib window bits: gzip header (16+), zlib header (plain); raw deflate as sent by some clients is not accepted.
_WBITS = {b"gzip": 16 + zlib.MAX_WBITS, b"x-gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}


class BodyError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def too_large(limit):
    return BodyError(
        413, f"request body too large: this server accepts at most {limit} bytes (tritonize serve --max-body-size)"
    )


def check_declared(content_length, content_encoding, limit):
    """Refuse before reading: a Content-Length over the limit, an encoding we do not inflate."""
    if content_encoding not in (None, b"identity") and content_encoding not in _WBITS:
        raise BodyError(
            415, f"unsupported Content-Encoding {content_encoding.decode('latin-1')!r}: send identity, gzip or deflate"
        )
    if content_length is not None and limit:
        try:
            declared = int(content_length)
        except ValueError:
            raise BodyError(400, "invalid Content-Length") from None
        if declared > limit and content_encoding in (None, b"identity"):
            raise too_large(limit)


async def read_body(receive, content_encoding, limit):
    """The whole body (inflated), or BodyError(413) as soon as it passes `limit` (0: no limit)."""
    inflater = zlib.decompressobj(_WBITS[content_encoding]) if content_encoding in _WBITS else None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyError(499, "client went away")
        data = message.get("body", b"")
        more = message.get("more_body", False)
        if inflater is not None:
            data = _inflate(inflater, data, limit, size)
            if not more:
                if not inflater.eof:
                    raise BodyError(400, f"truncated {content_encoding.decode()} body")
        size += len(data)
        if limit and size > limit:
            raise too_large(limit)
        if data:
            chunks.append(data)
        if not more:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _inflate(inflater, data, limit, have):
    out = []
    produced = 0
    while data:
        budget = (limit - have - produced + 1) if limit else 0
        try:
            piece = inflater.decompress(data, budget)
        except zlib.error as exc:
            raise BodyError(400, f"body is not valid compressed data: {exc}") from None
        produced += len(piece)
        out.append(piece)
        if limit and have + produced > limit:
            raise too_large(limit)
        data = inflater.unconsumed_tail
        if inflater.eof:
            break
    return b"".join(out)
