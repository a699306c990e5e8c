"""The request body under the size limit, checked before any of it reaches Triton.

The limit applies to the body the predictor would get: a gzip/deflate body is inflated
here, in bounded steps, and refused as soon as the inflated size passes the limit
(a 64 KB gzip bomb costs at most the limit, never the 64 MiB it expands to).
"""

import zlib

# zlib window bits: gzip header (16+), zlib header (plain).
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
    if content_length is not None and limit and content_encoding in (None, b"identity"):
        try:
            declared = int(content_length)
        except ValueError:
            raise BodyError(400, "invalid Content-Length") from None
        if declared > limit:
            raise too_large(limit)


class Inflater:
    """feed(data, size so far) -> the body bytes it stands for; BodyError(413) past the limit.

    A gzip body may hold several members (RFC 1952 2.2, what `cat a.gz b.gz` makes): all are inflated,
    as gunzip does. Anything after the last member (or after a deflate stream) is a 400, not ignored.
    """

    def __init__(self, content_encoding, limit):
        wbits = _WBITS.get(content_encoding)
        self.encoding = content_encoding
        self.wbits = wbits
        self.zlib = zlib.decompressobj(wbits) if wbits is not None else None
        self.limit = limit
        self.fed = False  # an empty body with Content-Encoding: gzip is an empty body, not a truncated one

    def _next_member(self, data):
        """After the end of a member: -> the bytes to inflate next (a new gzip member), or b""."""
        if not data:
            return data
        if self.wbits == _WBITS[b"gzip"] and data[:1] == b"\x1f" and (len(data) < 2 or data[1:2] == b"\x8b"):
            self.zlib = zlib.decompressobj(self.wbits)
            return data
        raise BodyError(400, f"body is not valid {self.encoding.decode()} data: bytes after the end of the stream")

    def feed(self, data, have):
        if self.zlib is None:
            return data
        self.fed = self.fed or bool(data)
        out = []
        produced = 0
        while data:
            if self.zlib.eof:
                data = self._next_member(self.zlib.unused_data + data)
                if not data:
                    break
            budget = (self.limit - have - produced + 1) if self.limit else 0  # 0: no bound
            try:
                piece = self.zlib.decompress(data, budget)
            except zlib.error as exc:
                raise BodyError(400, f"body is not valid {self.encoding.decode()} data: {exc}") from None
            produced += len(piece)
            if self.limit and have + produced > self.limit:
                raise too_large(self.limit)
            out.append(piece)
            data = self.zlib.unconsumed_tail
            if self.zlib.eof and self.zlib.unused_data:
                data = self._next_member(self.zlib.unused_data + data)
        return b"".join(out)

    def finish(self):
        if self.zlib is not None and self.fed and not self.zlib.eof:
            raise BodyError(400, f"truncated {self.encoding.decode()} body")
