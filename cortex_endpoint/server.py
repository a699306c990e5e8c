"""A small HTTP/1.1 server (asyncio protocol + httptools' C parser) for the Cortex endpoint.

Measured ~3x the requests per CPU second of uvicorn's ASGI layer on the same parser
(benchmarks/RESULTS.md, "Cortex endpoint"), and the front must cost little beside Triton.
It does only what the endpoint needs: keep-alive, pipelining in order, Expect: 100-continue,
Content-Length and chunked bodies under a size limit (inflated gzip counted), chunked answers
for streams, idle and header-size limits.
"""

import asyncio
import collections
import re
import time
from http import HTTPStatus

import httptools

from .body import BodyError, Inflater, check_declared, too_large
from .upstream import UpstreamError

# A request's header block, and one header line (name and value); more is answered 431. Triton 2.51's
# HTTP port resets a connection with a header line over 8 KiB (measured: a 8191-byte value passes, 8192
# does not; docs/security.md): what is forwarded to it must stay under that, checked here.
MAX_HEADER_BYTES = 32 << 10
MAX_HEADER_LINE_BYTES = 8000
# A request's URL (its query string reaches Triton as a parameter, in the body, not as a header).
MAX_URL_BYTES = 64 << 10
# Connections with no request in progress for this long are closed.
IDLE_TIMEOUT_S = 30.0
# A whole header block, and a whole body, must arrive within these (slowloris: a byte every few seconds
# would otherwise hold a connection for ever); past them the request is answered 408 and the connection closed.
HEADER_TIMEOUT_S = 20.0
BODY_TIMEOUT_S = 60.0
SWEEP_EVERY_S = 1.0
# What a stream may leave unsent in a client's transport before it stops reading from Triton.
WRITE_HIGH_WATER = 256 << 10
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
# RFC 9110 field-value: visible ASCII, space, tab and obs-text; never CR, LF or NUL (response splitting).
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def valid_header(name, value):
    """True if `name: value` can be written as one header line (no CR/LF/NUL, a token for a name)."""
    return _TOKEN.fullmatch(name) is not None and _FIELD_VALUE.fullmatch(value) is not None


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "keep_alive", "error", "http10")

    def __init__(self, method, path, query, headers, body, keep_alive, error=None, http10=False):
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.body, self.keep_alive, self.error, self.http10 = body, keep_alive, error, http10


