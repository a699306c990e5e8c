"""A demanding Cortex user's BatchAPI jobs, end to end: `tritonize serve` (real tritonserver) on a repository of
two BatchAPIs (one with networking.endpoint and predictor.env, one with tritonize.request_timeout) and a
RealtimeAPI. One server serves the module.
"""

import json
import subprocess
import threading
import time

import pytest
from batch_serve import BatchServe

pytestmark = pytest.mark.e2e

SECRET = "never-sent-4e1d"
DRAIN_NOTICE_S = 3

PREDICTOR = """
import json
import os
import sys
import time


class PythonPredictor:
    def __init__(self, config, job_spec):
        self.config = config
        self.job = job_spec["job_id"]

    def predict(self, payload, batch_id):
        if self.config.get("print_mb"):
            sys.stdout.write("x" * (self.config["print_mb"] << 20) + "\\n")
            sys.stdout.flush()
        if "hang" in payload:
            time.sleep(3600)
        time.sleep(self.config.get("sleep", 0))
        with open(os.path.join(self.config["out"], self.job + ".batches"), "a") as f:
            f.write(json.dumps({"batch_id": batch_id, "payload": payload}) + "\\n")

    def on_job_complete(self):
        if self.config.get("complete_raises"):
            raise KeyError("bucket")
"""


class Server(BatchServe):
    def __init__(self, tmp):
        self.out = tmp / "out"
        self.out.mkdir()
        config = f"config: {{out: {json.dumps(str(self.out))}}}"
        entries = (
            "- name: alpha\n  kind: BatchAPI\n  networking: {endpoint: /v1/alpha}\n"
            f"  predictor: {{type: python, path: batch.py, {config}, env: {{API_KEY: {SECRET}}}}}\n"
            "- name: beta\n  kind: BatchAPI\n  tritonize: {request_timeout: 2s}\n"
            f"  predictor: {{type: python, path: batch.py, {config}}}\n"
        )
        super().__init__(tmp, {"batch.py": PREDICTOR}, entries, serve_args=["--drain-notice", str(DRAIN_NOTICE_S)])

    def request(self, method, path, body=None, headers=None, port=None):
        return self.exchange(method, path, body, headers, port)

    def submit(self, api, body, headers=None):
        status, answer, _ = self.request("POST", f"/{api}", body, headers)
        assert status == 200, answer
        return answer["job_id"]

    def wait(self, path, job_id, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            status, answer, _ = self.request("GET", f"{path}?jobID={job_id}")
            assert status == 200, answer
            if answer["job_status"]["end_time"]:
                return answer
            assert time.monotonic() < deadline, f"{answer}\n{self.serve.output()[-3000:]}"
            time.sleep(0.1)

    def log(self, api, job_id):
        return self.request("GET", f"/_tritonize/jobs/{api}/{job_id}/log")[1]

    def batches(self, job_id):
        path = self.out / f"{job_id}.batches"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("batch-review"))
    yield server
    assert server.serve.stop() == 0, server.serve.output()[-3000:]


def test_networking_endpoint_api_spec_cors_and_stopping_an_ended_job(server):
    items = [None, 1, 2.5, "naïve 🚀", {"nested": [{"deep": None}]}, [], "x" * (200 << 10)]
    job_id = server.submit("v1/alpha", {"workers": 1, "item_list": {"items": items, "batch_size": 2}})
    answer = server.wait("/v1/alpha", job_id)
    assert answer["job_status"]["status"] == "status_succeeded", server.log("alpha", job_id)
    assert sorted(item for b in server.batches(job_id) for item in b["payload"] if isinstance(item, str)) == sorted(
        item for item in items if isinstance(item, str)
    )
    assert [
        json.dumps(i) for b in sorted(server.batches(job_id), key=lambda b: b["batch_id"]) for i in b["payload"]
    ] == [json.dumps(i) for i in items]
    spec = answer["api_spec"]
    assert spec["name"] == "alpha" and spec["kind"] == "BatchAPI" and spec["networking"] == {"endpoint": "/v1/alpha"}
    assert spec["predictor"]["config"]["out"] == str(server.out) and spec["predictor"]["env"] == {
        "API_KEY": "<redacted>"
    }
    assert answer["endpoint"].endswith("/v1/alpha")
    status, text, _ = server.request("GET", f"/alpha?jobID={job_id}")
    assert status == 200 and SECRET not in json.dumps(text)
    # DELETE of a job that ended: Cortex's 400, nothing changes
    status, error, _ = server.request("DELETE", f"/alpha?jobID={job_id}")
    assert status == 400 and error["error"].endswith("cannot stop BatchAPI job because it is not in progress")
    assert server.wait("/alpha", job_id)["job_status"]["status"] == "status_succeeded"
    status, _, headers = server.request("OPTIONS", "/v1/alpha")
    assert status == 204 and "DELETE" in headers["access-control-allow-methods"]


