"""An image of a repository with a BatchAPI, run on a real Docker engine (stand-in Triton image,
tests/docker_engine.py): a job submitted to the container's Cortex endpoint succeeds; a new container
on the same volume still reports it; the store is writable by uid 1000; boto3 is there for the endpoint."""

import os
import shutil
import time
import urllib.error
import urllib.request

import pytest
from conftest import run_tritonize
from docker_engine import ENDPOINT_WHEELS, docker, serve_wheel_index, standin_image_or_skip

from tritonize import Client
from tritonize.adapter.runtime.constants import IMAGE_JOB_STORE

pytestmark = pytest.mark.e2e

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "batch")
# boto3 and what it needs, for the stand-in's Python 3.11 (botocore wants python-dateutil < 3).
BATCH_WHEELS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil<3", "six", "urllib3")


@pytest.fixture
def batch_image(tmp_path):
    standin = standin_image_or_skip()
    server, index = serve_wheel_index(tmp_path / "index", (*ENDPOINT_WHEELS, *BATCH_WHEELS))
    shutil.copytree(EXAMPLE, tmp_path / "batch")
    repo = tmp_path / "model_repository"
    run_tritonize("build", str(tmp_path / "batch" / "cortex.yaml"), "-o", str(repo))
    tag = f"tritonize-e2e-batch:{os.getpid()}"
    try:
        built = run_tritonize("docker", "build", str(repo), "-t", tag, "--image", standin, "--pip-index-url", index,
                              check=False)  # fmt: skip
        assert built.returncode == 0, built.stdout + built.stderr
        yield tag
    finally:
        server.shutdown()
        docker("rmi", "-f", tag, check=False)


def _start(tag, name, volume):
    docker("run", "-d", "--name", name, "--shm-size", "1g", "-v", f"{volume}:{IMAGE_JOB_STORE}",
           "-e", "TRITONIZE_ADMIN_TOKEN=batch-image-token", "-p", "127.0.0.1::8080", tag)  # fmt: skip
    port = docker("port", name, "8080").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_tritonize/ready", timeout=5) as response:
                if response.status == 200:
                    return f"127.0.0.1:{port}"
        except (OSError, urllib.error.URLError):
            pass
        assert time.monotonic() < deadline, docker("logs", name, check=False).stdout[-3000:]
        time.sleep(0.5)


def test_a_job_in_the_image_and_its_state_after_a_new_container(batch_image):
    volume, names = f"tz-e2e-jobs-{os.getpid()}", [f"tz-e2e-batch-{os.getpid()}-{i}" for i in (1, 2)]
    try:
        assert docker("run", "--rm", batch_image, "python3", "-c", "import boto3; print('ok')").stdout.strip() == "ok"
        # the runtime and the project come compiled by the image's Python (a pod's /models is read-only)
        compiled = (
            "import glob, importlib.util, os; sources = glob.glob('/models/*/1/**/*.py', recursive=True); "
            "print(len(sources), sum(os.path.exists(importlib.util.cache_from_source(s)) for s in sources))"
        )
        total, with_bytecode = docker("run", "--rm", batch_image, "python3", "-c", compiled).stdout.split()
        assert int(total) > 10 and with_bytecode == total
        # a fresh volume takes the image's folder, owned by 1000: a container run as that user writes jobs
        fresh = docker("run", "--rm", "--user", "1000", "-v", f"{volume}-uid:{IMAGE_JOB_STORE}", batch_image,
                       "bash", "-c", f"touch {IMAGE_JOB_STORE}/probe && echo $TRITONIZE_JOB_STORE")  # fmt: skip
        assert fresh.stdout.strip() == IMAGE_JOB_STORE

        cortex = _start(batch_image, names[0], volume)
        client = Client("127.0.0.1:1", cortex_url=cortex)
        spec = client.submit_job("sentiment-batch", items=[{"text": "good"}, {"text": "awful"}, {"text": "x"}],
                                 batch_size=2, workers=2, config={"dest": "/tmp/results"})  # fmt: skip
        final = client.wait_job("sentiment-batch", spec["job_id"], timeout=300, poll_s=0.5)
        assert final["status"] == "status_succeeded", client.job_log("sentiment-batch", spec["job_id"])
        assert final["batch_metrics"]["succeeded"] == 2
        results = docker("exec", names[0], "cat", f"/tmp/results/{spec['job_id']}/results.jsonl").stdout
        assert '"label": "negative"' in results and '"label": "positive"' in results
        docker("rm", "-f", names[0])

        cortex = _start(batch_image, names[1], volume)  # a new container, the same volume
        client = Client("127.0.0.1:1", cortex_url=cortex)
        again = client.job_status("sentiment-batch", spec["job_id"])
        assert again["status"] == "status_succeeded" and again["batch_metrics"]["succeeded"] == 2
        assert [job["job_id"] for job in client.jobs("sentiment-batch")] == [spec["job_id"]]
        assert "on_job_complete" in client.job_log("sentiment-batch", spec["job_id"])
    finally:
        for name in names:
            docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", volume, f"{volume}-uid", check=False)
