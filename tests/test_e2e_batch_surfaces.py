"""What users touch around batch jobs, on real Triton: `tritonize job submit|status|stop|logs`, the Python
client's job methods and `tritonize status`, against examples/batch/ served by `tritonize serve`."""

import json
import os
import shutil
import time

import pytest
from conftest import ServeProcess, run_tritonize

from tritonize import Client
from tritonize.errors import JobError

pytestmark = pytest.mark.e2e

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "batch")
TOKEN = "batch-surfaces-token"

SLOW_PREDICTOR = """
import time


class PythonPredictor:
    def __init__(self, config):
        self.delay = float(config["delay"])

    def predict(self, payload, batch_id):
        time.sleep(self.delay)
"""

SLOW_API = """
- name: slow-batch
  kind: BatchAPI
  predictor:
    type: python
    path: slow_predictor.py
    config: {delay: 0.5}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("batch-surfaces")
    project = work / "batch"
    shutil.copytree(EXAMPLE, project)
    (project / "slow_predictor.py").write_text(SLOW_PREDICTOR)
    with open(project / "cortex.yaml", "a") as f:
        f.write(SLOW_API)
    repo = work / "model_repository"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    serve = ServeProcess(str(repo), extra_args=["--admin-token", TOKEN, "--job-store", str(work / "jobs")])
    try:
        assert serve.wait_ready(timeout=240), serve.output()
        serve.wait_cortex(timeout=60)
        serve.work = work
        serve.project = project
        serve.cortex_url = f"127.0.0.1:{serve.cortex_port}"
        yield serve
    finally:
        serve.stop()


def job(served, *args, check=True):
    return run_tritonize("job", *args, "--cortex-url", served.cortex_url, check=check)


def _rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_submit_wait_shows_progress_and_exits_0(served):
    dest = served.work / "results"
    result = job(served, "submit", "sentiment-batch", "--items", f"@{served.project / 'items.json'}",
                 "--batch-size", "3", "--workers", "2", "--config", f"dest={dest}", "--wait")  # fmt: skip
    spec = json.loads(result.stdout)  # stdout: the job's spec only
    assert spec["kind"] == "BatchAPI" and spec["workers"] == 2 and spec["config"] == {"dest": str(dest)}
    # not a terminal: plain progress lines, the last one the whole job, then the verdict
    assert "succeeded: 3 done, 0 failed of 3 batches" in result.stderr, result.stderr
    assert f"job {spec['job_id']}: succeeded" in result.stderr
    rows = _rows(dest / spec["job_id"] / "results.jsonl")  # on_job_complete gathered the batches
    assert len(rows) == 8
    labels = {row["text"]: row["label"] for row in rows}
    assert labels["I love this phone, the screen is excellent"] == "positive"
    assert labels["I hate the charger"] == "negative" and labels["It arrived on Tuesday"] == "neutral"

    shown = job(served, "status", "sentiment-batch", spec["job_id"]).stdout
    assert f"job id: {spec['job_id']}" in shown and "status: succeeded" in shown
    assert shown.splitlines()[9].split()[:3] == ["3", "3", "0"]  # total, succeeded, failed
    listed = job(served, "status", "sentiment-batch").stdout
    assert spec["job_id"] in listed and "3/3" in listed


def test_a_job_completed_with_failures_exits_1_and_keeps_the_failed_batch(served):
    dead = served.work / "dead"
    result = job(served, "submit", "sentiment-batch", "--items", '[{"text": "fine"}, {"oops": 1}]',
                 "--batch-size", "1", "--dead-letter", str(dead), "--max-receive-count", "2",
                 "--config", f"dest={served.work / 'results'}", "--wait", check=False)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    job_id = json.loads(result.stdout)["job_id"]
    assert "completed with failures: 1 done, 1 failed of 2 batches" in result.stderr, result.stderr
    assert f"tritonize job logs sentiment-batch {job_id}" in result.stderr
    kept = [os.path.join(root, name) for root, _, names in os.walk(dead) for name in names]
    assert len(kept) == 1 and '"oops"' in open(kept[0]).read()
    log = job(served, "logs", "sentiment-batch", job_id).stdout
    assert "KeyError" in log and "Traceback" not in log  # the error, not the traceback (that is serve's log)
    assert "status: completed with failures" in job(served, "status", "sentiment-batch", job_id).stdout


def test_python_client_job_methods(served):
    client = Client(served.http_url, cortex_url=served.cortex_url)  # the endpoint is not on its default port here
    with pytest.raises(JobError) as bad:
        client.submit_job("sentiment-batch", items=[{"text": "x"}], batch_size=0)
    assert bad.value.status == 400 and "batch_size" in bad.value.message
    with pytest.raises(JobError) as realtime:  # asked first: the realtime predictor never sees it
        client.submit_job("sentiment", items=[{"text": "x"}], batch_size=1)
    assert realtime.value.status == 400 and "sentiment is not a BatchAPI" in realtime.value.message
    with pytest.raises(JobError) as unknown:
        client.job_status("sentiment-batch", "nosuchjob")
    assert unknown.value.status == 404
    dest = served.work / "from-python"
    spec = client.submit_job("sentiment-batch", delimited_files=[str(served.project / "reviews.jsonl")],
                             batch_size=2, config={"dest": str(dest)})  # fmt: skip
    seen = []
    final = client.wait_job("sentiment-batch", spec["job_id"], timeout=180, progress=seen.append, poll_s=0.2)
    assert final["status"] == "status_succeeded", client.job_log("sentiment-batch", spec["job_id"])
    assert final["total_batch_count"] == 3 and final["batch_metrics"]["succeeded"] == 3
    assert seen[-1]["status"] == "status_succeeded" and all("status" in s for s in seen)
    assert len(_rows(dest / spec["job_id"] / "results.jsonl")) == 5
    assert client.jobs("sentiment-batch")[0]["job_id"] == spec["job_id"]  # newest first
    assert client.job_status("sentiment-batch", spec["job_id"])["status"] == "status_succeeded"
    assert client.job_log("sentiment-batch", spec["job_id"]).strip()
    listed = client.submit_job("sentiment-batch", file_path_lister=[str(served.project / "reviews")],
                               includes=["**review-1.txt"], batch_size=1, dry_run=True)  # fmt: skip
    assert listed.splitlines() == [str(served.project / "reviews" / "review-1.txt"), "validations passed"]


def test_status_shows_the_running_job_and_stop_ends_it(served):
    metrics = f"127.0.0.1:{served.metrics_port}"
    status = ["status", "--url", served.http_url, "--metrics-url", metrics, "--token", TOKEN]
    table = run_tritonize(*status, "--cortex-url", served.cortex_url).stdout
    # no job has loaded slow-batch yet: Triton's index says unloaded, the endpoint says it is a BatchAPI
    assert next(line.split() for line in table.splitlines() if line.startswith("slow-batch "))[1:3] == [
        "BatchAPI",
        "idle",
    ], table
    items = json.dumps([[i] for i in range(60)])
    spec = json.loads(job(served, "submit", "slow-batch", "--items", items, "--batch-size", "1").stdout)
    client = Client(served.http_url, cortex_url=served.cortex_url)
    deadline = time.monotonic() + 180
    while client.job_status("slow-batch", spec["job_id"])["batch_metrics"]["succeeded"] < 1:
        assert time.monotonic() < deadline, client.job_log("slow-batch", spec["job_id"])
        time.sleep(0.2)
    table = run_tritonize(*status, "--cortex-url", served.cortex_url).stdout
    api_rows = {row[0]: row[1:3] for row in map(str.split, table[: table.index("BATCH API")].splitlines()) if row}
    assert api_rows["slow-batch"] == ["BatchAPI", "running"], table  # its row while the job's workers are loaded
    jobs_section = table[table.index("BATCH API") :]  # below the APIs' table
    row = next(line.split() for line in jobs_section.splitlines() if line.startswith("slow-batch "))
    assert row[1:3] == [spec["job_id"], "running"], table
    succeeded, failed, queued, total = (int(cell) for cell in row[3:7])
    assert succeeded >= 1 and failed == 0 and total == 60 and 0 < queued <= 60 - succeeded, table
    assert job(served, "stop", "slow-batch", spec["job_id"]).stdout.strip() == f"stopped job {spec['job_id']}"
    final = client.wait_job("slow-batch", spec["job_id"], timeout=120, poll_s=0.2)
    assert final["status"] == "status_stopped" and final["batch_metrics"]["succeeded"] < 60
    assert "stopped" in job(served, "status", "slow-batch").stdout
