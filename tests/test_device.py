"""The runtime's device pinning (adapter/runtime/device.py), without Triton."""

import pytest

from tritonize.adapter.runtime.device import device_config, device_environment, pin_device
from tritonize.adapter.runtime.repository_model import ApiSettings, PredictorSettings


@pytest.mark.parametrize(
    "kind, device_id, environ, changes, device",
    [
        (
            "GPU",
            "0",
            {},
            {"CUDA_VISIBLE_DEVICES": "0", "TRITONIZE_DEVICE": "cuda:0", "TRITONIZE_GPU_ID": "0"},
            "cuda:0",
        ),
        (
            "GPU",
            "3",
            {},
            {"CUDA_VISIBLE_DEVICES": "3", "TRITONIZE_DEVICE": "cuda:0", "TRITONIZE_GPU_ID": "3"},
            "cuda:0",
        ),
        (
            "KIND_GPU",
            1,
            {},
            {"CUDA_VISIBLE_DEVICES": "1", "TRITONIZE_DEVICE": "cuda:0", "TRITONIZE_GPU_ID": "1"},
            "cuda:0",
        ),
        # tritonserver itself limited to GPUs 2,3: its device 1 is physical GPU 3.
        (
            "GPU",
            "1",
            {"CUDA_VISIBLE_DEVICES": "2,3"},
            {"CUDA_VISIBLE_DEVICES": "3", "TRITONIZE_DEVICE": "cuda:0", "TRITONIZE_GPU_ID": "1"},
            "cuda:0",
        ),
        (
            "GPU",
            "0",
            {"CUDA_VISIBLE_DEVICES": "GPU-aaaa, GPU-bbbb"},
            {"CUDA_VISIBLE_DEVICES": "GPU-aaaa", "TRITONIZE_DEVICE": "cuda:0", "TRITONIZE_GPU_ID": "0"},
            "cuda:0",
        ),
        (
            "GPU",
            "0",
            {"CUDA_VISIBLE_DEVICES": ""},
            {"CUDA_VISIBLE_DEVICES": "0", "TRITONIZE_DEVICE": "cuda:0", "TRITONIZE_GPU_ID": "0"},
            "cuda:0",
        ),
        ("CPU", "0", {"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "", "TRITONIZE_DEVICE": "cpu"}, "cpu"),
        ("KIND_CPU", None, {}, {"CUDA_VISIBLE_DEVICES": "", "TRITONIZE_DEVICE": "cpu"}, "cpu"),
        ("MODEL", "0", {"CUDA_VISIBLE_DEVICES": "0"}, {}, None),
        (None, None, {}, {}, None),
    ],
)
def test_device_environment(kind, device_id, environ, changes, device):
    assert device_environment(kind, device_id, environ) == (changes, device)


def test_gpu_index_beyond_the_visible_list_is_an_error():
    with pytest.raises(ValueError, match="lists 2"):
        device_environment("GPU", "2", {"CUDA_VISIBLE_DEVICES": "4,5"})
    with pytest.raises(ValueError, match="unreadable device id"):
        device_environment("GPU", "x", {})


def test_pin_device_changes_the_environment():
    env = {"CUDA_VISIBLE_DEVICES": "0,1", "PATH": "/bin"}
    assert pin_device({"model_instance_kind": "GPU", "model_instance_device_id": "1"}, env) == "cuda:0"
    assert env == {"CUDA_VISIBLE_DEVICES": "1", "PATH": "/bin", "TRITONIZE_DEVICE": "cuda:0", "TRITONIZE_GPU_ID": "1"}
    # A CPU instance started from that environment sees no GPU and no stale GPU id.
    assert pin_device({"model_instance_kind": "CPU", "model_instance_device_id": "0"}, env) == "cpu"
    assert env == {"CUDA_VISIBLE_DEVICES": "", "PATH": "/bin", "TRITONIZE_DEVICE": "cpu"}


def test_device_config_never_overrides_the_users_key():
    def settings(config):
        return ApiSettings(name="a", predictor=PredictorSettings(path="p.py", config=config))

    assert device_config(settings({"k": 1}), "cuda:0") == {"device": "cuda:0"}
    assert device_config(settings({}), "cpu") == {"device": "cpu"}
    assert device_config(settings({"device": "mps"}), "cpu") is None
    assert device_config(settings({}), None) is None
