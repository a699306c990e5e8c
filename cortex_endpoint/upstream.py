"""A keep-alive HTTP/1.1 connection pool to Triton's /v2/models/<api>/infer, binary tensor extension.

Measured faster than tritonclient's gRPC aio client for this one call (benchmarks/cortex_endpoint_bench.py):
one write and one parse per request, no protobuf objects, no extra thread.
"""

import asyncio
import collections
import functools
import json
import struct

import httptools

from tritonize.adapter.runtime.constants import CONTENT_TYPE_OUTPUT_NAME, INPUT_NAME, OUTPUT_NAME, STATUS_OUTPUT_NAME

# Idle connections kept open beyond this are closed (busy ones are not limited: one per in-flight request).
MAX_IDLE = 64


def _header(outputs):
    requested = json.dumps(
        [{"name": name, "parameters": {"binary_data": True}} for name in outputs], separators=(",", ":")
    )
    return (
        b'{"inputs":[{"name":'
        + json.dumps(INPUT_NAME).encode()
        + b',"shape":[1,1],"datatype":"BYTES","parameters":{"binary_data_size":%d}}],"outputs":'
        + requested.encode()
        + b',"parameters":%s}'
    )


_HEADER = _header([OUTPUT_NAME, CONTENT_TYPE_OUTPUT_NAME])
# Models built with the status output (adapter/model_config.py) also have it requested; older ones do not
# declare it, and Triton refuses a request for an output a model does not declare.
_HEADER_WITH_STATUS = _header([OUTPUT_NAME, CONTENT_TYPE_OUTPUT_NAME, STATUS_OUTPUT_NAME])


# Built once: json.dumps(..., separators=...) builds an encoder per call (the request path).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class UpstreamError(Exception):
    """Triton could not be reached or answered something that is not an inference response."""


class _Connection(asyncio.Protocol):
    def __init__(self):
        self.parser = httptools.HttpResponseParser(self)
        self.transport = None
        self.loop = None
        self.waiter = None
        self.headers = {}
        self.chunks = []
        self.got_bytes = False
        self.headers_done = False
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        # Looked up once: asyncio.get_running_loop() makes a getpid() system call each time (CPython's
        # fork check), and send() runs for every request.
        self.loop = asyncio.get_running_loop()

    def data_received(self, data):
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"bad HTTP response from Triton: {exc}"))
            self.transport.close()

    def on_header(self, name, value):
        self.headers[name.lower()] = value

    def on_headers_complete(self):
        self.headers_done = True

    def on_body(self, body):
        self.chunks.append(body)

    def on_message_complete(self):
        waiter, self.waiter = self.waiter, None
        result = (self.parser.get_status_code(), self.headers, b"".join(self.chunks))
        self.headers, self.chunks, self.headers_done = {}, [], False
        if waiter is not None and not waiter.done():
            waiter.set_result(result)
        if not self.parser.should_keep_alive():
            self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        if self.headers_done and exc is None and self.waiter is not None:
            self.on_message_complete()  # a body delimited by the end of the connection (HTTP/1.0 style)
        self._fail(UpstreamError("Triton closed the connection"))

    def _fail(self, error):
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def send(self, data):
        self.got_bytes = self.headers_done = False
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        return self.waiter


class TritonPool:
    """Connections to one Triton HTTP endpoint, reused across requests."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self._idle = collections.deque()
        self._loop = None  # the event loop it serves (one per endpoint worker), looked up once: see send()

    async def _connect(self):
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(_Connection, self.host, self.port)
        except OSError as exc:
            raise UpstreamError(f"cannot reach Triton at {self.host}:{self.port}: {exc.strerror or exc}") from None
        return connection

    async def request(self, data):
        """Send one complete HTTP request -> (status, headers, body). Retries once on a stale idle connection."""
        while self._idle:
            connection = self._idle.pop()
            if connection.closed:
                continue
            try:
                result = await connection.send(data)
            except UpstreamError:
                if connection.got_bytes:
                    raise
                continue  # Triton closed it while idle: nothing was processed, try another
            self._release(connection)
            return result
        connection = await self._connect()
        result = await connection.send(data)
        self._release(connection)
        return result

    def send(self, data):
        """request() without a coroutine: -> a Future of (status, headers, body) (the hot path)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()  # a getpid() system call: not per request
        result = loop.create_future()
        self._send_on_idle(data, result)
        return result

    def _send_on_idle(self, data, result):
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                sent = connection.send(data)
                sent.add_done_callback(functools.partial(self._sent, connection, data=data, result=result))
                return
        asyncio.ensure_future(self._send_on_new(data, result))

    def _sent(self, connection, sent, *, data, result):
        error = sent.exception()
        if error is None:
            self._release(connection)
            result.set_result(sent.result())
        elif connection.got_bytes:
            result.set_exception(error)
        else:
            self._send_on_idle(data, result)  # Triton closed it while idle: nothing was processed, try another

    async def _send_on_new(self, data, result):
        try:
            result.set_result(await self.request(data))
        except UpstreamError as error:
            result.set_exception(error)

    def _release(self, connection):
        if connection.closed:
            return
        if len(self._idle) >= MAX_IDLE:
            connection.transport.close()
        else:
            self._idle.append(connection)

    def close(self):
        while self._idle:
            self._idle.pop().transport.close()


def infer_request(api, body, parameters, headers, with_status=False):
    """The bytes of one /infer request; `headers`: [(name, value)] bytes pairs copied for Triton to forward."""
    header = _HEADER_WITH_STATUS if with_status else _HEADER
    header_json = header % (len(body) + 4, _COMPACT_JSON.encode(parameters).encode())
    lines = [b"POST /v2/models/%s/infer HTTP/1.1" % api.encode()]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Inference-Header-Content-Length: %d" % len(header_json))
    lines.append(b"Content-Length: %d" % (len(header_json) + 4 + len(body)))
    return b"\r\n".join(lines) + b"\r\n\r\n" + header_json + struct.pack("<I", len(body)) + body


def infer_result(status, headers, body):
    """A 200 response -> {output name: bytes}; raises UpstreamError if it cannot be read."""
    try:
        json_size = int(headers.get(b"inference-header-content-length", len(body)))
        outputs = json.loads(body[:json_size])["outputs"]
        values, position = {}, json_size
        for output in outputs:
            size = output["parameters"]["binary_data_size"]
            # One BYTES element: 4-byte little-endian length, then the bytes.
            values[output["name"]] = body[position + 4 : position + size]
            position += size
        return values
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamError(f"unreadable inference response from Triton: {exc}") from None


def error_message(body):
    """Triton's error body {"error": "..."} -> the message."""
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", errors="replace")
