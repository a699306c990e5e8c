"""BatchAPI jobs end to end: `tritonize serve` (real tritonserver, the Cortex endpoint's job engine) on a
repository with a RealtimeAPI and a BatchAPI; jobs submitted with POST /<api> as Cortex clients did.

One server serves the module (its job store in tmp); the last test restarts it mid-job.
"""

import copy
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import pytest
from batch_serve import BatchServe
from conftest import free_ports
from s3_fixtures import moto_s3  # noqa: F401  (fixture)

from tritonize.cortex_endpoint.zipapp import write_zipapp

pytestmark = pytest.mark.e2e

BATCHER = """
import json
import os
import time


class PythonPredictor:
    def __init__(self, config, job_spec):
        if config.get("fail_init"):
            raise RuntimeError("no weights here")
        self.config = config
        self.job = job_spec["job_id"]
        self.total = job_spec["total_batch_count"]
        self._write(".pids", {"pid": os.getpid()})

    def _write(self, suffix, record):
        with open(os.path.join(self.config["out"], self.job + suffix), "a") as f:
            f.write(json.dumps(record) + "\\n")

    def predict(self, payload, batch_id):
        time.sleep(self.config.get("sleep", 0))
        for item in payload:
            if isinstance(item, dict) and item.get("fail"):
                raise ValueError(f"bad item {item['i']}")
        record = {"batch_id": batch_id, "payload": payload, "pid": os.getpid(), "tag": self.config.get("tag")}
        self._write(".batches", {**record, "total": self.total})

    def on_job_complete(self):
        self._write(".complete", {"pid": os.getpid()})
"""


class Server(BatchServe):
    def __init__(self, tmp, env):
        self.out = tmp / "out"
        self.out.mkdir()
        entry = (
            "- name: batcher\n  kind: BatchAPI\n"
            f"  predictor: {{type: python, path: batcher.py, config: {{out: {json.dumps(str(self.out))}, sleep: 0}}}}\n"
        )
        super().__init__(tmp, {"batcher.py": BATCHER}, entry, env=env)

    def request(self, method, path, body=None):
        status, answer, _ = self.exchange(method, path, body)
        return status, answer

    def submit(self, body, api="batcher"):
        status, answer = self.request("POST", f"/{api}", body)
        assert status == 200, answer
        assert answer["status"] == "status_enqueuing" and answer["kind"] == "BatchAPI"
        return answer["job_id"]

    def job(self, job_id):
        status, answer = self.request("GET", f"/batcher?jobID={job_id}")
        assert status == 200, answer
        return answer["job_status"]

    def wait(self, job_id, until=None, timeout=120, unreachable_ok=False):
        deadline = time.monotonic() + timeout
        while True:
            try:
                job = self.job(job_id)
            except OSError:  # the endpoint is being restarted
                assert unreachable_ok and time.monotonic() < deadline, self.serve.output()[-4000:]
                time.sleep(0.2)
                continue
            if until(job) if until else job["end_time"]:
                return job
            assert time.monotonic() < deadline, f"{job}\n{self.log(job_id)}\n{self.serve.output()[-4000:]}"
            time.sleep(0.1)

    def log(self, job_id):
        status, text = self.request("GET", f"/_tritonize/jobs/batcher/{job_id}/log")
        assert status == 200
        return text

    def lines(self, job_id, suffix):
        path = self.out / (job_id + suffix)
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def batch_model_ready(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.serve.http_port, timeout=10)
        try:
            connection.request("GET", "/v2/models/batcher/ready")
            return connection.getresponse().status == 200
        finally:
            connection.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, moto_s3):  # noqa: F811
    server = Server(tmp_path_factory.mktemp("batch"), moto_s3.env)
    yield server
    server.serve.stop()


def items(count, **extra):
    return [{"i": i, **extra} for i in range(count)]


