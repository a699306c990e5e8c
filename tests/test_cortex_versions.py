"""`tritonize build` on one representative spec per Cortex version family, v0.11 to v0.33
(tests/data/cortex_versions/<version>/cortex.yaml, written from Cortex's docs at each tag):
each builds, with its older fields mapped or warned, or is refused with the reason."""

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from tritonize.adapter.spec import parse_traffic_splitter
from tritonize.cli.main import cli

VERSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "cortex_versions")

# version -> what build answers: ("builds", {api: instance summary}, [warnings]) or ("refused", reason).
EXPECTED = {
    "v0.11": ("refused", "[0] (iris).kind: deployment is the deployment entry of Cortex v0.11 and earlier"),
    "v0.12": (
        "builds",
        {"iris-classifier": "1 CPU instance"},
        [
            "kind: api read as kind: RealtimeAPI",
            "compute.min_replicas read as autoscaling.min_replicas",
            "endpoint read as networking.endpoint",
            "ignored: tracker (Cortex's prediction tracking",
            "ignored: compute.target_cpu_utilization (CPU-based scaling",
        ],
    ),
    "v0.13": (
        "builds",
        {"sentiment": "1 CPU instance"},
        ["compute.max_surge read as update_strategy.max_surge", "compute.init_replicas read as autoscaling"],
    ),
    "v0.14": (
        "builds",
        {"text-generator": "2 CPU instances"},
        ["autoscaling.workers_per_replica read as predictor.processes_per_replica"],
    ),
    "v0.15": ("builds", {"classifier": "1 CPU instance"}, ["autoscaling.threads_per_worker read as"]),
    "v0.16": ("builds", {"summarizer": "1 CPU instance"}, ["ignored: predictor.image", "ignored: local_port"]),
    "v0.17": ("builds", {"mpg-estimator": "1 CPU instance"}, ["ignored: monitoring (Cortex's prediction monitoring"]),
    "v0.18": (
        "builds",
        {"image-classifier": "2 CPU instances"},
        ["ignored: networking.api_gateway", "ignored: networking.local_port", "ignored: compute.inf (AWS Inferentia"],
    ),
    "v0.19": ("builds", {"batcher": "1 CPU instance"}, []),
    "v0.20": ("refused", "[0] (iris-tf).predictor.type: 'tensorflow' predictors are not supported (only 'python'): "),
    "v0.21": ("builds", {"image-labeler": "BatchAPI: loaded for each job, one instance per worker (CPU)"}, []),
    "v0.22": ("builds", {"one-model": "1 CPU instance"}, ["predictor.model_path read as predictor.models.path"]),
    "v0.23": ("builds", {"two-models": "1 CPU instance"}, ["predictor.models.paths.model_path read as"]),
    "v0.24": ("builds", {"model-dir": "1 CPU instance"}, ["ignored: monitoring"]),
    "v0.25": ("builds", {"live-reloading": "1 CPU instance"}, []),
    "v0.26": ("builds", {"logged": "2 CPU instances"}, ["ignored: predictor.log_level", "ignored: predictor.shm_size"]),
    "v0.27": ("refused", "[0] (trainer).kind: TaskAPI is not supported: a TaskAPI runs a job once"),
    "v0.28": ("refused", "[0] (resnet-onnx).predictor.type: 'onnx' predictors are not supported (only 'python'): "),
    "v0.29": ("builds", {"cached": "1 instance on GPU 0"}, []),
    "v0.30": ("builds", {"with-deps": "1 CPU instance"}, ["autoscaling.max_replica_concurrency: not enforced"]),
    "v0.31": (
        ("builds", {"model-a": "1 CPU instance", "model-b": "1 CPU instance", "model-shadow": "1 CPU instance"}, [])
        if parse_traffic_splitter is not None
        else ("refused", "[3] (splitter).kind: TrafficSplitter is not supported by this build of tritonize")
    ),
    "v0.32": ("refused", "[0] (slow-job).kind: AsyncAPI is not supported: deploy the predictor as a RealtimeAPI"),
    "v0.33": (
        "builds",
        {"full": "1 CPU instance"},
        ["ignored: predictor.protobuf_path (Cortex's own gRPC service", "ignored: predictor.image"],
    ),
}


def test_every_version_family_has_a_spec():
    assert sorted(os.listdir(VERSIONS)) == sorted(EXPECTED)
    minors = sorted(int(v.split(".")[1]) for v in EXPECTED)
    assert minors == list(range(11, 34))


@pytest.mark.parametrize("version", sorted(EXPECTED, key=lambda v: int(v.split(".")[1])))
def test_build_builds_or_refuses_with_the_reason(tmp_path, version):
    project = tmp_path / version
    shutil.copytree(os.path.join(VERSIONS, version), project)
    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["build", str(project / "cortex.yaml"), "-o", str(repo)])
    expected = EXPECTED[version]
    assert "Traceback" not in result.output
    if expected[0] == "refused":
        assert result.exit_code == 2, result.output
        assert expected[1] in result.output
        assert not repo.exists()
        return
    assert result.exit_code == 0, result.output
    for name, summary in expected[1].items():
        assert f"  {name}: {summary}" in result.stdout
        with open(repo / name / "1" / "tritonize_api.json", encoding="utf-8") as f:
            assert json.load(f)["name"] == name
    for words in expected[2]:
        assert any(words in line for line in result.stderr.splitlines() if line.startswith("warning: ")), (
            words,
            result.stderr,
        )
    # Each older field is mentioned once, not once per place that reads it.
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(set(warnings))
