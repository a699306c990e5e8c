"""Streaming APIs (decoupled models): POST /<api> answered with a chunked response.

Triton's HTTP /infer refuses decoupled models, so these go over gRPC ModelStreamInfer: one request,
then each response's `response` tensor is written as one chunk as it arrives; the first response's
`content_type` is the HTTP Content-Type. The gRPC call is cancelled when the client goes away.

Backpressure: while the client's transport holds more than its high-water mark, no further message is
read from the call, so gRPC's flow control holds Triton's sender (the endpoint holds at most one
message and the transport's buffer per stream).
"""

import asyncio
import struct

from tritonize.adapter.runtime.constants import CONTENT_TYPE_OUTPUT_NAME, INPUT_NAME, OUTPUT_NAME, STATUS_OUTPUT_NAME

# Streamed errors carry their HTTP status in-band (gRPC stream errors have no code): the runtime's
# STREAM_ERROR_FORMAT, read back by the runtime's own parser so the two cannot drift apart.
from tritonize.adapter.runtime.stream_errors import stream_error_status

# gRPC metadata the client library sets itself, or that gRPC refuses from applications.
_NOT_METADATA = frozenset([b"host", b"user-agent", b"te", b"content-type"])
# Channel options: no size limit of gRPC's own (the endpoint's body limit applies first), and never a
# proxy: gRPC honours http_proxy/grpc_proxy, and Triton is this server's own (docs/security.md).
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.enable_http_proxy", 0),
]


# gRPC's default metadata limit (8 KiB, counting 32 bytes per entry, and the call's own entries; Triton
# 2.51 refuses more, measured): what a streaming API's headers may add up to.
MAX_METADATA_BYTES = 7 << 10


class MetadataError(Exception):
    """A header gRPC metadata cannot carry: 400 (a value not printable ASCII), 431 (too much of them)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def grpc_metadata(headers):
    """Forwarded headers (app.forwarded_headers: names are already valid metadata keys) -> gRPC metadata."""
    metadata = []
    size = 0
    for name, value in headers:
        if name in _NOT_METADATA:
            continue
        value = value.strip(b" \t")
        if not _printable_ascii(value):
            raise MetadataError(
                400,
                f"header {name.decode()!r}: a streaming API takes header values of printable ASCII only "
                "(no tabs, no UTF-8): gRPC metadata cannot carry them",
            )
        size += len(name) + len(value) + 32
        if size > MAX_METADATA_BYTES:
            raise MetadataError(
                431, f"request headers too large: a streaming API takes at most {MAX_METADATA_BYTES} bytes of headers"
            )
        metadata.append((name.decode("ascii"), value.decode("ascii")))
    return tuple(metadata)


def _printable_ascii(value):
    return all(0x20 <= byte < 0x7F for byte in value)


def _bytes_output(response, name):
    for index, output in enumerate(response.outputs):
        if output.name == name and index < len(response.raw_output_contents):
            return response.raw_output_contents[index][4:]  # one BYTES element: 4-byte length, then bytes
    return None


def _success_status(response):
    # A chunked answer has a body: 204 and 304 cannot be one.
    text = _bytes_output(response, STATUS_OUTPUT_NAME)
    status = int(text) if text and text.isdigit() else 200
    return status if 200 <= status < 300 and status != 204 else 200


class GrpcStreamer:
    def __init__(self, host, port):
        self.target = f"{host}:{port}"
        self._channel = None
        self._stub = None

    def _client(self):
        if self._stub is None:
            import grpc
            from tritonclient.grpc import service_pb2, service_pb2_grpc

            self._channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
            self._pb = service_pb2
            self._grpc = grpc
        return self._stub

    def _request(self, api, body, parameters):
        request = self._pb.ModelInferRequest(model_name=api)
        tensor = request.inputs.add()
        tensor.name, tensor.datatype = INPUT_NAME, "BYTES"
        tensor.shape.extend([1, 1])
        request.raw_input_contents.append(struct.pack("<I", len(body)) + body)
        for key, value in parameters.items():
            request.parameters[key].string_param = value
        # A flag-only last response tells us the stream is over.
        request.parameters["triton_enable_empty_final_response"].bool_param = True
        return request

    async def stream(self, api, body, parameters, headers, conn):
        from .app import TEXT, error_body

        try:
            metadata = grpc_metadata(headers)
        except MetadataError as error:
            return conn.respond(error.status, TEXT, str(error).encode())
        stub = self._client()
        call = stub.ModelStreamInfer(metadata=metadata)
        conn.lost.add_done_callback(lambda _: call.cancel())
        started = False
        try:
            await call.write(self._request(api, body, parameters))
            await call.done_writing()
            async for message in call:
                if message.error_message:
                    if started:
                        return conn.abort()  # the status is sent: the client sees an incomplete body
                    status, text = stream_error_status(message.error_message)
                    return conn.respond(status, *error_body(text))
                response = message.infer_response
                chunk = _bytes_output(response, OUTPUT_NAME)
                if not started and chunk is not None:
                    status = _success_status(response)
                    if not conn.start_chunked(status, _bytes_output(response, CONTENT_TYPE_OUTPUT_NAME) or TEXT):
                        call.cancel()
                        return None
                    started = True
                conn.write_chunk(chunk)
                await conn.drain()  # the client reads slower than Triton sends: stop reading the call
                if response.parameters["triton_final_response"].bool_param:
                    break
        except asyncio.CancelledError:
            if conn.closed:
                return None  # the client went away and the call was cancelled with it
            raise
        except self._grpc.aio.AioRpcError as exc:
            if conn.closed:
                return None
            if started:
                return conn.abort()
            return conn.respond(503, TEXT, f"Triton did not answer: {exc.details()}".encode())
        except Exception:  # a bug, or gRPC refusing something: every request still gets an answer
            call.cancel()
            if started:
                conn.abort()
            else:
                conn.respond(500, TEXT, b"internal server error")
            raise
        if not started:
            conn.start_chunked(200, TEXT)
        conn.end_chunked()

    async def close(self):
        if self._channel is not None:
            await self._channel.close()
