"""The Cortex endpoint: POST /<api> with the body as the payload, in front of Triton.

Per request it only translates: the client's body, Content-Type, query string and headers become
one /v2/models/<api>/infer request (see upstream.py); Triton's answer becomes the predictor's own
body, content type and status. It never parses the client's body, so a hostile JSON document
reaches the predictor as bytes, never Triton's envelope parser.
"""

import asyncio
import json
import re
import time
from urllib.parse import unquote_to_bytes

from tritonize.adapter.runtime.constants import (
    CONTENT_TYPE_OUTPUT_NAME,
    CONTENT_TYPE_PARAMETER,
    OUTPUT_NAME,
    QUERY_PARAMETER,
    STATUS_OUTPUT_NAME,
)

from .routes import Route
from .upstream import UpstreamError, error_message, infer_request, infer_result

# What Cortex v0.33 answered to GET on an API's endpoint (cortex_internal/serve/serve.py).
API_SUMMARY = json.dumps(
    {"message": "make a prediction by sending a post request to this endpoint with a json payload"}
).encode()
# For load balancers and Kubernetes probes; not a valid Cortex API name, so it never hides an API.
READY_PATH = b"/_tritonize/ready"
JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
# Cortex's nginx added these to every API answer (browser clients rely on them).
CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-allow-credentials", b"true"),
]
# With BatchAPIs: a browser stops a job with DELETE /<api>?jobID= (cortex_endpoint/jobs.py).
CORS_WITH_JOBS = [
    (name, b"GET, POST, DELETE, OPTIONS" if name == b"access-control-allow-methods" else value) for name, value in CORS
]
# Request headers about the client's message framing (and Accept-Encoding: Triton would compress its answer
# to us), not its content: never copied to Triton.
NOT_FORWARDED = frozenset(
    [
        b"content-length",
        b"content-type",
        b"content-encoding",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
        b"proxy-connection",
        b"inference-header-content-length",
        b"accept-encoding",
    ]
)


# Header names forwarded to Triton (and from there, by its header pattern, to the predictor): what gRPC
# metadata can carry too, so that streaming and non-streaming APIs see the same headers. Others (`X-A!B`,
# `X~A`…) are dropped, as nginx's ignore_invalid_headers drops them.
_FORWARDED_NAME = re.compile(rb"[0-9a-z][0-9a-z._-]*")


def forwarded_headers(headers):
    """-> (content type or None, [(name, value)] to forward), or raise HeaderError (400)."""
    content_type = None
    forward = []
    for name, value in headers:
        if name in NOT_FORWARDED:
            if name == b"content-type":
                content_type = value
            continue
        if _FORWARDED_NAME.fullmatch(name) is None or name.endswith(b"-bin") or name.startswith(b"grpc-"):
            continue  # gRPC metadata cannot carry it as text: dropped on every path
        if not value.isascii():
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise HeaderError(b"header %s is not valid UTF-8" % name) from None
        forward.append((name, value))
    return content_type, forward


