"""A small HTTP/1.1 server (asyncio protocol + httptools' C parser) for the Cortex endpoint.

Measured ~3x the requests per CPU second of uvicorn's ASGI layer on the same parser
(benchmarks/RESULTS.md, "Cortex endpoint"), and the front must cost little beside Triton.
It does only what the endpoint needs: keep-alive, pipelining in order, Expect: 100-continue,
Content-Length and chunked bodies under a size limit (inflated gzip counted), chunked answers
for streams, idle and header-size limits.
"""

import asyncio
import collections
import time
from http import HTTPStatus

import httptools

from .body import BodyError, Inflater, check_declared, too_large
from .upstream import UpstreamError

# A request's URL and headers together; more is answered 431 (uvicorn/h11 allow ~64 KiB too).
MAX_HEADER_BYTES = 64 << 10
# Connections with no request in progress for this long are closed (also slow clients' half requests).
IDLE_TIMEOUT_S = 30.0
SWEEP_EVERY_S = 5.0
# Pipelined requests read ahead of the one being answered; past this the connection stops reading.
MAX_PIPELINED = 32
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "keep_alive", "error")

    def __init__(self, method, path, query, headers, body, keep_alive, error=None):
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.body, self.keep_alive, self.error = body, keep_alive, error


class HttpConnection(asyncio.Protocol):
    """One client connection; requests are answered one at a time, in order."""

    def __init__(self, server):
        self.server = server
        self.handler = server.handler
        self.max_body = server.max_body_bytes
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending = collections.deque()
        self.busy = False
        self.closed = False
        self.lost = None  # a Future set when the client goes away (streams wait on it)
        self.last_active = time.monotonic()
        self.keep_alive = True
        self.reading_paused = False
        self.failed = False
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
        self.server.connections.add(self)
        self.lost = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc):
        self.closed = True
        self.server.connections.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data):
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError:
            self._fail(400, "malformed HTTP request")

    # httptools callbacks
    def on_message_begin(self):
        self._reset()

    def on_url(self, url):
        self.header_bytes += len(url)
        if self.header_bytes > MAX_HEADER_BYTES:
            self._fail(414, "request URL too long")
            return
        self.url += url

    def on_header(self, name, value):
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            self._fail(431, "request headers too large")
            return
        self.headers.append((name.lower(), value))

    def on_headers_complete(self):
        if self.error is not None:
            return
        length = encoding = None
        expect = False
        for name, value in self.headers:
            if name == b"content-length":
                length = value
            elif name == b"content-encoding":
                encoding = value.strip().lower()
            elif name == b"expect":
                expect = value.lower() == b"100-continue"
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
        request = Request(self.parser.get_method(), path, query, self.headers, body, self.parser.should_keep_alive())
        self.pending.append(request)
        if len(self.pending) >= MAX_PIPELINED and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        if not self.busy:
            self._next()

    # answering
    def _fail(self, status, message):
        """Refuse the request being read and close the connection once it is answered (its body is not read)."""
        if self.error is not None:
            return
        self.error = (status, message)
        self.pending.append(Request(b"", b"", b"", [], b"", False, error=self.error))
        self.reading_paused = self.failed = True  # for good: the connection closes once this is answered
        self.transport.pause_reading()
        if not self.busy:
            self._next()

    def _next(self):
        while self.pending and not self.closed:
            request = self.pending.popleft()
            if self.reading_paused and not self.failed and len(self.pending) < MAX_PIPELINED // 2:
                self.reading_paused = False
                self.transport.resume_reading()
            self.keep_alive = request.keep_alive
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

    def respond(self, status, content_type, body, extra=b"", head=False):
        start = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s" % (
            status,
            _REASONS.get(status, b"Unknown"),
            content_type,
            len(body),
            self.server.extra_headers,
            extra,
        )
        if self.closed:
            return
        if head:
            body = b""
        if self.keep_alive:
            self.transport.write(start + b"\r\n" + body)
        else:
            self.transport.write(start + b"connection: close\r\n\r\n" + body)
            self.transport.close()
        self.last_active = time.monotonic()

    def start_chunked(self, status, content_type):
        if not self.closed:
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ntransfer-encoding: chunked\r\n%s\r\n"
                % (status, _REASONS.get(status, b"Unknown"), content_type, self.server.extra_headers)
            )

    def write_chunk(self, data):
        if data and not self.closed:
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self):
        if not self.closed:
            self.transport.write(b"0\r\n\r\n")
            if not self.keep_alive:
                self.transport.close()

    def abort(self):
        """End a chunked answer that failed midway: the client sees an incomplete body, not a short success."""
        if not self.closed:
            self.transport.abort()


class HttpServer:
    def __init__(self, handler, max_body_bytes, extra_headers=(), log_error=print):
        self.handler = handler  # handler(connection, request) -> None (answered) or a coroutine
        self.max_body_bytes = max_body_bytes
        self.extra_headers = b"".join(name + b": " + value + b"\r\n" for name, value in extra_headers)
        self.log_error = log_error
        self.connections = set()
        self._server = None

    async def serve(self, sock, stop):
        """Serve on a bound socket until `stop` (a Future) is set; then drain in-flight requests for a moment."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HttpConnection(self), sock=sock, backlog=2048)
        sweeper = loop.create_task(self._sweep())
        await stop
        self._server.close()
        sweeper.cancel()
        deadline = time.monotonic() + 5.0
        while any(c.busy for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.transport.close()

    async def _sweep(self):
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            idle_since = time.monotonic() - IDLE_TIMEOUT_S
            for connection in list(self.connections):
                if not connection.busy and connection.last_active < idle_since:
                    connection.transport.close()