def test_an_item_list_job_with_failing_batches_retries_then_dead_letters(server, tmp_path):
    assert not server.batch_model_ready()  # a BatchAPI's model is loaded by its jobs only
    dead = tmp_path / "dead"
    payload = items(10)
    payload[3]["fail"] = True
    body = {
        "workers": 2,
        "item_list": {"items": payload, "batch_size": 2},
        "config": {"tag": "from-the-job"},
        "dead_letter": {"path": str(dead), "max_receive_count": 2},
    }
    readiness = []
    stop = threading.Event()

    def poll_readiness():  # the realtime API's server stays ready while a job loads and unloads its model
        while not stop.is_set():
            readiness.append(server.request("GET", "/_tritonize/ready")[0])
            time.sleep(0.02)

    poller = threading.Thread(target=poll_readiness)
    poller.start()
    try:
        job_id = server.submit(body)
        job = server.wait(job_id)
        time.sleep(2)  # past the unload
    finally:
        stop.set()
        poller.join()
    assert len(readiness) > 20 and set(readiness) == {200}, readiness
    log = server.log(job_id)
    assert job["status"] == "status_completed_with_failures", log
    assert job["batch_metrics"]["succeeded"] == 4 and job["batch_metrics"]["failed"] == 1
    assert job["total_batch_count"] == 5 and job["batches_in_queue"] == 0
    letter = json.loads((dead / job_id / "000001.json").read_text())
    assert letter["items"] == payload[2:4] and letter["attempts"] == 2 and letter["batch_id"] == "000001"
    assert "predict() raised ValueError: bad item 3" in letter["error"]
    assert log.count("predict() raised ValueError: bad item 3") == 2, log  # both attempts, in the job log
    batches = server.lines(job_id, ".batches")
    assert sorted(b["batch_id"] for b in batches) == ["000000", "000002", "000003", "000004"]  # others unaffected
    assert {b["tag"] for b in batches} == {"from-the-job"} and {b["total"] for b in batches} == {5}
    assert len({b["pid"] for b in batches}) <= 2
    assert len(server.lines(job_id, ".complete")) == 1  # on_job_complete exactly once
    assert not server.batch_model_ready()  # unloaded when the job ended
    status, metrics = server.request("GET", "/_tritonize/metrics")
    assert status == 200
    assert f'tritonize_batch_job_batches{{api="batcher",job_id="{job_id}",state="succeeded"}} 4' in metrics
    assert f'tritonize_batch_job_batches{{api="batcher",job_id="{job_id}",state="dead_lettered"}} 1' in metrics
    status, listed = server.request("GET", "/batcher")
    assert status == 200 and listed["jobs"][0]["job_id"] == job_id


