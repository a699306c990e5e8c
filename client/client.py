"""tritonize.Client: call a tritonize API over HTTP or gRPC with Cortex-like arguments."""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from typing import Any

import numpy as np

from tritonize.adapter.runtime.codec import (
    BINARY,
    JSON,
    TEXT,
    decode_payload,
    is_json_media_type,
    parse_content_type,
)
from tritonize.adapter.runtime.constants import (
    CONTENT_TYPE_OUTPUT_NAME,
    DEFAULT_URLS,
    INPUT_NAME,
    OUTPUT_NAME,
)
from tritonize.adapter.runtime.params import request_parameters
from tritonize.client.headers import grpc_metadata, http_headers
from tritonize.errors import PredictError, ServerUnreachable

# gRPC status -> the HTTP status Triton gives the same error over HTTP.
GRPC_TO_HTTP = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "ALREADY_EXISTS": 400,
    "CANCELLED": 400,
    "UNKNOWN": 400,
    "DEADLINE_EXCEEDED": 504,
    "RESOURCE_EXHAUSTED": 503,
}


def encode_payload(payload: Any, content_type: str | None = None) -> tuple[bytes, str]:
    """-> (body bytes, content type): bytes as binary, str as text, the rest as JSON."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload), content_type or BINARY
    if isinstance(payload, str):
        return payload.encode("utf-8"), content_type or TEXT
    return json.dumps(payload).encode("utf-8"), content_type or JSON


def _status_of(exc: Any) -> int:
    status = str(exc.status() or "")
    if status.isdigit():
        return int(status)
    name = status.rsplit(".", 1)[-1]
    return GRPC_TO_HTTP.get(name, 500)


class Client:
    """Client("127.0.0.1:8000") for HTTP, Client("127.0.0.1:8001", protocol="grpc") for gRPC."""

    def __init__(self, url: str | None = None, protocol: str = "http", timeout_s: float = 60.0) -> None:
        self.protocol = protocol
        url = (url or DEFAULT_URLS.get(protocol, "")).split("://", 1)[-1]
        self.url = url
        if protocol == "http":
            import tritonclient.http as module

            self._client = module.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s)
        elif protocol == "grpc":
            import tritonclient.grpc as module

            self._client = module.InferenceServerClient(url)
        else:
            raise ValueError(f"protocol must be 'http' or 'grpc', not {protocol!r}")
        self._module = module
        self.timeout_s = timeout_s

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def predict_raw(
        self,
        api: str,
        body: bytes,
        content_type: str | None = None,
        query_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> tuple[bytes, str]:
        """Send raw body bytes -> (response body bytes, response content type)."""
        m = self._module
        inp = m.InferInput(INPUT_NAME, [1, 1], "BYTES")
        data = np.empty((1, 1), dtype=np.object_)
        data[0, 0] = body
        kwargs = {}
        if self.protocol == "http":
            inp.set_data_from_numpy(data, binary_data=True)
            outputs = [
                m.InferRequestedOutput(OUTPUT_NAME, binary_data=True),
                m.InferRequestedOutput(CONTENT_TYPE_OUTPUT_NAME, binary_data=True),
            ]
        else:
            inp.set_data_from_numpy(data)
            outputs = [m.InferRequestedOutput(OUTPUT_NAME), m.InferRequestedOutput(CONTENT_TYPE_OUTPUT_NAME)]
            kwargs["client_timeout"] = self.timeout_s
        # Query params travel URL-encoded in one parameter: repeated keys and names Triton reserves survive.
        parameters = request_parameters(query_params, content_type)
        # A repeated header (a list value): repeated gRPC metadata; joined with ', ' over HTTP.
        sent = grpc_metadata(headers) if self.protocol == "grpc" else http_headers(headers)
        try:
            result = self._client.infer(
                api,
                [inp],
                outputs=outputs,
                parameters=parameters or None,
                headers=sent or None,
                **kwargs,
            )
        except m.InferenceServerException as exc:
            raise PredictError(_status_of(exc), _with_stream_hint(exc.message())) from None
        except OSError as exc:  # refused, reset, timed out: tritonclient's HTTP transport raises these as they are
            raise ServerUnreachable(self.url, self.protocol, exc) from None
        response_body = result.as_numpy(OUTPUT_NAME).reshape(-1)[0]
        response_type = result.as_numpy(CONTENT_TYPE_OUTPUT_NAME).reshape(-1)[0]
        return bytes(response_body), bytes(response_type).decode("utf-8")

    def predict(
        self,
        api: str,
        payload: Any,
        query_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Any:
        """Send payload (JSON-able, str or bytes) -> the decoded response (JSON, str or bytes)."""
        body, content_type = encode_payload(payload, content_type)
        response_body, response_type = self.predict_raw(api, body, content_type, query_params, headers)
        return decode_response(response_body, response_type)

    def stream_raw(
        self,
        api: str,
        body: bytes,
        content_type: str | None = None,
        query_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Generator[tuple[bytes, str], None, None]:
        """Send raw body bytes to a streaming API -> an iterator of (chunk body bytes, content type).

        HTTP: Triton's generate_stream (server-sent events; the body must be UTF-8 text and headers
        do not reach the predictor); gRPC: ModelStreamInfer on this client's one stream (one stream
        at a time per Client). An error chunk raises PredictError with its status. Leaving the loop
        early (break, close()) cancels the request: the predictor's generator is closed.
        """
        from . import streams

        if self.protocol == "http":
            chunks = streams.stream_http(self.url, api, body, content_type, query_params, headers, self.timeout_s)
        else:
            chunks = streams.stream_grpc(
                self._client, self._module, api, body, content_type, query_params, headers, self.timeout_s
            )
        return _unreachable_as(chunks, self.url, self.protocol)

    def stream(
        self,
        api: str,
        payload: Any,
        query_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Generator[Any, None, None]:
        """Send payload to a streaming API -> an iterator over its decoded chunks (JSON, str or bytes)."""
        body, content_type = encode_payload(payload, content_type)
        return _decoded(self.stream_raw(api, body, content_type, query_params, headers))


def _decoded(chunks: Generator[tuple[bytes, str], None, None]) -> Generator[Any, None, None]:
    try:
        for body, content_type in chunks:
            yield decode_response(body, content_type)
    finally:
        chunks.close()


def _unreachable_as(
    chunks: Generator[tuple[bytes, str], None, None], url: str, protocol: str
) -> Generator[tuple[bytes, str], None, None]:
    try:
        yield from chunks
    except OSError as exc:
        raise ServerUnreachable(url, protocol, exc) from None
    finally:
        chunks.close()


def _with_stream_hint(message: str) -> str:
    if "decoupled transaction policy" in message:
        return message + " (a streaming API: use Client.stream(), `tritonize predict --stream` or generate_stream)"
    return message


def decode_response(body: bytes, content_type: str) -> Any:
    """JSON -> object, text -> str, anything else -> bytes (the payload rules, reused)."""
    media_type, _ = parse_content_type(content_type)
    if is_json_media_type(media_type) and not body.strip():
        return None
    return decode_payload(body, content_type)