class HttpConnection(asyncio.Protocol):
    """One client connection; requests are read and answered one at a time, in order.

    What the client sends while a request is being answered is held (one read's worth) and reading is
    paused: the next request is parsed only when its turn comes (nginx does the same), so pipelining
    costs no more memory than one request.
    """

    def __init__(self, server):
        self.server = server
        self.handler = server.handler
        self.max_body = server.max_body_bytes
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending = collections.deque()
        self.held = collections.deque()  # bytes received while busy, parsed when the turn comes
        self.feeding = False
        self.busy = False
        self.closed = False
        self.lost = None  # a Future set when the client goes away (streams wait on it)
        self.last_active = time.monotonic()
        self.keep_alive = True
        self.reading_paused = False
        self.writing_paused = None  # a Future while the client's transport is over its high-water mark
        self.failed = False
        self.http10 = False  # the request being answered is HTTP/1.0: no chunked answer (RFC 9112 7.1)
        self.phase = None  # None (between requests), "headers", "body"
        self.phase_since = 0.0
        self._reset()

    def _reset(self):
        self.url = b""
        self.headers = []
        self.chunks = []
        self.size = 0
        self.header_bytes = 0
        self.inflater = None
        self.error = None

    # asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.server.connections.add(self)
        self.lost = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc):
        self.closed = True
        self.server.connections.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)
        self.resume_writing()

    def pause_writing(self):
        if self.writing_paused is None:
            self.writing_paused = asyncio.get_running_loop().create_future()

    def resume_writing(self):
        waiter, self.writing_paused = self.writing_paused, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._pump()  # requests held while the client was not reading its answers

    async def drain(self):
        """Wait while the client's transport holds more than its high-water mark (streams call it per chunk)."""
        if self.writing_paused is not None:
            await self.writing_paused

    def data_received(self, data):
        self.last_active = time.monotonic()
        self.held.append(data)
        self._pump()

    def _pump(self):
        """Parse held bytes while no request is being answered; pause reading while some are held."""
        if self.feeding:
            return  # called back from inside feed_data (a request answered at once): the loop below goes on
        self.feeding = True
        try:
            # Not while answers pile up unread in the client's transport either (pipelined requests from
            # a client that never reads would otherwise grow it without bound).
            while self.held and not self.busy and self.writing_paused is None and not self.failed and not self.closed:
                try:
                    self.parser.feed_data(self.held.popleft())
                except httptools.HttpParserUpgrade:
                    # The request asking for it was answered as a plain one, with `connection: close`:
                    # what follows is not HTTP/1.1 and is never parsed (no second answer on the connection).
                    self.held.clear()
                    self.failed = True
                    self.reading_paused = True
                    self.transport.pause_reading()
                except httptools.HttpParserError:
                    self._fail(400, "malformed HTTP request")
        finally:
            self.feeding = False
        if self.closed or self.failed:
            return
        if self.held and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        elif not self.held and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    # httptools callbacks
    def on_message_begin(self):
        self._reset()
        self.phase, self.phase_since = "headers", time.monotonic()

    def on_url(self, url):
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            self._fail(414, "request URL too long")

    def on_header(self, name, value):
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > MAX_HEADER_BYTES:
            self._fail(431, f"request headers too large: this server accepts at most {MAX_HEADER_BYTES} bytes")
            return
        if len(name) + len(value) > MAX_HEADER_LINE_BYTES:
            self._fail(
                431, f"request header too large: this server accepts at most {MAX_HEADER_LINE_BYTES} bytes per header"
            )
            return
        if self.phase == "body":
            # A chunked body's trailer fields: never merged into the headers (RFC 9110 6.5.1): a proxy that
            # checked the headers may not have checked these (`X-Tenant`, `Content-Type` in a trailer).
            return
        self.headers.append((name.lower(), value))

    def on_headers_complete(self):
        if self.error is not None:
            return
        self.phase, self.phase_since = "body", time.monotonic()
        length = encoding = None
        expect = False
        if self.parser.get_method() == b"CONNECT":
            self._fail(405, "CONNECT is not supported: this is not a proxy")
            return
        hosts = 0
        for name, value in self.headers:
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                length = value
            elif name == b"content-encoding":
                encoding = value.strip().lower()
            elif name == b"expect":
                expect = value.lower() == b"100-continue"
        if hosts != 1 and (hosts > 1 or self.parser.get_http_version() == "1.1"):
            self._fail(400, "an HTTP/1.1 request has exactly one Host header (RFC 9112 3.2)")
            return
        try:
            check_declared(length, encoding, self.max_body)
            self.inflater = Inflater(encoding, self.max_body)
        except BodyError as error:
            self._fail(error.status, error.message)  # before the body is sent: it never is
            return
        if expect:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, data):
        if self.error is not None:
            return
        try:
            data = self.inflater.feed(data, self.size)
        except BodyError as error:
            self._fail(error.status, error.message)
            return
        self.size += len(data)
        if self.max_body and self.size > self.max_body:
            self._fail(413, too_large(self.max_body).message)
            return
        self.chunks.append(data)

    def on_message_complete(self):
        self.phase = None
        if self.error is not None:
            return
        try:
            self.inflater.finish()
        except BodyError as error:
            self._fail(error.status, error.message)
            return
        path, _, query = self.url.partition(b"?")
        query, _, _ = query.partition(b"#")
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        keep_alive = self.parser.should_keep_alive() and not self.server.draining and not self.parser.should_upgrade()
        http10 = self.parser.get_http_version() == "1.0"
        request = Request(self.parser.get_method(), path, query, self.headers, body, keep_alive, http10=http10)
        self.chunks = []
        self.pending.append(request)
        if not self.busy:
            self._next()

    # answering
    def _fail(self, status, message):
        """Refuse the request being read and close the connection once it is answered (its body is not read)."""
        if self.error is not None or self.failed:
            return
        self.error = (status, message)
        self.pending.append(Request(b"", b"", b"", [], b"", False, error=self.error))
        self.failed = True  # for good: the connection closes once this is answered
        self.phase = None
        self.held.clear()
        if not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        if not self.busy:
            self._next()

    def timed_out(self, now):
        """-> True if the request being read has taken too long (the sweeper then answers 408)."""
        if self.busy or self.phase is None:
            return False
        limit = self.server.header_timeout_s if self.phase == "headers" else self.server.body_timeout_s
        return now - self.phase_since > limit

    def _next(self):
        while self.pending and not self.closed:
            request = self.pending.popleft()
            self.keep_alive = request.keep_alive
            self.http10 = request.http10
            if request.error is not None:
                status, message = request.error
                self.respond(status, b"text/plain; charset=utf-8", message.encode())
                return
            self.busy = True
            try:
                result = self.handler(self, request)
            except Exception as exc:  # a bug in the handler: answer this request, keep serving the others
                self.server.log_error(exc)
                self.keep_alive = False
                self.respond(500, b"text/plain; charset=utf-8", b"internal server error")
                return
            if result is not None:  # a Future or a coroutine: the answer comes later
                asyncio.ensure_future(result).add_done_callback(self._done)
                return
            self.busy = False
        self.busy = False
        if self.phase is not None:  # a pipelined request begun while the previous one was answered
            self.phase_since = time.monotonic()
        self._pump()

    def _done(self, task):
        self.busy = False
        if task.cancelled():
            return self.transport.close()
        error = task.exception()
        if error is not None and not isinstance(error, UpstreamError):  # the handler answered UpstreamErrors
            if not self.closed:
                self.server.log_error(error)
                self.transport.close()
            return None
        self._next()

    def _checked_content_type(self, status, content_type):
        """The predictor's content type if it is one header value; else None (logged, answered 500)."""
        known = self.server.valid_content_types
        if content_type in known:
            return content_type
        if _FIELD_VALUE.fullmatch(content_type) is not None:
            if len(known) < 256:  # the few types an API answers with, checked once
                known.add(content_type)
            return content_type
        self.server.log_error(ValueError(f"a response's Content-Type is not a valid header value: {content_type!r}"))
        return None

    def respond(self, status, content_type, body, extra=b"", head=False):
        if self.closed:
            return
        if self._checked_content_type(status, content_type) is None:
            status, content_type = 500, b"text/plain; charset=utf-8"
            body = b"internal server error: the predictor's response has an invalid Content-Type"
        # 1xx, 204 and 304 answers have no body (RFC 9110 6.4.1): no Content-Length either.
        no_body = status == 204 or status == 304 or status < 200
        start = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s%s%s" % (
            status,
            _REASONS.get(status, b"Unknown"),
            content_type,
            b"" if no_body else b"content-length: %d\r\n" % len(body),
            self.server.extra_headers,
            extra,
        )
        if head or no_body:
            body = b""
        if self.keep_alive and not self.server.draining:
            self.transport.write(start + b"\r\n" + body)
        else:
            self.keep_alive = False
            self.transport.write(start + b"connection: close\r\n\r\n" + body)
            self.transport.close()
        self.last_active = time.monotonic()

    def start_chunked(self, status, content_type):
        """-> False (and a 500 is sent) if the content type cannot be sent as a header."""
        if self.closed:
            return True
        if self._checked_content_type(status, content_type) is None:
            self.respond(500, b"text/plain; charset=utf-8", b"")  # respond() says why
            return False
        close = b"" if self.keep_alive and not self.server.draining and not self.http10 else b"connection: close\r\n"
        if close:
            self.keep_alive = False
        # An HTTP/1.0 client cannot read chunks: the body is the stream as it comes, ended by closing.
        framing = b"" if self.http10 else b"transfer-encoding: chunked\r\n"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s%s%s\r\n"
            % (status, _REASONS.get(status, b"Unknown"), content_type, framing, self.server.extra_headers, close)
        )
        return True

    def write_chunk(self, data):
        if data and not self.closed:
            self.transport.write(data if self.http10 else b"%x\r\n%s\r\n" % (len(data), data))
            self.last_active = time.monotonic()

    def end_chunked(self):
        if not self.closed:
            if not self.http10:
                self.transport.write(b"0\r\n\r\n")
            if not self.keep_alive:
                self.transport.close()

    def abort(self):
        """End a chunked answer that failed midway: the client sees an incomplete body, not a short success."""
        if not self.closed:
            self.transport.abort()