def test_submissions_with_any_content_type_and_a_realtime_payload(server):
    body = json.dumps({"workers": 1, "item_list": {"items": [1], "batch_size": 1}}).encode()
    for headers in (
        {},
        {"Content-Type": "application/json"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
    ):
        status, answer, _ = server.request("POST", "/alpha?dryRun=true", body, headers)
        assert status == 200 and "validations passed" in answer, (headers, answer)
    status, answer, _ = server.request("POST", "/alpha", {"text": "hello"})
    assert status == 400 and "BatchAPI" in answer["error"] and "item_list" in answer["error"]
    status, answer, _ = server.request("POST", "/alpha", b"")
    assert status == 400 and "JSON" in answer["error"]


def test_a_10_mib_item_list(server):
    items = [{"i": i, "pad": "p" * 1030} for i in range(10 * 1024)]  # ~10.3 MB of JSON
    body = json.dumps({"workers": 2, "item_list": {"items": items, "batch_size": 512}}).encode()
    assert len(body) > 10 << 20
    job_id = server.submit("alpha", body)
    answer = server.wait("/alpha", job_id)
    assert answer["job_status"]["status"] == "status_succeeded", server.log("alpha", job_id)
    assert answer["job_status"]["total_batch_count"] == 20
    assert sorted(item["i"] for b in server.batches(job_id) for item in b["payload"]) == list(range(10 * 1024))


def test_two_batch_apis_run_jobs_at_once_while_the_realtime_api_and_readiness_answer(server):
    slow = {"workers": 2, "item_list": {"items": list(range(16)), "batch_size": 1}, "config": {"sleep": 0.3}}
    ids = {"alpha": server.submit("alpha", slow), "beta": server.submit("beta", slow)}
    failures = []
    done = threading.Event()

    def probe():
        while not done.is_set():
            status, answer, _ = server.request("POST", "/echo", {"x": 1})
            if status != 200 or answer != {"echo": {"x": 1}}:
                failures.append(("echo", status, answer))
            status, _, _ = server.request("GET", "/_tritonize/ready")
            if status != 200:
                failures.append(("ready", status))
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        seen_both = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = [
                server.request("GET", f"/{api}?jobID={job}")[1]["job_status"]["status"] for api, job in ids.items()
            ]
            seen_both = seen_both or running == ["status_running", "status_running"]
            if all(status not in ("status_enqueuing", "status_pending", "status_running") for status in running):
                break
            time.sleep(0.1)
    finally:
        done.set()
        prober.join()
    for api, job in ids.items():
        assert server.wait(f"/{api}", job)["job_status"]["status"] == "status_succeeded", server.log(api, job)
    assert seen_both
    assert not failures, failures[:5]


def test_on_job_complete_raising_is_a_worker_error(server):
    job_id = server.submit(
        "alpha", {"workers": 1, "item_list": {"items": [1, 2], "batch_size": 1}, "config": {"complete_raises": True}}
    )
    job = server.wait("/alpha", job_id)["job_status"]
    assert job["status"] == "status_worker_error", server.log("alpha", job_id)
    assert job["message"] == "on_job_complete failed: on_job_complete() raised KeyError: 'bucket'"
    assert job["batch_metrics"]["succeeded"] == 2


def test_a_predictor_printing_megabytes_per_batch(server):
    body = {"workers": 2, "item_list": {"items": list(range(6)), "batch_size": 1}, "config": {"print_mb": 4}}
    job_id = server.submit("alpha", body)
    job = server.wait("/alpha", job_id)["job_status"]
    assert job["status"] == "status_succeeded", server.log("alpha", job_id)
    status, answer, _ = server.request("POST", "/echo", {"after": "print"})
    assert status == 200


def test_a_hanging_predict_with_request_timeout_is_dead_lettered_and_the_job_goes_on(server):
    body = {"workers": 1, "item_list": {"items": [1, "hang", 3], "batch_size": 1}}
    job_id = server.submit("beta", body)
    job = server.wait("/beta", job_id, timeout=150)["job_status"]
    log = server.log("beta", job_id)
    assert job["status"] == "status_completed_with_failures", log
    assert job["batch_metrics"] == {**job["batch_metrics"], "succeeded": 2, "failed": 1}
    assert log.count("the worker crashed") == 3, log
    assert sorted(b["payload"][0] for b in server.batches(job_id)) == [1, 3]


def test_a_store_made_read_only_refuses_submissions_and_nothing_else(server):
    """The store's folder remounted read-only in place (a bind mount; skipped where mounting is not allowed)."""
    store = str(server.store)
    if subprocess.run(["mount", "--bind", store, store], capture_output=True).returncode != 0:
        pytest.skip("mount --bind is not allowed here")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", store, store], capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        status, answer, _ = server.request(
            "POST", "/alpha", {"workers": 1, "item_list": {"items": [1], "batch_size": 1}}
        )
        assert status == 503 and answer["error"] == "the job store is not usable: Read-only file system", answer
        assert store not in json.dumps(answer)
        status, answer, _ = server.request("GET", "/alpha")
        assert status == 200 and answer["jobs"]
        assert server.request("POST", "/echo", {"x": 3})[:2] == (200, {"echo": {"x": 3}})
        assert server.request("GET", "/_tritonize/ready")[0] == 200
    finally:
        subprocess.run(["umount", store], check=True)
    job_id = server.submit("alpha", {"workers": 1, "item_list": {"items": [1], "batch_size": 1}})
    assert server.wait("/alpha", job_id)["job_status"]["status"] == "status_succeeded"


