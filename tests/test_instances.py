"""Instance groups: cortex.yaml compute / tritonize settings / build options -> config.pbtxt."""

import pytest
from google.protobuf import json_format
from tritonclient.grpc.model_config_pb2 import ModelInstanceGroup

from tritonize.adapter.build import apply_instance_overrides, build
from tritonize.adapter.instances import describe, parse_gpus
from tritonize.adapter.model_config import model_config_dict, parse_pbtxt, render_config
from tritonize.adapter.spec import load_spec_file
from tritonize.errors import SpecError

CPU, GPU = ModelInstanceGroup.KIND_CPU, ModelInstanceGroup.KIND_GPU
PREDICTOR = "class PythonPredictor:\n    def predict(self, payload):\n        return payload\n"


def spec_api(tmp_path, extra):
    (tmp_path / "predictor.py").write_text(PREDICTOR)
    (tmp_path / "cortex.yaml").write_text("- name: a\n  predictor: {path: predictor.py}\n" + extra)
    (api,) = load_spec_file(str(tmp_path / "cortex.yaml"))
    return api


def groups(api):
    """(kind, count, gpus) per instance_group, read back from the written pbtxt."""
    text = render_config(api)
    config = parse_pbtxt(text)
    assert json_format.MessageToDict(config) == model_config_dict(api)  # round trip through model_config_pb2
    return [(g.kind, g.count, list(g.gpus)) for g in config.instance_group]


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("", [(CPU, 1, [])]),
        ("  compute: {cpu: 1}\n", [(CPU, 1, [])]),
        ("  compute: {cpu: 200m, gpu: 0}\n", [(CPU, 1, [])]),
        ("  compute: {gpu: 1}\n", [(GPU, 1, [0])]),
        ("  compute: {gpu: 2, cpu: 4}\n", [(GPU, 1, [0, 1])]),
        ("  compute: {gpu: 1}\n  tritonize: {instances: 2}\n", [(GPU, 2, [0])]),
        ("  compute: {gpu: 2}\n  tritonize: {kind: cpu}\n", [(CPU, 1, [])]),
        ("  compute: {gpu: 2}\n  tritonize: {gpus: [1]}\n", [(GPU, 1, [1])]),
        ("  tritonize: {instances: 3}\n", [(CPU, 3, [])]),
        ("  tritonize: {kind: cpu, instances: 2}\n", [(CPU, 2, [])]),
        ("  tritonize: {kind: gpu}\n", [(GPU, 1, [])]),
        ("  tritonize: {kind: GPU, instances: 2}\n", [(GPU, 2, [])]),
        ("  tritonize: {gpus: all, instances: 2}\n", [(GPU, 2, [])]),
        ("  tritonize: {gpus: '0,1', instances: 2}\n", [(GPU, 2, [0, 1])]),
        ("  tritonize: {kind: gpu, gpus: 3}\n", [(GPU, 1, [3])]),
        ("  predictor: {path: predictor.py, processes_per_replica: 4}\n", [(CPU, 4, [])]),
        ("  predictor: {path: predictor.py, processes_per_replica: 2}\n  compute: {gpu: 1}\n", [(GPU, 2, [0])]),
        ("  predictor: {path: predictor.py, processes_per_replica: 4}\n  tritonize: {instances: 1}\n", [(CPU, 1, [])]),
    ],
)
def test_spec_to_instance_groups(tmp_path, extra, expected):
    if extra.startswith("  predictor:"):  # replaces the default predictor line
        (tmp_path / "predictor.py").write_text(PREDICTOR)
        (tmp_path / "cortex.yaml").write_text("- name: a\n" + extra)
        (api,) = load_spec_file(str(tmp_path / "cortex.yaml"))
    else:
        api = spec_api(tmp_path, extra)
    assert groups(api) == expected


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, [(GPU, 1, [0, 1])]),
        ({"instances": 3}, [(GPU, 3, [0, 1])]),
        ({"kind": "cpu"}, [(CPU, 1, [])]),
        ({"kind": "cpu", "instances": 2}, [(CPU, 2, [])]),
        ({"kind": "gpu"}, [(GPU, 1, [0, 1])]),  # already GPU: keeps the spec's GPUs
        ({"gpus": [1]}, [(GPU, 1, [1])]),
        ({"gpus": "all"}, [(GPU, 1, [])]),
    ],
)
def test_command_line_overrides_the_spec(tmp_path, overrides, expected):
    api = spec_api(tmp_path, "  compute: {gpu: 2}\n")
    apply_instance_overrides([api], **overrides)
    assert groups(api) == expected