class HttpServer:
    def __init__(
        self,
        handler,
        max_body_bytes,
        extra_headers=(),
        log_error=print,
        header_timeout_s=HEADER_TIMEOUT_S,
        body_timeout_s=BODY_TIMEOUT_S,
        idle_timeout_s=IDLE_TIMEOUT_S,
    ):
        self.handler = handler  # handler(connection, request) -> None (answered) or a coroutine
        self.max_body_bytes = max_body_bytes
        for name, value in extra_headers:
            if not valid_header(name, value):
                raise ValueError(f"invalid header {name!r}: {value!r}")
        self.extra_headers = b"".join(name + b": " + value + b"\r\n" for name, value in extra_headers)
        self.log_error = log_error
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.connections = set()
        self.valid_content_types = set()
        self.draining = False  # answers say `connection: close`; set once the listening socket is closed
        self._server = None

    async def serve(self, sock, stop, grace_s=30.0, drain_notice_s=0.0, on_drain=None):
        """Serve on a bound socket until `stop` (a Future) is set, then drain: on_drain() (readiness says
        false) and keep serving for `drain_notice_s`, stop accepting, let requests and streams in flight
        finish within `grace_s`, close the rest."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HttpConnection(self), sock=sock, backlog=2048)
        sweeper = loop.create_task(self._sweep())
        await stop
        if on_drain is not None:
            on_drain()
        if drain_notice_s > 0:
            await asyncio.sleep(drain_notice_s)
        self._server.close()
        self.draining = True
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            for connection in list(self.connections):
                if not connection.busy and not connection.pending and connection.phase is None:
                    connection.transport.close()  # idle keep-alive connections: nothing in flight
            if not self.connections:
                break
            await asyncio.sleep(0.05)
        sweeper.cancel()
        for connection in list(self.connections):
            connection.transport.close()

    async def _sweep(self):
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            now = time.monotonic()
            idle_since = now - self.idle_timeout_s
            for connection in list(self.connections):
                if connection.timed_out(now):
                    connection.held.clear()
                    connection.phase = None
                    connection.failed = True
                    connection.keep_alive = False
                    connection.respond(408, b"text/plain; charset=utf-8", b"request not received in time")
                elif not connection.busy and connection.phase is None and connection.last_active < idle_since:
                    connection.transport.close()
