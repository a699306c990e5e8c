"""Typed tensor APIs: dicts of numpy arrays in and out, stacked across a batch.

An API declares its tensors (name, dtype, per-item shape with -1 for variable
dims). predict() receives {name: array} with a leading batch dimension and
returns {name: array or torch tensor}; outputs are checked against the
declaration, then split back per request (PyTriton's @batch semantics).
"""

import logging

import numpy as np

from .errors import BadRequest, PredictorFailure, RequestError, internal_error
from .handler import Reply, error_for_exception, error_reply
from .params import split_parameters

log = logging.getLogger("tritonize")

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


def _run(predictor, group, tensors, as_lists):
    """group: [(index, arrays, query_params, headers)] -> {index: {name: array} or Reply}.

    as_lists: query_params and headers are lists, one per request (batching on).
    """
    try:
        sizes = [_batch_size(arrays, tensors["inputs"]) for _, arrays, _, _ in group]
        inputs = _stack([arrays for _, arrays, _, _ in group], tensors["inputs"])
    except RequestError as error:
        return dict.fromkeys((index for index, *_ in group), error_reply(error))
    queries = [q for _, _, q, _ in group]
    headers = [h for _, _, _, h in group]
    try:
        result = predictor.predict(inputs, queries if as_lists else queries[0], headers if as_lists else headers[0])
        outputs = check_outputs(result, tensors["outputs"], sum(sizes))
    except PredictorFailure as error:
        return dict.fromkeys((index for index, *_ in group), error_reply(error))
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: these requests fail, the server stays
        return dict.fromkeys((index for index, *_ in group), error_reply(error_for_exception(exc)))
    answers, start = {}, 0
    for (index, arrays, query_params, request_headers), size in zip(group, sizes):
        answers[index] = own = {name: array[start : start + size] for name, array in outputs.items()}
        start += size
        size = sum(getattr(array, "nbytes", 0) for array in arrays.values())
        predictor.post_predict(own, arrays, query_params, request_headers, size)  # this request's own tensors
    return answers


def handle_tensor_requests(predictor, items, tensors, rules, batching):
    """items: [(dict of input arrays or an error Reply, parameters_json)] -> per item a dict or a Reply.

    With batching, all decodable requests go to one predict() call (query_params
    and headers then are lists); without, each request gets its own call.
    """
    answers = [arrays if isinstance(arrays, Reply) else None for arrays, _ in items]
    group = []
    for index, (arrays, parameters_json) in enumerate(items):
        if answers[index] is not None:
            continue
        try:
            query_params, headers, _ = split_parameters(parameters_json, rules)
        except RequestError as error:
            answers[index] = error_reply(error)
            continue
        except BaseException as exc:
            answers[index] = error_reply(internal_error("decoding the request parameters failed", exc))
            continue
        group.append((index, arrays, query_params, headers))
    groups = [group] if batching and group else [[member] for member in group]
    for members in groups:
        for index, answer in _run(predictor, members, tensors, batching).items():
            answers[index] = answer
    return answers