@pytest.mark.parametrize(
    "kwargs, expected, text",
    [
        ({}, [(CPU, 1, [])], "1 CPU instance"),
        ({"instances": 4}, [(CPU, 4, [])], "4 CPU instances"),
        ({"kind": "gpu"}, [(GPU, 1, [])], "1 instance on every GPU"),
        ({"gpus": [0]}, [(GPU, 1, [0])], "1 instance on GPU 0"),
        ({"gpus": [0, 1], "instances": 2}, [(GPU, 2, [0, 1])], "2 instances on each of GPUs 0, 1"),
        ({"kind": "gpu", "gpus": [2], "instances": 3}, [(GPU, 3, [2])], "3 instances on GPU 2"),
    ],
)
def test_predictor_file_build_options(tmp_path, kwargs, expected, text):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "predictor.py").write_text(PREDICTOR)
    result = build(str(tmp_path / "p" / "predictor.py"), str(tmp_path / "repo"), **kwargs)
    (api,) = result.apis
    assert groups(api) == expected
    assert describe(api) == text
    written = parse_pbtxt((tmp_path / "repo" / "p" / "config.pbtxt").read_text())
    assert [(g.kind, g.count, list(g.gpus)) for g in written.instance_group] == expected


def test_unused_compute_fields_are_still_warned(tmp_path):
    api = spec_api(tmp_path, "  compute: {cpu: 4, mem: 2G, inf: 1}\n")
    assert sorted(api.warnings) == [
        "a: compute.cpu 4 reserves cores in Cortex; Triton runs one CPU instance (one process); "
        "set tritonize.instances for more",
        "a: ignored: compute.inf (AWS Inferentia chips; Triton here runs on CPUs and NVIDIA GPUs)",
    ]
    assert spec_api(tmp_path, "  compute: {cpu: 1, gpu: 1}\n").warnings == []


@pytest.mark.parametrize(
    "extra, words",
    [
        ("  compute: {gpu: -1}\n", "compute.gpu: expected a whole number of GPUs"),
        ("  compute: {gpu: 0.5}\n", "compute.gpu: expected a whole number of GPUs"),
        ("  compute: 4\n", "compute: expected a mapping"),
        ("  tritonize: {instances: 0}\n", "tritonize.instances: expected a whole number of instances from 1 to 64"),
        ("  tritonize: {instances: many}\n", "tritonize.instances: expected a whole number"),
        ("  tritonize: {kind: tpu}\n", "tritonize.kind: expected 'cpu' or 'gpu', got 'tpu'"),
        ("  tritonize: {gpus: [0, 0]}\n", "tritonize.gpus: GPU 0 is listed twice"),
        ("  tritonize: {gpus: '-1'}\n", "tritonize.gpus: expected GPU ids"),
        ("  tritonize: {gpus: []}\n", "tritonize.gpus: expected at least one GPU id"),
        ("  tritonize: {kind: cpu, gpus: [0]}\n", "GPUs [0] were given for kind 'cpu'"),
        (
            "  tritonize: {batch: 8}\n",
            "tritonize.batch: unknown key (known: gpus, instances, kind, model_poll_interval, request_timeout, stream)",
        ),
        ("  tritonize: [1]\n", "tritonize: expected a mapping"),
        (
            "  predictor: {path: predictor.py, processes_per_replica: 0}\n",
            "processes_per_replica: expected a whole number",
        ),
    ],
)
def test_bad_instance_settings_name_the_key(tmp_path, extra, words):
    (tmp_path / "predictor.py").write_text(PREDICTOR)
    head = "- name: a\n" if extra.startswith("  predictor:") else "- name: a\n  predictor: {path: predictor.py}\n"
    (tmp_path / "cortex.yaml").write_text(head + extra)
    with pytest.raises(SpecError) as err:
        load_spec_file(str(tmp_path / "cortex.yaml"))
    assert words in str(err.value)


def test_parse_gpus_command_line_forms():
    assert parse_gpus("0,1", "--gpus") == [0, 1]
    assert parse_gpus(" 2 ", "--gpus") == [2]
    assert parse_gpus("ALL", "--gpus") == "all"
    assert parse_gpus(None, "--gpus") is None
    for bad in ("0,x", "1,,1", "", "-0"):
        with pytest.raises(SpecError, match="--gpus"):
            parse_gpus(bad, "--gpus")
