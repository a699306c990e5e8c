"""The BatchAPI deployment as a pod (tests/pods.py: podman plays the generated manifests): the job-store
PersistentVolumeClaim from `tritonize deploy k8s`, the Deployment mounting it; a job submitted in the pod
succeeds, and the next pod on the same claim (a restart, an update) still reports it.

Skips (saying why) only without a Docker engine or podman; every pod, volume and image made is removed."""

import json
import os
import shutil
import subprocess
import time

import pytest
import yaml
from conftest import run_tritonize
from docker_engine import ENDPOINT_WHEELS, docker, serve_wheel_index, standin_image_or_skip
from pods import PlayedPod, played_copy, podman, podman_env, podman_unavailable
from test_e2e_docker_batch import BATCH_WHEELS

pytestmark = pytest.mark.e2e

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "batch")
TAG = f"localhost/tritonize-e2e-pod-batch:{os.getpid()}"
NAME = f"tzbatch{os.getpid()}"
CORTEX_PORT = 8080


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """(podman env, work folder, the deploy folder): the example built, imaged, loaded into podman."""
    standin = standin_image_or_skip()
    work = tmp_path_factory.mktemp("pod-batch")
    env = podman_env(str(work / "podman"))
    why = podman_unavailable(env)
    if why:
        pytest.skip(why)
    shutil.copytree(EXAMPLE, work / "batch")
    run_tritonize("build", str(work / "batch" / "cortex.yaml"), "-o", str(work / "repo"))
    server, index = serve_wheel_index(work / "index", (*ENDPOINT_WHEELS, *BATCH_WHEELS))
    try:
        built = run_tritonize("docker", "build", str(work / "repo"), "-t", TAG, "--image", standin,
                              "--pip-index-url", index, check=False)  # fmt: skip
        assert built.returncode == 0, built.stdout + built.stderr
        load = subprocess.run(f"docker save {TAG} | podman load", shell=True, env=env, capture_output=True, text=True)
        assert load.returncode == 0, load.stderr
        deploy = run_tritonize("deploy", "k8s", str(work / "repo"), "--image", TAG, "--name", NAME,
                               "-o", str(work / "deploy"), check=False)  # fmt: skip
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        yield env, work, work / "deploy"
    finally:
        server.shutdown()
        docker("rmi", "-f", TAG, check=False)
        podman(env, "rmi", "--force", TAG, check=False)


def _pod(env, work, deploy, suffix):
    with open(deploy / "deployment.yaml") as f:
        documents = list(yaml.safe_load_all(f))
    deployment, name = played_copy(documents, suffix, str(work))
    played = PlayedPod(env, str(work), deployment, name)
    played.play()
    deadline = time.monotonic() + 240
    while not played.probe("startupProbe"):
        status, _ = played.state()
        if status != "running" or time.monotonic() > deadline:
            pytest.fail(f"the pod's container is {status}, not ready; its log:\n{played.logs()[-6000:]}")
        time.sleep(1)
    return played


def _get(pod, path):
    status, body = pod.call("GET", CORTEX_PORT, path)
    assert status == 200, (status, body, pod.logs()[-3000:])
    return json.loads(body)


def test_a_job_in_the_pod_survives_the_next_pod_on_the_claim(deployed):
    env, work, deploy = deployed
    with open(deploy / "job-store-pvc.yaml") as f:
        (claim,) = [d for d in yaml.safe_load_all(f) if d]
    volume = claim["metadata"]["name"]
    pods = []
    try:
        podman(env, "kube", "play", str(deploy / "job-store-pvc.yaml"))  # the claim: a podman volume of that name
        pods.append(_pod(env, work, deploy, "a"))
        submission = {"workers": 2, "item_list": {"items": [{"text": "great"}, {"text": "bad"}], "batch_size": 1},
                      "config": {"dest": "/tmp/results"}}  # fmt: skip
        status, body = pods[0].call("POST", CORTEX_PORT, "/sentiment-batch", json.dumps(submission).encode())
        assert status == 200, (body, pods[0].logs()[-3000:])
        job_id = json.loads(body)["job_id"]
        deadline = time.monotonic() + 240
        while (job := _get(pods[0], f"/sentiment-batch?jobID={job_id}")["job_status"])["status"] in (
            "status_enqueuing",
            "status_pending",
            "status_running",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(1)
        assert job["status"] == "status_succeeded", (job, pods[0].logs()[-3000:])
        # the store is on the claim, written by the pod's non-root user
        assert pods[0].exec("ls", f"/var/lib/tritonize/jobs/sentiment-batch/{job_id}").returncode == 0
        pods.pop().remove()

        pods.append(_pod(env, work, deploy, "b"))  # the next pod: a restart, an update, another node
        again = _get(pods[0], f"/sentiment-batch?jobID={job_id}")["job_status"]
        assert again["status"] == "status_succeeded" and again["batch_metrics"]["succeeded"] == 2
        assert [j["job_id"] for j in _get(pods[0], "/sentiment-batch")["jobs"]] == [job_id]
    finally:
        for played in pods:
            played.remove()
        podman(env, "volume", "rm", "--force", volume, check=False)
