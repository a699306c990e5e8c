import pytest

from tritonize.adapter.batching import DEFAULT_MAX_QUEUE_SIZE, parse_batching
from tritonize.adapter.model_config import model_config_dict, parse_pbtxt, render_config
from tritonize.adapter.spec import ApiSpec
from tritonize.adapter.spec_values import parse_duration_us
from tritonize.adapter.tensor_spec import parse_tensor_option, parse_tensors
from tritonize.errors import SpecError


@pytest.mark.parametrize(
    "value, us",
    [
        ("0.1s", 100_000),
        ("50ms", 50_000),
        ("250us", 250),
        ("2s", 2_000_000),
        (0.05, 50_000),
        (0, 0),
        ("1.5ms", 1_500),
        # Go's time.ParseDuration, Cortex's grammar: several parts, fractions, µs/μs, ns, a bare "0".
        ("1m30s", 90_000_000),
        ("1.5h", 5_400_000_000),
        ("300ms", 300_000),
        (".5s", 500_000),
        ("1h2m3s4ms5us", 3_723_004_005),
        ("7µs", 7),
        ("7μs", 7),
        ("1500ns", 2),
        ("0", 0),
        ("+2s", 2_000_000),
    ],
)
def test_durations(value, us):
    assert parse_duration_us(value, "x") == us


# Go refuses a space inside ("1.5 ms"), a unit alone, a dot alone and an unknown unit ("1d").
@pytest.mark.parametrize("value", ["fast", "-1s", True, "10 parsecs", "1.5 ms", "ms", ".s", "1d", "1m 30s", "s1"])
def test_bad_durations(value):
    with pytest.raises(SpecError):
        parse_duration_us(value, "x")


def test_server_side_batching_to_config():
    batching = parse_batching({"max_batch_size": 8, "batch_interval": "0.1s"}, "b")
    api = ApiSpec(name="a", project_dir="/p", predictor_path="p.py", batching=batching)
    config = parse_pbtxt(render_config(api))
    assert config.max_batch_size == 8
    assert config.dynamic_batching.max_queue_delay_microseconds == 100_000
    assert list(config.dynamic_batching.preferred_batch_size) == [8]
    assert DEFAULT_MAX_QUEUE_SIZE == 0 and not config.dynamic_batching.HasField("default_queue_policy")


def test_without_server_side_batching_triton_still_queues_without_delay():
    api = ApiSpec(name="a", project_dir="/p", predictor_path="p.py", batching=parse_batching(None, "b", 10))
    config = parse_pbtxt(render_config(api))
    assert config.max_batch_size == 32 and config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds == 0
    assert list(config.dynamic_batching.preferred_batch_size) == []
    assert config.dynamic_batching.default_queue_policy.max_queue_size == 10
    assert not api.batching.predictor_batching


@pytest.mark.parametrize(
    "section, words",
    [
        ({"batch_interval": "1s"}, "max_batch_size: required"),
        ({"max_batch_size": 0}, "positive integer"),
        ({"max_batch_size": 2, "bogus": 1}, "bogus: unknown key"),
        ([1], "expected a mapping"),
    ],
)
def test_bad_batching(section, words):
    with pytest.raises(SpecError, match=words):
        parse_batching(section, "b")


def test_typed_tensors_to_config():
    tensors = parse_tensors(
        {
            "inputs": [
                {"name": "x", "dtype": "FP32", "shape": [-1, 4]},
                {"name": "ids", "dtype": "int64", "shape": [-1], "ragged": True},
            ],
            "outputs": [
                {"name": "y", "dtype": "np.float16", "shape": 3},
                {"name": "label", "dtype": "bytes", "shape": [1]},
            ],
        },
        "t",
    )
    assert tensors["outputs"][0] == {"name": "y", "dtype": "float16", "shape": [3]}
    api = ApiSpec(name="a", project_dir="/p", predictor_path="p.py", tensors=tensors)
    config = parse_pbtxt(render_config(api))
    assert [(t.name, list(t.dims), t.allow_ragged_batch) for t in config.input] == [
        ("x", [-1, 4], False),
        ("ids", [-1], True),
    ]
    from tritonclient.grpc import model_config_pb2 as pb

    assert [t.data_type for t in config.input] == [pb.TYPE_FP32, pb.TYPE_INT64]
    assert [t.data_type for t in config.output] == [pb.TYPE_FP16, pb.TYPE_STRING]
    assert model_config_dict(api)["output"][1]["dims"] == ["1"]


@pytest.mark.parametrize(
    "section, words",
    [
        (
            {"inputs": [{"name": "x", "dtype": "complex64"}], "outputs": [{"name": "y", "dtype": "int8"}]},
            "unknown dtype",
        ),
        (
            {"inputs": [{"name": "x", "dtype": "int8", "shape": [0]}], "outputs": [{"name": "y", "dtype": "int8"}]},
            "shape",
        ),
        ({"inputs": [], "outputs": [{"name": "y", "dtype": "int8"}]}, "non-empty list"),
        (
            {
                "inputs": [{"name": "x", "dtype": "int8"}, {"name": "x", "dtype": "int8"}],
                "outputs": [{"name": "y", "dtype": "int8"}],
            },
            "unique",
        ),
        (
            {"inputs": [{"name": "x", "dtype": "int8"}], "outputs": [{"name": "y", "dtype": "int8", "ragged": True}]},
            "ragged: unknown key",
        ),
    ],
)
def test_bad_tensors(section, words):
    with pytest.raises(SpecError, match=words):
        parse_tensors(section, "t")


def test_tensor_command_line_option():
    assert parse_tensor_option("x:float32:-1,4", True) == {"name": "x", "dtype": "float32", "shape": [-1, 4]}
    assert parse_tensor_option("ids:int64:-1:ragged", True)["ragged"] is True
    assert parse_tensor_option("s:bytes", False) == {"name": "s", "dtype": "bytes", "shape": []}
    with pytest.raises(SpecError):
        parse_tensor_option("y:float32:3:ragged", False)


@pytest.mark.parametrize(
    "instances, kind, gpus, expected",
    [(1, "cpu", None, 32), (2, "cpu", None, 1), (1, "gpu", [0], 32), (1, "gpu", [0, 1], 1), (1, "gpu", None, 1)],
)
def test_one_request_predictors_get_batches_only_with_a_single_instance(instances, kind, gpus, expected):
    # Several instances: one request per execute(), so none waits behind another instance's batch.
    api = ApiSpec(name="a", project_dir="/p", predictor_path="p.py", instances=instances, kind=kind, gpus=gpus)
    assert parse_pbtxt(render_config(api)).max_batch_size == expected
    batched = ApiSpec(
        name="b",
        project_dir="/p",
        predictor_path="p.py",
        instances=instances,
        kind=kind,
        gpus=gpus,
        batching=parse_batching({"max_batch_size": 8}, "b"),
    )
    assert parse_pbtxt(render_config(batched)).max_batch_size == 8
