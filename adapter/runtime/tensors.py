"""Typed tensor APIs: dicts of numpy arrays in and out, stacked across a batch; their pipeline stages.

An API declares its tensors (name, dtype, per-item shape with -1 for variable
dims). predict() receives {name: array} with a leading batch dimension and
returns {name: array or torch tensor}; outputs are checked against the
declaration, then split back per request (PyTriton's @batch semantics).
"""

import numpy as np

from .errors import BadRequest, PredictorFailure
from .params import split_parameters
from .post_predict import held_arguments
from .reply import text_reply

# numpy dtype name -> Triton data type (config.pbtxt TYPE_<x>).
NUMPY_TO_TRITON = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "bytes": "STRING",
}
# The wire's datatype names (KServe v2: BYTES, not the config's STRING) -> numpy dtype names.
TRITON_TO_NUMPY = {
    ("BYTES" if t == "STRING" else t): ("object" if n == "bytes" else n) for n, t in NUMPY_TO_TRITON.items()
}
ALIASES = {
    "object": "bytes",
    "string": "bytes",
    "str": "bytes",
    "bytes_": "bytes",
    "bool_": "bool",
    "half": "float16",
    "float": "float32",
    "double": "float64",
    "int": "int64",
    "long": "int64",
}
ALIASES.update({triton.lower(): numpy for numpy, triton in NUMPY_TO_TRITON.items()})
ALIASES.update({f"type_{triton.lower()}": numpy for numpy, triton in NUMPY_TO_TRITON.items()})


def normalize_dtype(name):
    """'FP32' / 'TYPE_FP32' / 'float32' / 'np.float32' -> 'float32'; None if unknown."""
    key = str(name).strip().lower().removeprefix("np.").removeprefix("numpy.")
    key = ALIASES.get(key, key)
    return key if key in NUMPY_TO_TRITON else None


def to_numpy(value):
    """numpy arrays pass through; torch tensors (CPU or GPU) convert, without a copy on CPU."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "__dlpack__"):
        device = getattr(value, "device", None)
        if getattr(device, "type", "cpu") != "cpu" and hasattr(value, "cpu"):
            value = value.cpu()
        try:
            return np.from_dlpack(value)
        except (TypeError, RuntimeError, BufferError):
            pass
    return np.asarray(value)


def _dtype_matches(array, dtype):
    if dtype == "bytes":
        return array.dtype.kind in "OSU"
    return array.dtype == np.dtype(dtype)


def _shape_matches(shape, declared):
    return len(shape) == len(declared) and all(d == -1 or d == s for s, d in zip(shape, declared))


def check_outputs(outputs, declared, batch_size):
    """predict()'s result -> {name: ndarray}, or raise PredictorFailure naming the tensor."""
    if not isinstance(outputs, dict):
        raise PredictorFailure(f"predict() must return a dict of output tensors, got {type(outputs).__name__}")
    checked = {}
    for spec in declared:
        name = spec["name"]
        if name not in outputs:
            raise PredictorFailure(
                f"predict() returned no output {name!r} (returned: {', '.join(map(str, outputs)) or 'none'})"
            )
        array = to_numpy(outputs[name])
        expected_shape = [batch_size] + list(spec["shape"])
        if not _dtype_matches(array, spec["dtype"]):
            raise PredictorFailure(f"output {name!r}: expected dtype {spec['dtype']}, got {array.dtype}")
        if not _shape_matches(array.shape, expected_shape):
            raise PredictorFailure(
                f"output {name!r}: expected shape {expected_shape} (-1: any), got {list(array.shape)}"
            )
        checked[name] = array
    extra = sorted(set(map(str, outputs)) - {spec["name"] for spec in declared})
    if extra:
        raise PredictorFailure(f"predict() returned undeclared outputs: {', '.join(extra)}")
    return checked


def _stack(arrays_list, declared_inputs):
    """Concatenate each input along the batch dimension; ragged inputs stay a list."""
    stacked = {}
    for spec in declared_inputs:
        name = spec["name"]
        arrays = [arrays[name] for arrays in arrays_list]
        if spec.get("ragged"):
            stacked[name] = arrays
            continue
        first = arrays[0].shape[1:]
        for array in arrays[1:]:
            if array.shape[1:] != first:
                raise BadRequest(
                    f"input {name!r}: requests in one batch have different shapes {list(first)} and "
                    f"{list(array.shape[1:])}; declare the input ragged to allow this"
                )
        stacked[name] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    return stacked


def _batch_size(arrays, declared_inputs):
    spec = next((s for s in declared_inputs if not s.get("ragged")), declared_inputs[0])
    return int(arrays[spec["name"]].shape[0])


def arrays_held_bytes(arrays):
    """The memory a request's arrays hold (a BYTES tensor's items counted too)."""
    total = 0
    for array in arrays.values():
        array = to_numpy(array)
        total += array.nbytes
        if array.dtype.kind == "O":
            total += sum(len(item) for item in array.reshape(-1).tolist() if isinstance(item, (bytes, str)))
    return total


class TensorStages:
    """A typed API's read, decode, arguments, split and encode (see pipeline.Pipeline).

    Each request holds {name: array} with a leading batch dimension; a group's requests are
    stacked into one predict() call and its outputs split back by each request's batch size.
    With batching, query_params and headers are lists (one per request); without, each
    request is its own group.
    """

    def __init__(self, predictor, rules, tensors):
        self.predictor, self.rules = predictor, rules
        self.declared_inputs, self.declared_outputs = tensors["inputs"], tensors["outputs"]
        self.input_names = tuple(spec["name"] for spec in self.declared_inputs)
        self.posts, self.posts_payload, self.posts_response = held_arguments(predictor)

    def read(self, request, input_array):
        """read: {name: array} of the declared inputs, input_array(request, name) -> array or None;
        or an error Reply."""
        arrays = {}
        for name in self.input_names:
            array = input_array(request, name)
            if array is None:
                return text_reply(400, f"missing input tensor {name!r}")
            arrays[name] = array
        return arrays

    def decode(self, arrays, parameters_json):
        """-> (arrays, query_params, headers, batch size); raises RequestError (400) if undecodable."""
        query_params, headers, _ = split_parameters(parameters_json, self.rules)
        return arrays, query_params, headers, _batch_size(arrays, self.declared_inputs)

    def arguments(self, members, batching):
        inputs = _stack([member[0] for member in members], self.declared_inputs)
        if not batching:
            return inputs, members[0][1], members[0][2]
        return inputs, [member[1] for member in members], [member[2] for member in members]

    def rows(self, result, members, batching, streaming=False):
        """Checked outputs, split back: each request gets its own rows of every output."""
        outputs = check_outputs(result, self.declared_outputs, sum(member[3] for member in members))
        rows, start = [], 0
        for member in members:
            size = member[3]
            rows.append({name: array[start : start + size] for name, array in outputs.items()})
            start += size
        return rows

    def encode(self, own, decoded):
        """A request's own output arrays are its answer; post_predict gets them with its own inputs."""
        if self.posts:
            held = (arrays_held_bytes(decoded[0]) if self.posts_payload else 0) + (
                arrays_held_bytes(own) if self.posts_response else 0
            )
            self.predictor.post_predict(own, decoded[0], decoded[1], decoded[2], held)
        return own
