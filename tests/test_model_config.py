from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2

from tritonize.adapter.model_config import model_config_dict, parse_pbtxt, render_config
from tritonize.adapter.spec import ApiSpec


def api(name="iris"):
    return ApiSpec(name=name, project_dir="/p", predictor_path="predictor.py")


def test_round_trip_through_model_config_pb2():
    text = render_config(api())
    parsed = parse_pbtxt(text)
    assert isinstance(parsed, model_config_pb2.ModelConfig)
    assert json_format.MessageToDict(parsed) == model_config_dict(api())
    assert parse_pbtxt(text) == parse_pbtxt(render_config(api()))


def test_wire_contract_fields():
    config = parse_pbtxt(render_config(api("sentiment")))
    assert config.name == "sentiment" and config.backend == "python"
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("payload", model_config_pb2.TYPE_STRING, [1])
    ]
    # status: only in answers with a predictor's 2xx status other than 200 (Response(status_code=201)).
    assert [t.name for t in config.output] == ["response", "content_type", "status"]
    assert all(t.data_type == model_config_pb2.TYPE_STRING and list(t.dims) == [1] for t in config.output)
    assert config.max_batch_size > 0
    assert config.HasField("dynamic_batching") and config.dynamic_batching.max_queue_delay_microseconds == 0
    assert [(g.kind, g.count) for g in config.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)]