class HeaderError(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


def error_body(message):
    """-> (content type, body); the message is the predictor's own body for a JSONResponse: keep its type."""
    body = message.encode("utf-8", errors="replace")
    if message[:1] in "{[":
        try:
            json.loads(message)
            return JSON, body
        except ValueError:
            pass
    return TEXT, body


class CortexFront:
    """handle(connection, request): answers at once, or returns the coroutine that will (server.py)."""

    def __init__(self, routes, pool, streamer=None, jobs=None):
        self.routes = {path.encode(): route for path, route in routes.items()}
        self.pool = pool
        self.streamer = streamer
        self.jobs = jobs  # cortex_endpoint/jobs.py's JobRoutes when the repository has a BatchAPI
        self.draining = False  # set on SIGTERM: readiness says false while requests are still answered

    def handle(self, conn, request):
        path = request.path
        if b"%" in path:  # /%65cho is /echo, as starlette routes it
            path = unquote_to_bytes(path)
        if len(path) > 1 and path.endswith(b"/"):
            path = path[:-1]
        route = self.routes.get(path)
        if route is not None and not isinstance(route, Route):  # a TrafficSplitter (traffic_splitter.py)
            route = route.resolve(self, conn, request)
            if route is None:
                return None  # answered
        method = request.method
        if route is None:
            if path == READY_PATH and method in (b"GET", b"HEAD"):
                return self._ready(conn, method == b"HEAD")
            if self.jobs is not None and self.jobs.handles(path):
                return self.jobs.handle_own(conn, request, path)
            return conn.respond(404, TEXT, b"not found: POST to /<api-name>")
        if route.batch:
            if self.jobs is None:
                return conn.respond(503, JSON, b'{"error": "batch jobs are not enabled on this endpoint"}')
            return self.jobs.handle_api(conn, request, route.api)
        if method == b"POST":
            if route.typed:
                message = f"API {route.api!r} takes typed tensors: call /v2/models/{route.api}/infer on Triton's port"
                return conn.respond(400, TEXT, message.encode())
            return self._predict(route, conn, request)
        if method in (b"GET", b"HEAD"):
            return conn.respond(200, JSON, API_SUMMARY, head=method == b"HEAD")
        if method == b"OPTIONS":
            return conn.respond(204, TEXT, b"", b"access-control-max-age: 1728000\r\n")
        return conn.respond(405, TEXT, b"method not allowed: POST a payload, or GET", b"allow: GET, POST, OPTIONS\r\n")

    def _predict(self, route, conn, request):
        """-> None (answered), a coroutine (streams), or the Future of Triton's answer (answered when it comes)."""
        try:
            content_type, forward = forwarded_headers(request.headers)
        except HeaderError as error:
            conn.respond(400, TEXT, error.message)
            return None
        parameters = {}
        if content_type is not None:
            parameters[CONTENT_TYPE_PARAMETER] = content_type.decode("latin-1")
        if request.query:
            parameters[QUERY_PARAMETER] = request.query.decode("latin-1")
        if route.streaming and self.streamer is not None:
            return self.streamer.stream(route.api, request.body, parameters, forward, conn)
        if not any(name == b"host" for name, _ in forward):
            forward.append((b"host", b"triton"))
        answer = self.pool.send(infer_request(route.api, request.body, parameters, forward, route.status_output))
        if route.timeout_s is None:
            answer.add_done_callback(lambda done: _answer(conn, done))
        else:
            start = time.monotonic()
            answer.add_done_callback(lambda done: _answer(conn, done, route, start))
        return answer

    async def _ready(self, conn, head):
        if self.draining:
            return conn.respond(503, TEXT, b"not ready: shutting down", head=head)
        try:
            if self.jobs is None:
                status, _, _ = await self.pool.request(b"GET /v2/health/ready HTTP/1.1\r\nHost: triton\r\n\r\n")
            else:
                status = await self._realtime_ready()
        except UpstreamError:
            status = 503
        if status == 200:
            return conn.respond(200, TEXT, b"ready", head=head)
        return conn.respond(503, TEXT, b"not ready", head=head)

    async def _realtime_ready(self):
        """With BatchAPIs: Triton's own readiness is false while a job's model loads or unloads (Triton 2.51),
        so ask each realtime model instead (Triton alive when there is none)."""
        models = sorted({route.api for route in self.routes.values() if isinstance(route, Route) and not route.batch})
        if not models:
            status, _, _ = await self.pool.request(b"GET /v2/health/live HTTP/1.1\r\nHost: triton\r\n\r\n")
            return status
        answers = await asyncio.gather(
            *(
                self.pool.request(b"GET /v2/models/%s/ready HTTP/1.1\r\nHost: triton\r\n\r\n" % m.encode())
                for m in models
            )
        )
        return 200 if all(status == 200 for status, _, _ in answers) else 503

    async def close(self):
        self.pool.close()
        if self.streamer is not None:
            await self.streamer.close()


def _answer(conn, done, route=None, start=None):
    """Triton's answer (a done Future) -> the client's."""
    try:
        status, headers, answer = done.result()
        if status != 200:
            message = error_message(answer)
            if route is not None and _timed_out(route, start, status, message):
                text = f"API {route.api!r} did not answer within its request timeout of {route.timeout_s:g} s"
                return conn.respond(504, TEXT, text.encode())
            return conn.respond(status, *error_body(message))
        outputs = infer_result(status, headers, answer)
        return conn.respond(success_status(outputs), outputs[CONTENT_TYPE_OUTPUT_NAME], outputs[OUTPUT_NAME])
    except (UpstreamError, KeyError) as exc:
        return conn.respond(503, TEXT, f"Triton did not answer: {exc}".encode())


def success_status(outputs):
    """The predictor's 2xx status (Response(status_code=201)): the runtime's status output, when it sent one."""
    text = outputs.get(STATUS_OUTPUT_NAME)
    status = int(text) if text and text.isdigit() else 200
    return status if 200 <= status < 300 else 200


def _timed_out(route, start, status, message):
    # The instance ended itself for the timeout (adapter/runtime/request_timeout.py); Triton says only
    # that its stub is not healthy.
    return status == 500 and message.endswith("is not healthy.") and time.monotonic() - start >= route.timeout_s
