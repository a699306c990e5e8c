"""ApiSpec -> config.pbtxt, through Triton's own ModelConfig protobuf.

The config is written as a dict, parsed into `model_config_pb2.ModelConfig`
(so a typo or wrong type fails here, not in Triton) and printed as text.
"""

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from tritonize.adapter.batching import triton_max_batch_size
from tritonize.adapter.instances import has_single_instance, instance_group_dicts
from tritonize.adapter.runtime.constants import (
    BATCH_INPUT_NAME,
    BATCH_OUTPUT_NAME,
    CONTENT_TYPE_OUTPUT_NAME,
    INPUT_NAME,
    OUTPUT_NAME,
    STATUS_OUTPUT_NAME,
)
from tritonize.adapter.runtime.tensors import NUMPY_TO_TRITON
from tritonize.errors import BuildError


def _tensor(spec, is_input):
    tensor = {
        "name": spec["name"],
        "dataType": "TYPE_" + NUMPY_TO_TRITON[spec["dtype"]],
        "dims": [str(d) for d in spec["shape"]],
    }
    if is_input and spec.get("ragged"):
        tensor["allowRaggedBatch"] = True
    return tensor


def _io(api):
    if api.tensors:
        return ([_tensor(t, True) for t in api.tensors["inputs"]], [_tensor(t, False) for t in api.tensors["outputs"]])
    body = {"dataType": "TYPE_STRING", "dims": ["1"]}
    outputs = [{"name": name, **body} for name in (OUTPUT_NAME, CONTENT_TYPE_OUTPUT_NAME, STATUS_OUTPUT_NAME)]
    return [{"name": INPUT_NAME, **body}], outputs


def dynamic_batching_dict(batching):
    """Triton batches even for one-request predictors (execute() then loops); the
    queue delay is server_side_batching's batch_interval, 0 by default, so a lone
    request never waits. With max_queue_size, a full queue is refused at once (503)."""
    config = {}
    if batching.max_queue_size:
        config["defaultQueuePolicy"] = {"maxQueueSize": batching.max_queue_size}
    if batching.max_queue_delay_us:
        config["maxQueueDelayMicroseconds"] = str(batching.max_queue_delay_us)
    if batching.predictor_batching:
        config["preferredBatchSize"] = [batching.max_batch_size]
    return config


def batch_model_config_dict(api):
    """A BatchAPI's model: one batch (JSON text) per request, no batching by Triton; one instance here,
    each job loads it with its own workers (adapter/runtime/repository_model.batch_load_config)."""
    body = {"dataType": "TYPE_STRING", "dims": ["1"]}
    return {
        "name": api.name,
        "backend": "python",
        "maxBatchSize": 0,
        "input": [{"name": BATCH_INPUT_NAME, **body}],
        "output": [{"name": BATCH_OUTPUT_NAME, **body}],
        "instanceGroup": instance_group_dicts(api),
    }


def model_config_dict(api):
    """The Triton model configuration for one API, as protobuf-JSON."""
    if api.batch:
        return batch_model_config_dict(api)
    inputs, outputs = _io(api)
    return {
        "name": api.name,
        "backend": "python",
        "maxBatchSize": triton_max_batch_size(api.batching, has_single_instance(api)),
        "input": inputs,
        "output": outputs,
        "dynamicBatching": dynamic_batching_dict(api.batching),
        "instanceGroup": instance_group_dicts(api),
        # A streaming API answers with any number of responses per request (Triton's decoupled mode).
        **({"modelTransactionPolicy": {"decoupled": True}} if api.streaming else {}),
    }


def to_model_config(config_dict):
    try:
        return json_format.ParseDict(config_dict, model_config_pb2.ModelConfig())
    except json_format.ParseError as exc:
        raise BuildError(f"internal error: invalid Triton model config: {exc}") from None


def to_pbtxt(config):
    return text_format.MessageToString(config)


def parse_pbtxt(text):
    """config.pbtxt text -> ModelConfig (raises text_format.ParseError)."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def render_config(api):
    return to_pbtxt(to_model_config(model_config_dict(api)))


def batch_config_json(api):
    """The same ModelConfig as config.pbtxt, as the JSON a job's load passes to Triton (proto field names)."""
    return to_config_json(to_model_config(model_config_dict(api)))


def to_config_json(config):
    """A ModelConfig -> the JSON of tritonize_batch_config.json (json_format, proto field names)."""
    return json_format.MessageToDict(config, preserving_proto_field_name=True)
