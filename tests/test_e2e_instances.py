"""End to end: instance groups on real Triton (CPU here; GPU where the machine has one)."""

import json
import os
import shutil
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import FIXTURES, GPU_COUNT, HAS_GPU, ServeProcess, run_tritonize

from tritonize import Client

pytestmark = pytest.mark.e2e


def build_fixture(tmp_path, fixture, *options):
    project = tmp_path / fixture
    shutil.copytree(os.path.join(FIXTURES, fixture), project)
    repo = tmp_path / "repo"
    result = run_tritonize("build", str(project / "predictor.py"), "-o", str(repo), "--name", "api", *options)
    return repo, result


def answers_by_pid(url, want, payload, timeout=60):
    """Send rounds of concurrent slow requests until `want` instance processes answered."""

    def call(_):
        with Client(url) as client:
            return client.predict("api", payload)

    seen = {}
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=want * 2) as pool:
        while len(seen) < want and time.monotonic() < deadline:
            for answer in pool.map(call, range(want * 2)):
                seen.setdefault(answer["pid"], answer)
    return seen


def served_instance_groups(serve):
    with urllib.request.urlopen(f"http://{serve.http_url}/v2/models/api/config", timeout=10) as response:
        return json.load(response)["instance_group"]


def test_requests_spread_over_cpu_instance_processes(tmp_path):
    repo, result = build_fixture(tmp_path, "instances", "--instances", "3")
    assert "api: 3 CPU instances" in result.stdout
    serve = ServeProcess(str(repo))
    try:
        assert serve.wait_ready(), serve.output()
        groups = served_instance_groups(serve)
        assert [(g["kind"], g["count"]) for g in groups] == [("KIND_CPU", 3)]
        seen = answers_by_pid(serve.http_url, 3, {"sleep": 0.3})
        assert len(seen) == 3, seen
        assert serve.process.pid not in seen
        for answer in seen.values():
            # CPU instances see no GPU, and the predictor is told "cpu".
            assert answer["config_device"] == "cpu" and answer["tritonize_device"] == "cpu"
            assert answer["visible_at_init"] == "" and answer["gpu_id"] is None
    finally:
        assert serve.stop() == 0, serve.output()


@pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU error; this machine has a GPU")
def test_gpu_build_on_a_machine_without_gpu_says_so_before_starting_triton(tmp_path):
    repo, _ = build_fixture(tmp_path, "instances", "--gpus", "0", "--instances", "2")
    started = time.monotonic()
    result = run_tritonize("serve", str(repo), check=False)
    assert result.returncode == 1
    assert "was built for GPUs, but this machine has no NVIDIA GPU" in result.stderr
    assert "api (GPU 0)" in result.stderr
    assert f"tritonize serve {repo} --cpu" in result.stderr and "--kind cpu" in result.stderr
    assert "no GPUs are available" not in result.stderr  # Triton's own message: it never started
    assert time.monotonic() - started < 30


def test_serve_cpu_runs_a_gpu_build_on_cpu_instances(tmp_path):
    repo, _ = build_fixture(tmp_path, "instances", "--gpus", "0,1")
    serve = ServeProcess(str(repo), extra_args=["--cpu"])
    try:
        assert serve.wait_ready(), serve.output()
        assert [(g["kind"], g["count"]) for g in served_instance_groups(serve)] == [("KIND_CPU", 2)]
        seen = answers_by_pid(serve.http_url, 2, {"sleep": 0.3})
        assert len(seen) == 2, seen
        assert {a["config_device"] for a in seen.values()} == {"cpu"}
        assert {a["visible_at_init"] for a in seen.values()} == {""}
        assert "--cpu: api was built for GPU 0, 1; running it on CPU instances" in serve.output()
    finally:
        assert serve.stop() == 0, serve.output()
    # The built repository still asks for GPUs.
    assert "KIND_GPU" in (repo / "api" / "config.pbtxt").read_text()


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


needs_gpu = pytest.mark.skipif(
    not HAS_GPU or not _torch_cuda(), reason="needs an NVIDIA GPU and a CUDA build of torch (none here)"
)


@pytest.mark.gpu
@needs_gpu
def test_two_gpu_instances_on_gpu_0_use_that_gpu(tmp_path):
    repo, _ = build_fixture(tmp_path, "gpu_torch", "--gpus", "0", "--instances", "2")
    serve = ServeProcess(str(repo))
    try:
        assert serve.wait_ready(timeout=300), serve.output()
        assert [(g["kind"], g["count"], g["gpus"]) for g in served_instance_groups(serve)] == [("KIND_GPU", 2, [0])]
        seen = answers_by_pid(serve.http_url, 2, {"sleep": 0.3, "x": [1, 1, 1, 1]})
        assert len(seen) == 2, seen
        for answer in seen.values():
            assert answer["result"] == 6.0
            assert answer["tensor_device"] == "cuda:0"
            assert answer["device_count"] == 1  # pinned: each instance sees one GPU
            assert answer["cuda_visible"] == "0" and answer["gpu_id"] == "0"
            assert answer["config_device"] == "cuda:0"
    finally:
        assert serve.stop() == 0, serve.output()


@pytest.mark.gpu
@needs_gpu
@pytest.mark.skipif(GPU_COUNT < 2, reason="needs two GPUs")
def test_one_instance_per_listed_gpu(tmp_path):
    repo, _ = build_fixture(tmp_path, "gpu_torch", "--gpus", "0,1")
    serve = ServeProcess(str(repo))
    try:
        assert serve.wait_ready(timeout=300), serve.output()
        seen = answers_by_pid(serve.http_url, 2, {"sleep": 0.3, "x": [1, 1, 1, 1]})
        assert sorted(a["gpu_id"] for a in seen.values()) == ["0", "1"]
        assert all(a["device_count"] == 1 and a["tensor_device"] == "cuda:0" for a in seen.values())
        assert len({a["gpu_uuid"] for a in seen.values()}) == 2  # really two different GPUs
    finally:
        assert serve.stop() == 0, serve.output()