def test_jobs_from_files_local_and_s3(server, moto_s3, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.json").write_text('{"i": 1}\n{"i": 2}\n{"i": 3}\n')
    (data / "b.txt").write_text("not json\n")
    lister = {"s3_paths": [f"file://{data}"], "includes": ["**.json"], "batch_size": 1}
    job_id = server.submit({"workers": 1, "file_path_lister": lister})
    assert server.wait(job_id)["status"] == "status_succeeded", server.log(job_id)
    assert [b["payload"] for b in server.lines(job_id, ".batches")] == [[f"file://{data}/a.json"]]

    moto_s3.reset_bucket("batch-in")
    moto_s3.put("batch-in", "rows/part-0.json", b'{"i": 0}\n{"i": 1}\n{"i": 2}\n')
    moto_s3.put("batch-in", "rows/part-1.json", b'{"i": 3}\n\n{"i": 4}\n')
    moto_s3.put("batch-in", "rows/skip.csv", b"a,b\n")
    delimited = {"s3_paths": ["s3://batch-in/rows/"], "includes": ["**.json"], "batch_size": 2}
    status, listing = server.request("POST", "/batcher?dryRun=true", {"workers": 1, "delimited_files": delimited})
    assert status == 200 and listing.splitlines() == [
        "s3://batch-in/rows/part-0.json",
        "s3://batch-in/rows/part-1.json",
        "validations passed",
    ]
    job_id = server.submit({"workers": 2, "delimited_files": delimited})
    assert server.wait(job_id)["status"] == "status_succeeded", server.log(job_id)
    payloads = sorted((b["payload"] for b in server.lines(job_id, ".batches")), key=lambda p: p[0]["i"])
    assert payloads == [[{"i": 0}, {"i": 1}], [{"i": 2}, {"i": 3}], [{"i": 4}]]

    s3_lister = {"s3_paths": ["s3://batch-in/rows"], "excludes": ["**.csv"], "batch_size": 5}
    job_id = server.submit({"workers": 1, "file_path_lister": s3_lister})
    assert server.wait(job_id)["status"] == "status_succeeded"
    assert server.lines(job_id, ".batches")[0]["payload"] == [
        "s3://batch-in/rows/part-0.json",
        "s3://batch-in/rows/part-1.json",
    ]

    moto_s3.put("batch-in", "bad/rows.json", b'{"i": 0}\n{"i": \n')
    job_id = server.submit({"workers": 1, "delimited_files": {"s3_paths": ["s3://batch-in/bad/"], "batch_size": 1}})
    job = server.wait(job_id)
    assert job["status"] == "status_enqueue_failed"
    assert "s3://batch-in/bad/rows.json: line 2 is not valid JSON" in server.log(job_id)


def test_bad_requests_are_answered_clearly(server):
    status, answer = server.request("POST", "/batcher", {"workers": 0, "item_list": {"items": [1], "batch_size": 1}})
    assert status == 400 and "workers" in answer["error"]
    status, answer = server.request("POST", "/batcher", {"workers": 1, "item_list": {"items": [1]}})
    assert status == 400 and "item_list.batch_size" in answer["error"]
    status, answer = server.request("POST", "/batcher", b"{not json")
    assert status == 400 and "not valid JSON" in answer["error"]
    for method, path in (("GET", "/batcher?jobID=nosuchjob"), ("DELETE", "/batcher?jobID=nosuchjob")):
        status, answer = server.request(method, path)
        assert status == 404 and "nosuchjob" in answer["error"]
    status, _ = server.request("GET", "/_tritonize/jobs/batcher/nosuchjob/log")
    assert status == 404


def _endpoint_processes(serve):
    """{pid: (cmdline, environ)} of the Cortex endpoint's first process (a child of serve)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except (OSError, ValueError):
            continue
        if ppid == serve.process.pid and b"tritonize.cortex_endpoint" in cmdline:
            found[int(pid)] = (cmdline, environ)
    return found


def test_the_endpoint_has_the_admin_token_in_neither_its_argv_nor_its_environment(server):
    """It loads a BatchAPI's model for each job, so it has the token: from its stdin, where predictors of the
    same user cannot read it (the first test's job loaded and unloaded the model with it)."""
    token = re.search(r"tritonize-admin-token: ([A-Za-z0-9_-]+)", server.serve.output()).group(1).encode()
    endpoints = _endpoint_processes(server.serve)
    assert endpoints
    for cmdline, environ in endpoints.values():
        assert b"--admin-token-stdin" in cmdline
        assert token not in cmdline and token not in environ


def test_a_job_goes_on_when_the_endpoint_is_killed_and_restarted(server):
    job_id = server.submit({"workers": 1, "item_list": {"items": items(12), "batch_size": 1}, "config": {"sleep": 0.2}})
    server.wait(job_id, until=lambda job: job["batch_metrics"]["succeeded"] >= 2)
    (endpoint,) = _endpoint_processes(server.serve)
    os.kill(endpoint, signal.SIGKILL)  # as the OOM killer would: serve starts it again, its engine resumes the job
    job = server.wait(job_id, timeout=180, unreachable_ok=True)
    assert job["status"] == "status_succeeded", server.log(job_id)
    assert job["batch_metrics"]["succeeded"] == 12
    assert len(server.lines(job_id, ".complete")) == 1
    assert "resuming" in server.log(job_id)


def test_a_killed_worker_is_healed_and_its_batch_retried_while_the_realtime_api_answers(server):
    body = {"workers": 2, "item_list": {"items": items(16), "batch_size": 1}, "config": {"sleep": 0.3}}
    job_id = server.submit(body)
    server.wait(job_id, until=lambda job: job["batch_metrics"]["succeeded"] >= 2)
    victim = server.lines(job_id, ".pids")[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    answers = []
    while server.job(job_id)["status"] == "status_running":  # the realtime API keeps answering
        answers.append(server.request("POST", "/echo", {"during": "job"}))
        time.sleep(0.2)
    job = server.wait(job_id, timeout=180)
    assert job["status"] == "status_succeeded", server.log(job_id)
    assert job["batch_metrics"]["succeeded"] == 16
    assert "the worker crashed" in server.log(job_id)
    done = [b["payload"][0]["i"] for b in server.lines(job_id, ".batches")]
    assert sorted(set(done)) == list(range(16))
    assert answers and all(answer == (200, {"echo": {"during": "job"}}) for answer in answers), answers
    assert len(server.lines(job_id, ".complete")) == 1


def test_delete_stops_a_job_and_the_next_one_waits_its_turn(server):
    job_id = server.submit({"workers": 1, "item_list": {"items": items(40), "batch_size": 1}, "config": {"sleep": 0.2}})
    server.wait(job_id, until=lambda job: job["batch_metrics"]["succeeded"] >= 1)
    next_id = server.submit({"workers": 1, "item_list": {"items": items(2), "batch_size": 1}})
    server.wait(next_id, until=lambda job: job["status"] == "status_pending")  # one job per BatchAPI at a time
    status, answer = server.request("DELETE", f"/batcher?jobID={job_id}")
    assert (status, answer) == (200, {"message": f"stopped job {job_id}"})
    job = server.wait(job_id)
    assert job["status"] == "status_stopped"
    assert job["batch_metrics"]["succeeded"] < 40
    assert not server.lines(job_id, ".complete")  # a stopped job does not complete
    assert server.wait(next_id)["status"] == "status_succeeded"
    assert not server.batch_model_ready()


def test_a_predictor_whose_init_raises_is_a_worker_error_with_its_reason(server):
    job_id = server.submit(
        {"workers": 1, "item_list": {"items": items(4), "batch_size": 1}, "config": {"fail_init": 1}}
    )
    job = server.wait(job_id)
    assert job["status"] == "status_worker_error"
    assert "RuntimeError: no weights here" in server.log(job_id) and "no weights here" in job["message"]
    assert job["failed_attempts"] == 0 and not server.batch_model_ready()
    status, answer = server.request("POST", "/echo", {"after": "worker error"})  # the server serves on
    assert status == 200


def test_a_job_past_its_timeout_stops(server):
    body = {"workers": 1, "timeout": 4, "item_list": {"items": items(100), "batch_size": 1}, "config": {"sleep": 0.2}}
    job_id = server.submit(body)
    job = server.wait(job_id, timeout=120)
    assert job["status"] == "status_timed_out", server.log(job_id)
    assert job["batch_metrics"]["succeeded"] < 100
    # The status is final at once (Cortex); the batch in flight may finish, then the model is unloaded.
    deadline = time.monotonic() + 30
    while server.batch_model_ready() or "unloaded batcher" not in server.log(job_id):
        assert time.monotonic() < deadline, server.log(job_id)
        time.sleep(0.1)


def test_the_images_zipapp_runs_jobs_with_the_standard_library(server, tmp_path):
    """The endpoint as images run it: `python -I <zipapp>`; every tritonize module from the zip, the token on stdin."""
    zipapp = write_zipapp(str(tmp_path))
    token = re.search(r"tritonize-admin-token: ([A-Za-z0-9_-]+)", server.serve.output()).group(1)
    (port,) = free_ports(1)
    log_path = tmp_path / "zipapp.log"
    with open(log_path, "w") as log:
        front = subprocess.Popen(
            [sys.executable, "-I", "-v", zipapp, "--repository", str(server.repo), "--port", str(port)]
            + ["--triton-http-port", str(server.serve.http_port), "--triton-grpc-port", str(server.serve.grpc_port)]
            + ["--workers", "1", "--job-store", str(tmp_path / "store"), "--admin-token-stdin"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        front.stdin.write(token.encode() + b"\n")
        front.stdin.close()
        endpoint = copy.copy(server)
        endpoint.serve = types.SimpleNamespace(cortex_port=port, http_port=server.serve.http_port, output=lambda: "")
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert front.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.1)
        job_id = endpoint.submit({"workers": 1, "item_list": {"items": items(3), "batch_size": 2}})
        job = endpoint.wait(job_id)
        assert job["status"] == "status_succeeded", endpoint.log(job_id)
        assert len(server.lines(job_id, ".batches")) == 2
    finally:
        front.send_signal(signal.SIGTERM)
        front.wait(timeout=30)
    imports = re.findall(r"^import '(tritonize[\w.]*)' # (.*)$", log_path.read_text(), re.M)
    assert {name for name, _ in imports} >= {"tritonize.batch.runner", "tritonize.cortex_endpoint.jobs"}
    outside = [(name, where) for name, where in imports if "zipimporter" not in where]
    assert not outside, f"tritonize modules loaded from outside the zipapp: {outside}"


def test_a_job_survives_serve_restarted_mid_job(server):
    """Last: it restarts the module's server. Batches that succeeded before the restart never run again."""
    body = {"workers": 2, "item_list": {"items": items(30), "batch_size": 1}, "config": {"sleep": 0.2}}
    job_id = server.submit(body)
    server.wait(job_id, until=lambda job: job["batch_metrics"]["succeeded"] >= 4)
    assert server.serve.stop() == 0
    before = server.job_progress = _succeeded(server, job_id)
    assert 4 <= len(before) < 30
    server.start()
    job = server.wait(job_id, timeout=180)
    assert job["status"] == "status_succeeded", server.log(job_id)
    assert job["batch_metrics"]["succeeded"] == 30
    runs = [b["batch_id"] for b in server.lines(job_id, ".batches")]
    assert sorted(set(runs)) == [f"{i:06d}" for i in range(30)]
    assert all(runs.count(batch_id) == 1 for batch_id in before), runs
    assert len(server.lines(job_id, ".complete")) == 1
    assert "resuming" in server.log(job_id)


def _succeeded(server, job_id):
    path = server.store / "batcher" / job_id / "progress.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return {event["batch_id"] for event in events if event["event"] == "succeeded"}
