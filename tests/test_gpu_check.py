"""Host-side GPU checks before Triton starts, and `serve --cpu`'s rewritten repository."""

import os
import stat

import pytest
from tritonclient.grpc.model_config_pb2 import ModelInstanceGroup

from tritonize.adapter.build import build
from tritonize.adapter.model_config import parse_pbtxt
from tritonize.errors import ServeError
from tritonize.server.gpus import check_gpus, detect_gpu_count, gpu_needs, write_cpu_repository

PREDICTOR = "class PythonPredictor:\n    def predict(self, payload):\n        return payload\n"


def fake_smi(tmp_path, lines):
    path = tmp_path / "nvidia-smi"
    path.write_text("#!/bin/sh\n" + "".join(f"echo '{line}'\n" for line in lines))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_detect_gpu_count_from_proc_nvidia_smi_and_visible_devices(tmp_path):
    proc = tmp_path / "gpus"
    missing = str(tmp_path / "missing")
    assert detect_gpu_count(str(proc), nvidia_smi=missing, environ={}) == 0
    proc.mkdir()
    (proc / "0000:01:00.0").mkdir()
    (proc / "0000:02:00.0").mkdir()
    assert detect_gpu_count(str(proc), nvidia_smi=missing, environ={}) == 2
    assert detect_gpu_count(str(proc), nvidia_smi=missing, environ={"CUDA_VISIBLE_DEVICES": "1"}) == 1
    assert detect_gpu_count(str(proc), nvidia_smi=missing, environ={"CUDA_VISIBLE_DEVICES": ""}) == 0
    smi = fake_smi(tmp_path, ["GPU 0: NVIDIA H100 (UUID: GPU-1)", "GPU 1: NVIDIA H100 (UUID: GPU-2)", "junk"])
    assert detect_gpu_count(missing, nvidia_smi=smi, environ={}) == 2
    assert detect_gpu_count(missing, nvidia_smi=fake_smi(tmp_path, ["No devices found"]), environ={}) == 0


@pytest.fixture
def repo(tmp_path):
    """Three models: CPU, GPUs 0 and 1 (2 instances each), every GPU."""
    (tmp_path / "p").mkdir()
    pred = tmp_path / "p" / "predictor.py"
    pred.write_text(PREDICTOR)
    (tmp_path / "p" / "cortex.yaml").write_text(
        "- {name: cpu_api, predictor: {path: predictor.py}}\n"
        "- {name: two_gpus, predictor: {path: predictor.py}, compute: {gpu: 2}, tritonize: {instances: 2}}\n"
        "- {name: any_gpu, predictor: {path: predictor.py}, tritonize: {kind: gpu}}\n"
    )
    build(str(tmp_path / "p" / "cortex.yaml"), str(tmp_path / "repo"))
    return str(tmp_path / "repo")


def test_gpu_needs_and_the_messages(repo):
    needs = gpu_needs(repo)
    assert needs == {"two_gpus": [0, 1], "any_gpu": None}
    check_gpus({}, 0, repo)  # CPU-only repositories need nothing
    check_gpus(needs, 2, repo)
    with pytest.raises(ServeError) as err:
        check_gpus(needs, 0, repo)
    message = str(err.value)
    assert "was built for GPUs, but this machine has no NVIDIA GPU" in message
    assert "any_gpu (every GPU), two_gpus (GPU 0, 1)" in message
    assert f"tritonize serve {repo} --cpu" in message and "--kind cpu" in message
    with pytest.raises(ServeError) as err:
        check_gpus(needs, 1, repo)
    assert "two_gpus (GPU 0, 1): asks for a GPU this machine does not have (it has 1: 0)" in str(err.value)


def test_cpu_repository_rewrites_only_gpu_configs(repo, tmp_path):
    dest = str(tmp_path / "cpu")
    changed = write_cpu_repository(repo, dest)
    assert changed == {"two_gpus": [0, 1], "any_gpu": None}
    kinds = {}
    for name in ("cpu_api", "two_gpus", "any_gpu"):
        config = parse_pbtxt(open(os.path.join(dest, name, "config.pbtxt")).read())
        kinds[name] = [(g.kind, g.count, list(g.gpus)) for g in config.instance_group]
        assert os.path.realpath(os.path.join(dest, name, "1")) == os.path.realpath(os.path.join(repo, name, "1"))
    cpu = ModelInstanceGroup.KIND_CPU
    # Same number of processes: 2 per GPU x 2 GPUs -> 4 CPU instances.
    assert kinds == {"cpu_api": [(cpu, 1, [])], "two_gpus": [(cpu, 4, [])], "any_gpu": [(cpu, 1, [])]}
    assert os.path.islink(os.path.join(dest, "cpu_api")) and not os.path.islink(os.path.join(dest, "two_gpus"))
    # The original is untouched.
    assert gpu_needs(repo) == changed


def test_cpu_repository_of_a_gpu_batch_api_rewrites_what_jobs_load_too(tmp_path):
    from tritonize.adapter.build import build
    from tritonize.adapter.runtime.repository_model import batch_load_config

    (tmp_path / "job.py").write_text(
        "class PythonPredictor:\n    def predict(self, payload, batch_id):\n        pass\n"
    )
    (tmp_path / "cortex.yaml").write_text(
        "- name: job\n  kind: BatchAPI\n  predictor: {path: job.py}\n  compute: {gpu: 1}\n"
    )
    repo = build(str(tmp_path / "cortex.yaml"), str(tmp_path / "repo")).output_dir
    dest = str(tmp_path / "cpu")
    assert write_cpu_repository(repo, dest) == {"job": [0]}
    assert batch_load_config(dest, "job", 2, {})["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    assert batch_load_config(repo, "job", 2, {})["instance_group"] == [{"count": 2, "kind": "KIND_GPU", "gpus": [0]}]
