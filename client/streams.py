"""Streams from a streaming API: Triton's generate_stream (SSE) over HTTP, ModelStreamInfer over gRPC.

Each chunk comes back as (body bytes, content type); errors raise PredictError with the
status the stream's error chunk carries (runtime/streaming.py: the wire contract).
"""

import http.client
import json
import queue

import numpy as np

from tritonize.adapter.runtime.constants import (
    CONTENT_TYPE_OUTPUT_NAME,
    GENERATE_STREAM_PATH,
    INPUT_NAME,
    OUTPUT_NAME,
)
from tritonize.adapter.runtime.params import request_parameters
from tritonize.adapter.runtime.stream_errors import UNTAGGED_ERROR_STATUS, stream_error_status
from tritonize.client.headers import grpc_metadata, http_headers
from tritonize.errors import PredictError


def _error(message, default_status=UNTAGGED_ERROR_STATUS):
    return PredictError(*stream_error_status(message, default_status))


def _sse_events(response):
    """Server-sent events -> each event's data (str)."""
    data = []
    while True:
        line = response.readline()
        if not line:
            break
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" ").decode("utf-8", errors="replace"))
    if data:
        yield "\n".join(data)


def generate_stream_body(body, content_type, query_params):
    """The generate_stream JSON request: the body as the payload tensor, parameters beside it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PredictError(
            400, "a binary request body cannot be sent over HTTP streams (SSE); use protocol='grpc'"
        ) from None
    parameters = request_parameters(query_params, content_type)
    document = {INPUT_NAME: text}
    if parameters:
        document["parameters"] = parameters
    return json.dumps(document).encode("utf-8")


def stream_http(url, api, body, content_type=None, query_params=None, headers=None, timeout_s=60.0, tls=False):
    """Yield (body bytes, content type) per chunk from POST /v2/models/<api>/generate_stream (http.client:
    never a proxy)."""
    host, _, port = url.split("://", 1)[-1].rstrip("/").rpartition(":") if ":" in url else (url, "", "")
    host = host.strip("[]")
    if tls:
        connection = http.client.HTTPSConnection(host, int(port or 443), timeout=timeout_s)
    else:
        connection = http.client.HTTPConnection(host, int(port or 80), timeout=timeout_s)
    try:
        connection.request(
            "POST",
            GENERATE_STREAM_PATH.format(api=api),
            body=generate_stream_body(body, content_type, query_params),
            headers={
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
                **http_headers(headers),
            },
        )
        response = connection.getresponse()
        if "event-stream" not in (response.getheader("Content-Type") or ""):
            # Refused before the model saw it (unknown API, bad request): one JSON error.
            text = response.read().decode("utf-8", errors="replace")
            try:
                text = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                pass
            raise _error(text, response.status if response.status >= 400 else 500)
        for data in _sse_events(response):
            event = json.loads(data)
            if "error" in event:
                raise _error(event["error"], response.status if response.status >= 400 else 500)
            chunk = event.get(OUTPUT_NAME, "")
            yield (
                chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk),
                event.get(CONTENT_TYPE_OUTPUT_NAME, ""),
            )
    finally:
        connection.close()  # mid-stream: Triton sees the disconnect and cancels the request


def _is_final(result):
    parameter = result.get_response().parameters.get("triton_final_response")
    return parameter is not None and parameter.bool_param


def stream_grpc(client, module, api, body, content_type=None, query_params=None, headers=None, timeout_s=60.0):
    """Yield (body bytes, content type) per chunk over ModelStreamInfer, on `client`'s one stream."""
    inp = module.InferInput(INPUT_NAME, [1, 1], "BYTES")
    data = np.empty((1, 1), dtype=np.object_)
    data[0, 0] = body
    inp.set_data_from_numpy(data)
    parameters = request_parameters(query_params, content_type)
    answers = queue.SimpleQueue()
    client.start_stream(
        lambda result, error: answers.put((result, error)),
        headers=grpc_metadata(headers) or None,
    )
    finished = False
    try:
        client.async_stream_infer(
            api,
            [inp],
            outputs=[module.InferRequestedOutput(OUTPUT_NAME), module.InferRequestedOutput(CONTENT_TYPE_OUTPUT_NAME)],
            parameters=parameters or None,
            enable_empty_final_response=True,
        )
        while True:
            try:
                result, error = answers.get(timeout=timeout_s)
            except queue.Empty:
                raise PredictError(504, f"no chunk within {timeout_s:g} s") from None
            if error is not None:
                finished = True
                raise _error(error.message() if hasattr(error, "message") else str(error))
            response_body = result.as_numpy(OUTPUT_NAME)
            if response_body is not None:
                response_type = result.as_numpy(CONTENT_TYPE_OUTPUT_NAME)
                yield bytes(response_body.reshape(-1)[0]), bytes(response_type.reshape(-1)[0]).decode("utf-8")
            if _is_final(result):
                finished = True
                return
    finally:
        # Leaving early (the caller stopped iterating): cancel, so the predictor's generator is closed.
        client.stop_stream(cancel_requests=not finished)