def test_sigterm_drains_readiness_at_once_and_a_running_and_a_pending_job_resume(server):
    """Last: it restarts the module's server. With BatchAPIs the endpoint's readiness reads Triton's index; serve's
    drain notice must still take it out of rotation at once (it did only after the notice, before)."""
    slow = {"workers": 1, "item_list": {"items": list(range(12)), "batch_size": 1}, "config": {"sleep": 0.3}}
    running = server.submit("alpha", slow)
    pending = server.submit("alpha", {**slow, "item_list": {"items": [100, 101], "batch_size": 1}})
    deadline = time.monotonic() + 60
    while not server.batches(running):
        assert time.monotonic() < deadline, server.log("alpha", running)
        time.sleep(0.1)
    assert server.request("GET", f"/alpha?jobID={pending}")[1]["job_status"]["status"] == "status_pending"
    assert server.request("GET", "/_tritonize/ready")[0] == 200
    stopper = threading.Thread(target=server.serve.stop)
    server.serve.process.send_signal(15)
    started = time.monotonic()
    while server.request("GET", "/_tritonize/ready")[0] == 200:
        assert time.monotonic() - started < DRAIN_NOTICE_S / 2, "readiness still true during the drain notice"
        time.sleep(0.05)
    assert server.request("POST", "/echo", {"x": 2})[0] == 200  # still answering while not ready
    stopper.start()
    stopper.join(120)
    assert server.serve.process.returncode == 0, server.serve.output()[-3000:]
    before = len(server.batches(running))
    assert 0 < before < 12
    server.start()
    for job_id, count in ((running, 12), (pending, 2)):
        job = server.wait("/alpha", job_id, timeout=120)["job_status"]
        assert job["status"] == "status_succeeded", server.log("alpha", job_id)
        assert job["batch_metrics"]["succeeded"] == count
    runs = [b["batch_id"] for b in server.batches(running)]
    assert sorted(set(runs)) == [f"{i:06d}" for i in range(12)]
    assert len(runs) - 12 <= 1, runs  # at most the batch in flight at SIGTERM runs twice
