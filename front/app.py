"""The Cortex endpoint as a raw ASGI app: POST /<api> with the body as the payload, in front of Triton.

Per request it only translates: the client's body, Content-Type, query string and headers become
one /v2/models/<api>/infer request (see upstream.py); Triton's answer becomes the predictor's own
body, content type and status. It never parses the client's body, so a hostile JSON document
reaches the predictor as bytes, never Triton's envelope parser.
"""

import json

from tritonize.adapter.runtime.constants import (
    CONTENT_TYPE_OUTPUT_NAME,
    CONTENT_TYPE_PARAMETER,
    OUTPUT_NAME,
    QUERY_PARAMETER,
)

from .body import BodyError, check_declared, read_body
from .upstream import UpstreamError, error_message, infer_request, infer_result

# What Cortex v0.33 answered to GET on an API's endpoint (cortex_internal/serve/serve.py).
API_SUMMARY = json.dumps(
    {"message": "make a prediction by sending a post request to this endpoint with a json payload"}
).encode()
# For load balancers and Kubernetes probes; not a valid Cortex API name, so it never hides an API.
READY_PATH = "/_tritonize/ready"
JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
# Cortex's nginx added these to every API answer (browser clients rely on them).
CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-allow-credentials", b"true"),
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


async def respond(send, status, content_type, body, extra=()):
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *CORS, *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
    def __init__(self, routes, pool, max_body_bytes, streamer=None):
        self.routes = routes
        self.pool = pool
        self.max_body_bytes = max_body_bytes
        self.streamer = streamer

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        route = self.routes.get(path)
        method = scope["method"]
        if route is None:
            if path == READY_PATH and method in ("GET", "HEAD"):
                return await self._ready(send)
            return await respond(send, 404, TEXT, b"not found: POST to /<api-name>")
        if method == "POST":
            return await self._predict(route, scope, receive, send)
        if method in ("GET", "HEAD"):
            return await respond(send, 200, JSON, API_SUMMARY)
        if method == "OPTIONS":
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [(b"content-length", b"0"), *CORS, (b"access-control-max-age", b"1728000")],
                }
            )
            return await send({"type": "http.response.body", "body": b""})
        return await respond(send, 405, TEXT, b"method not allowed: POST a payload, or GET", [(b"allow", b"GET, POST")])

    async def _predict(self, route, scope, receive, send):
        content_type = content_length = encoding = None
        forward = []
        for name, value in scope["headers"]:
            if name in NOT_FORWARDED:
                if name == b"content-type":
                    content_type = value
                elif name == b"content-length":
                    content_length = value
                elif name == b"content-encoding":
                    encoding = value.strip().lower()
                continue
            if not value.isascii():
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    return await respond(send, 400, TEXT, b"header %s is not valid UTF-8" % name)
            forward.append((name, value))
        try:
            check_declared(content_length, encoding, self.max_body_bytes)
            body = await read_body(receive, encoding, self.max_body_bytes)
        except BodyError as error:
            if error.status == 499:
                return None
            return await respond(send, error.status, TEXT, error.message.encode())
        parameters = {}
        if content_type is not None:
            parameters[CONTENT_TYPE_PARAMETER] = content_type.decode("latin-1")
        if scope["query_string"]:
            parameters[QUERY_PARAMETER] = scope["query_string"].decode("latin-1")
        if route.streaming and self.streamer is not None:
            return await self.streamer.stream(route.api, body, parameters, forward, receive, send)
        if not any(name == b"host" for name, _ in forward):
            forward.append((b"host", b"triton"))
        try:
            status, headers, answer = await self.pool.request(infer_request(route.api, body, parameters, forward))
            if status != 200:
                return await respond(send, status, *error_body(error_message(answer)))
            outputs = infer_result(status, headers, answer)
            return await respond(send, 200, outputs[CONTENT_TYPE_OUTPUT_NAME], outputs[OUTPUT_NAME])
        except (UpstreamError, KeyError) as exc:
            return await respond(send, 503, TEXT, f"Triton did not answer: {exc}".encode())

    async def _ready(self, send):
        try:
            status, _, _ = await self.pool.request(b"GET /v2/health/ready HTTP/1.1\r\nHost: triton\r\n\r\n")
        except UpstreamError:
            status = 503
        if status == 200:
            return await respond(send, 200, TEXT, b"ready")
        return await respond(send, 503, TEXT, b"not ready")

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.pool.close()
                if self.streamer is not None:
                    await self.streamer.close()
                return await send({"type": "lifespan.shutdown.complete"})
