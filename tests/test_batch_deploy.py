"""A repository with a BatchAPI in images and on Kubernetes: the Dockerfile declares the job store (a volume,
boto3 for the endpoint), `deploy k8s` mounts a PersistentVolumeClaim there, one replica owning the jobs."""

import os

import kubernetes_validate
import pytest
import yaml

from tritonize.adapter.runtime.constants import IMAGE_JOB_STORE
from tritonize.batch.store import JOB_STORE_ENV
from tritonize.deploy.k8s import KUBERNETES_VERSIONS, DeployTarget, render


def _target(**kwargs):
    return DeployTarget(name="jobs", image="tritonize-jobs:1", args=["--model-repository=/models"], cortex_port=8080,
                        **kwargs)  # fmt: skip


def test_job_store_claim_mounted_one_replica_recreate():
    files = render(_target(job_store_size="5Gi", autoscaler="none"))
    claim = files["job-store-pvc.yaml"][0]
    assert claim["kind"] == "PersistentVolumeClaim" and claim["metadata"]["name"] == "jobs-jobs"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}
    deployment = files["deployment.yaml"][0]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "jobs", "persistentVolumeClaim": {"claimName": "jobs-jobs"}} in pod["volumes"]
    container = pod["containers"][0]
    assert {"name": "jobs", "mountPath": IMAGE_JOB_STORE} in container["volumeMounts"]
    assert {"name": JOB_STORE_ENV, "value": IMAGE_JOB_STORE} in container["env"]
    # the pod's fsGroup (1000) makes the volume writable by the non-root user
    assert pod["securityContext"]["fsGroup"] == 1000
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(claim, version, strict=True)
        kubernetes_validate.validate(deployment, version, strict=True)


def test_no_batch_api_no_store():
    files = render(_target())
    assert "job-store-pvc.yaml" not in files
    deployment = files["deployment.yaml"][0]
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    text = yaml.safe_dump(deployment)
    assert IMAGE_JOB_STORE not in text and JOB_STORE_ENV not in text


@pytest.mark.parametrize("name", ["docker", "deploy"])
def test_job_store_constants_have_one_home(name):
    """The store's path is written once (constants.py): the Dockerfile and the manifests import it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder, _, files in os.walk(os.path.join(root, name)):
        for file in files:
            if file.endswith(".py"):
                with open(os.path.join(folder, file), encoding="utf-8") as f:
                    assert IMAGE_JOB_STORE not in f.read(), file


EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "batch")


@pytest.fixture(scope="module")
def batch_repo(tmp_path_factory):
    from conftest import run_tritonize

    work = tmp_path_factory.mktemp("batch-image")
    run_tritonize("build", os.path.join(EXAMPLE, "cortex.yaml"), "-o", str(work / "model_repository"))
    return str(work / "model_repository")


def test_dockerfile_of_a_batch_repository_declares_the_store_and_boto3(batch_repo, tmp_path):
    from tritonize.docker.build import render_dockerfile

    text = render_dockerfile(batch_repo)
    install = next(
        line for line in text.splitlines() if line.startswith("RUN python3 -m pip install") and "uvloop" in line
    )
    assert "'boto3>=1.28'" in install
    assert f"RUN mkdir -p {IMAGE_JOB_STORE} && chown 1000:1000 {IMAGE_JOB_STORE}" in text
    assert f"ENV {JOB_STORE_ENV}={IMAGE_JOB_STORE}" in text
    assert text.index("chown 1000") < text.index(f"VOLUME {IMAGE_JOB_STORE}")  # a VOLUME freezes its contents


def test_dockerfile_without_a_batch_api_has_neither(tmp_path):
    from conftest import FIXTURES, run_tritonize

    from tritonize.docker.build import render_dockerfile

    run_tritonize("build", os.path.join(FIXTURES, "robust", "robust_predictor.py"), "-o", str(tmp_path / "repo"))
    text = render_dockerfile(str(tmp_path / "repo"))
    assert "boto3" not in text and IMAGE_JOB_STORE not in text and "VOLUME" not in text


def test_deploy_k8s_of_a_batch_project(tmp_path):
    from tritonize.deploy.target import deploy_k8s

    result = deploy_k8s(os.path.join(EXAMPLE, "cortex.yaml"), output=str(tmp_path / "deploy"), image="reg/batch:1",
                        job_store_size="3Gi")  # fmt: skip
    names = {os.path.relpath(path, tmp_path / "deploy") for path in result.files}
    assert "job-store-pvc.yaml" in names and "hpa.yaml" not in names  # one replica owns the jobs: no autoscaler
    assert any("replicas 1, no autoscaler" in warning for warning in result.warnings)
    assert any("tritonize job submit" in step for step in result.instructions)
    with open(tmp_path / "deploy" / "job-store-pvc.yaml") as f:
        claim = list(yaml.safe_load_all(f))[0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "3Gi"
    with open(tmp_path / "deploy" / "deployment.yaml") as f:
        deployment = list(yaml.safe_load_all(f))[0]
    assert deployment["spec"]["replicas"] == 1
    # the stock image (--model-store) has no Cortex endpoint: no job engine, said so, no claim
    stock = deploy_k8s(os.path.join(EXAMPLE, "cortex.yaml"), output=str(tmp_path / "stock"), model_store="s3://b/r")
    assert not any(path.endswith("job-store-pvc.yaml") for path in stock.files)
    assert any("serves no jobs" in warning for warning in stock.warnings)
