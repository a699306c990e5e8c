"""ApiSpec -> config.pbtxt, through Triton's own ModelConfig protobuf.

The config is written as a dict, parsed into `model_config_pb2.ModelConfig`
(so a typo or wrong type fails here, not in Triton) and printed as text.
"""

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from .errors import BuildError
from .instances import instance_group_dicts
from .wire import CONTENT_TYPE_OUTPUT_NAME, INPUT_NAME, OUTPUT_NAME

# Requests Triton may hand one execute() call. Batching is on even for
# predictors that take one request: execute() then loops, with no queue delay.
DEFAULT_MAX_BATCH_SIZE = 32


def model_config_dict(api):
    """The Triton model configuration for one API, as protobuf-JSON."""
    body = {"dataType": "TYPE_STRING", "dims": ["1"]}
    return {
        "name": api.name,
        "backend": "python",
        "maxBatchSize": DEFAULT_MAX_BATCH_SIZE,
        "input": [{"name": INPUT_NAME, **body}],
        "output": [{"name": OUTPUT_NAME, **body}, {"name": CONTENT_TYPE_OUTPUT_NAME, **body}],
        # No queue delay: batches form only under load, so a lone request waits for nothing.
        "dynamicBatching": {},  # max_queue_delay_microseconds defaults to 0
        "instanceGroup": instance_group_dicts(api),
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
