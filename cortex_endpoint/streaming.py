"""Streaming APIs (decoupled models): POST /<api> answered with a chunked response.

Triton's HTTP /infer refuses decoupled models, so these go over gRPC ModelStreamInfer: one request,
then each response's `response` tensor is written as one chunk as it arrives; the first response's
`content_type` is the HTTP Content-Type. The gRPC call is cancelled when the client goes away.
"""

import asyncio
import struct

from tritonize.adapter.runtime.constants import CONTENT_TYPE_OUTPUT_NAME, INPUT_NAME, OUTPUT_NAME

# Streamed errors carry their HTTP status in-band (gRPC stream errors have no code): the runtime's
# STREAM_ERROR_FORMAT, read back by the runtime's own parser so the two cannot drift apart.
from tritonize.adapter.runtime.stream_errors import stream_error_status

# gRPC metadata the client library sets itself, or that gRPC refuses from applications.
_NOT_METADATA = frozenset(["host", "user-agent", "te", "content-type"])


def _metadata(headers):
    return tuple(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name not in _NOT_METADATA and not name.startswith(b"grpc-") and value.isascii()
    )


def _bytes_output(response, name):
    for index, output in enumerate(response.outputs):
        if output.name == name and index < len(response.raw_output_contents):
            return response.raw_output_contents[index][4:]  # one BYTES element: 4-byte length, then bytes
    return None


class GrpcStreamer:
    def __init__(self, host, port):
        self.target = f"{host}:{port}"
        self._channel = None
        self._stub = None

    def _client(self):
        if self._stub is None:
            import grpc
            from tritonclient.grpc import service_pb2, service_pb2_grpc

            self._channel = grpc.aio.insecure_channel(
                self.target, options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
            )
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

        stub = self._client()
        call = stub.ModelStreamInfer(metadata=_metadata(headers))
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
                    conn.start_chunked(200, _bytes_output(response, CONTENT_TYPE_OUTPUT_NAME) or TEXT)
                    started = True
                conn.write_chunk(chunk)
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
        if not started:
            conn.start_chunked(200, TEXT)
        conn.end_chunked()

    async def close(self):
        if self._channel is not None:
            await self._channel.close()
