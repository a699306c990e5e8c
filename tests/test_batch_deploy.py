"""A repository with a BatchAPI in images and on Kubernetes: the Dockerfile declares the job store (a volume,
boto3 for the endpoint), `deploy k8s` mounts a PersistentVolumeClaim there, one replica owning the jobs."""

import os

import kubernetes_validate
import pytest
import yaml

from tritonize.adapter.runtime.constants import IMAGE_JOB_STORE, JOB_STORE_ENV
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
