"""The one path from requests to replies, shared by model.py's execute() and `tritonize test`.

Each caller turns its own requests (Triton's, or the command line's) into items of
(input arrays, parameters JSON); everything after that is decided here, once.
"""

import numpy as np

from .constants import INPUT_NAME
from .errors import internal_error
from .handler import Reply, handle_batch, handle_request
from .handler import error_reply as request_error_reply
from .tensors import handle_tensor_requests

TEXT = "text/plain; charset=utf-8"


def error_reply(status, message):
    return Reply(status, message.encode("utf-8"), TEXT)


# request.parameters() raised UnicodeDecodeError: Triton could not hand over this request's headers/parameters.
BAD_PARAMETERS_REPLY = error_reply(
    400, "request parameters or forwarded headers are not valid UTF-8 (a header or gRPC metadata value, or a parameter)"
)


def internal_reply(what, exc):
    """The 500 for a failure outside predictor code (logged with its error id)."""
    return request_error_reply(internal_error(what, exc))


class Dispatcher:
    """One API's predictor and the settings that choose its path (body or typed, batched or not)."""

    def __init__(self, predictor, settings, rules, max_body_bytes=0):
        self.predictor = predictor
        self.rules = rules
        self.batching = settings.predictor_batching
        self.tensors = settings.tensors
        self.max_body_bytes = max_body_bytes
        self.input_names = [spec["name"] for spec in self.tensors["inputs"]] if self.tensors else [INPUT_NAME]

    def body(self, values):
        """The one request body held by the `payload` tensor (a numpy array or None) -> bytes, or an error Reply."""
        if values is None:
            return error_reply(400, f"missing input tensor {INPUT_NAME!r}")
        if values.size != 1:
            return error_reply(
                400, f"input {INPUT_NAME!r} must hold exactly one body (shape [1, 1]), got shape {list(values.shape)}"
            )
        body = values.reshape(-1)[0]
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes):
            return error_reply(400, f"input {INPUT_NAME!r} must be BYTES")
        if self.max_body_bytes and len(body) > self.max_body_bytes:
            return error_reply(
                400,
                f"request body too large: {len(body)} bytes, this server accepts at most "
                f"{self.max_body_bytes} (tritonize serve --max-body-size)",
            )
        return body

    def arrays(self, get_input):
        """Typed APIs: {name: array} of the declared inputs, get_input(name) -> array or None; or an error Reply."""
        arrays = {}
        for name in self.input_names:
            array = get_input(name)
            if array is None:
                return error_reply(400, f"missing input tensor {name!r}")
            arrays[name] = array
        return arrays

    def answer(self, items):
        """items: [(body bytes / input arrays / an error Reply, parameters JSON)] -> one answer per item:
        a Reply, or for typed APIs a dict of output arrays."""
        if self.tensors:
            return handle_tensor_requests(self.predictor, items, self.tensors, self.rules, self.batching)
        if self.batching:
            return handle_batch(self.predictor, items, self.rules)
        return [
            body if isinstance(body, Reply) else handle_request(self.predictor, body, params, self.rules)
            for body, params in items
        ]


def bytes_input(value):
    """A Python value as Triton hands a BYTES element to the model (bytes)."""
    return value.encode("utf-8") if isinstance(value, str) else value


def as_triton_input(values, dtype):
    """JSON values -> the array Triton would hand the model for this declared dtype, batch dim added."""
    if dtype == "bytes":
        array = np.asarray(values, dtype=np.object_)
        flat = [bytes_input(v) for v in array.reshape(-1)]
        out = np.empty(len(flat), dtype=np.object_)
        out[:] = flat
        return out.reshape(array.shape)[None]
    return np.asarray(values, dtype=dtype)[None]
