"""The job engine without Triton: submissions, globs, sources (local files, moto's S3), the store, the runner
against a fake Triton (retries, dead letters, crashes, stop, timeout, resume), the metrics text."""

import json
import os
import threading
import time

import pytest
from s3_fixtures import moto_s3  # noqa: F401  (fixture)

from tritonize.batch import sources
from tritonize.batch.globs import GlobError, compile_glob
from tritonize.batch.manager import JobEngine, JobManager
from tritonize.batch.metrics import prometheus_text
from tritonize.batch.runner import JobRunner
from tritonize.batch.store import JobStore, UnknownJob
from tritonize.batch.submission import SubmissionError, parse, parse_body
from tritonize.batch.triton import TritonError, infer_body

ITEMS = {"workers": 1, "item_list": {"items": [1, 2, 3, 4, 5], "batch_size": 2}}


# --- submissions


@pytest.mark.parametrize(
    "body, field",
    [
        ({"item_list": {"items": [1], "batch_size": 1}}, "workers: required"),
        ({**ITEMS, "workers": 0}, "workers: must be greater than or equal to 1"),
        ({**ITEMS, "workers": "2"}, "workers: expected an integer"),
        ({"workers": 1}, "specify exactly one of item_list, file_path_lister, delimited_files"),
        ({**ITEMS, "delimited_files": {"s3_paths": ["s3://b/x"], "batch_size": 1}}, "item_list: conflicts with"),
        ({"workers": 1, "item_list": {"items": [], "batch_size": 1}}, "item_list.items: must have at least 1"),
        ({"workers": 1, "item_list": {"items": [1], "batch_size": 0}}, "item_list.batch_size: must be greater"),
        ({"workers": 1, "item_list": {"items": [1]}}, "item_list.batch_size: required"),
        ({"workers": 1, "file_path_lister": {"s3_paths": [], "batch_size": 1}}, "file_path_lister.s3_paths: must"),
        ({"workers": 1, "file_path_lister": {"s3_paths": ["s3:///k"], "batch_size": 1}}, "not a valid S3 path"),
        (
            {"workers": 1, "delimited_files": {"s3_paths": ["/d"], "includes": ["[a"], "batch_size": 1}},
            "delimited_files.includes: '[a'",
        ),
        ({**ITEMS, "timeout": 0}, "timeout: must be greater than or equal to 1"),
        ({**ITEMS, "config": [1]}, "config: expected a JSON object"),
        ({**ITEMS, "sqs_dead_letter_queue": {"max_receive_count": 2}}, "sqs_dead_letter_queue.arn: cannot be empty"),
        ({**ITEMS, "dead_letter": {"path": "/x", "max_receive_count": 0}}, "dead_letter.max_receive_count: must"),
        ({**ITEMS, "wokers": 1}, "wokers: unknown field"),
    ],
)
def test_a_bad_submission_names_its_field(body, field):
    with pytest.raises(SubmissionError, match=None) as error:
        parse(body)
    assert field in str(error.value)
    assert error.value.status == 400


def test_a_submission_round_trips_through_its_stored_json():
    submission = parse(
        {
            **ITEMS,
            "timeout": 60,
            "config": {"a": {"b": 1}},
            "dead_letter": {"path": "s3://bucket/dead", "max_receive_count": 3},
        }
    )
    assert (submission.workers, submission.timeout, submission.max_receive_count) == (1, 60, 3)
    assert submission.dead_letter_path == "s3://bucket/dead"
    assert parse(submission.to_json()) == submission
    cortex = parse({**ITEMS, "sqs_dead_letter_queue": {"arn": "arn:aws:sqs:x", "max_receive_count": 4}})
    assert cortex.max_receive_count == 4 and parse(cortex.to_json()) == cortex
    with pytest.raises(SubmissionError, match="not valid JSON"):
        parse_body(b"{nope")


# --- globs: gobwas/glob with '/' as the separator, matched against the whole path


@pytest.mark.parametrize(
    "pattern, path, matched",
    [
        ("s3://bucket/*.json", "s3://bucket/a.json", True),
        ("s3://bucket/*.json", "s3://bucket/dir/a.json", False),
        ("s3://bucket/**.json", "s3://bucket/dir/a.json", True),
        ("**.json", "/data/a.json", True),
        ("**/a?.json", "/data/ab.json", True),
        ("**/a?.json", "/data/a/.json", False),
        ("**/{a,b}.csv", "/x/b.csv", True),
        ("**/[!a]*.csv", "/x/a1.csv", False),
        ("**/[a-c]*.csv", "/x/c1.csv", True),
        ("*.json", "s3://bucket/a.json", False),
    ],
)
def test_globs_match_as_cortex_did(pattern, path, matched):
    assert bool(compile_glob(pattern).match(path)) is matched


def test_a_bad_glob_is_refused():
    for pattern in ("[abc", "{a,b", "x\\"):
        with pytest.raises(GlobError):
            compile_glob(pattern)


# --- sources


def _source(body):
    return parse(body).source


def test_item_list_is_cut_into_batches():
    assert list(sources.batches(_source(ITEMS))) == [[1, 2], [3, 4], [5]]


def _files(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.json").write_text('{"x": 1}\n{"x": 2}\n\n{"x": 3}\n')
    (data / "sub" / "b.json").write_text('{"x": 4}\n')
    (data / "skip.txt").write_text("not json\n")
    return data


def test_local_files_with_includes_and_excludes(tmp_path):
    data = _files(tmp_path)
    lister = {"s3_paths": [str(data)], "includes": ["**.json"], "batch_size": 1}
    assert list(sources.batches(_source({"workers": 1, "file_path_lister": lister}))) == [
        [str(data / "a.json")],
        [str(data / "sub" / "b.json")],
    ]
    url = {"s3_paths": [f"file://{data}"], "excludes": ["**/sub/**", "**.txt"], "batch_size": 5}
    assert list(sources.batches(_source({"workers": 1, "file_path_lister": url}))) == [[f"file://{data}/a.json"]]
    delimited = {"s3_paths": [str(data)], "includes": ["**.json"], "batch_size": 3}
    assert list(sources.batches(_source({"workers": 1, "delimited_files": delimited}))) == [
        [{"x": 1}, {"x": 2}, {"x": 3}],
        [{"x": 4}],
    ]


def test_a_bad_line_names_its_file_and_line(tmp_path):
    data = _files(tmp_path)
    delimited = {"s3_paths": [str(data / "skip.txt")], "batch_size": 3}
    with pytest.raises(sources.SourceError, match=r"skip.txt: line 1 is not valid JSON"):
        list(sources.batches(_source({"workers": 1, "delimited_files": delimited})))
    nothing = {"s3_paths": [str(data)], "includes": ["**.csv"], "batch_size": 3}
    with pytest.raises(sources.SourceError, match="no files match"):
        sources.dry_run(_source({"workers": 1, "file_path_lister": nothing}))


def test_s3_sources_through_moto(moto_s3, monkeypatch):  # noqa: F811
    for name, value in moto_s3.env.items():
        monkeypatch.setenv(name, value)
    moto_s3.reset_bucket("jobs")
    moto_s3.put("jobs", "in/part-1.json", b'{"i": 1}\n{"i": 2}\n')
    moto_s3.put("jobs", "in/part-2.json", b'{"i": 3}\n')
    moto_s3.put("jobs", "in/notes.txt", b"hello\n")
    moto_s3.put("jobs", "input-other/x.json", b'{"i": 9}\n')
    lister = {"s3_paths": ["s3://jobs/in/"], "includes": ["s3://jobs/**.json"], "batch_size": 2}
    assert sources.dry_run(_source({"workers": 1, "file_path_lister": lister})) == [
        "s3://jobs/in/part-1.json",
        "s3://jobs/in/part-2.json",
    ]
    prefix = {"s3_paths": ["s3://jobs/in"], "excludes": ["**.txt"], "batch_size": 2}  # a plain prefix, as Cortex
    assert len(sources.dry_run(_source({"workers": 1, "file_path_lister": prefix}))) == 3
    delimited = {"s3_paths": ["s3://jobs/in/"], "includes": ["**.json"], "batch_size": 2}
    assert list(sources.batches(_source({"workers": 1, "delimited_files": delimited}))) == [
        [{"i": 1}, {"i": 2}],
        [{"i": 3}],
    ]
    with pytest.raises(sources.SourceError, match="listing s3://missing-bucket/x failed"):
        sources.dry_run(
            _source({"workers": 1, "file_path_lister": {"s3_paths": ["s3://missing-bucket/x"], "batch_size": 1}})
        )


# --- a fake Triton


class FakeTriton:
    """What the runner sees of Triton: predict fails for `failing` items, `crash_once` items kill their worker
    once (the watchdog heals it: a new nonce)."""

    def __init__(self, failing=(), crash_once=(), delay_s=0.0, load_error=None):
        self.failing = set(failing)
        self.crash_once = set(crash_once)
        self.delay_s = delay_s
        self.load_error = load_error
        self.calls = []  # (batch_id, items)
        self.completions = 0
        self.loads = []
        self.unloads = 0
        self.nonce = "n0"
        self.lock = threading.Lock()

    def __call__(self):
        return self

    def load(self, api, config):
        if self.load_error:
            raise TritonError(400, self.load_error)
        self.loads.append(config)

    def unload(self, api):
        self.unloads += 1

    def generation(self, api):
        return True, self.nonce

    def state(self, api):
        return "UNAVAILABLE"

    def infer(self, api, batch_text, batch_id, on_job_complete=False):
        if on_job_complete:
            self.completions += 1
            return
        items = json.loads(batch_text)
        with self.lock:
            self.calls.append((batch_id, items))
        time.sleep(self.delay_s)
        crashing = self.crash_once.intersection(items)
        if crashing:
            self.crash_once -= crashing
            self.nonce += "+"  # healed
            raise TritonError(500, "Stub process 'api_0_0' is not healthy.")
        if self.failing.intersection(items):
            raise TritonError(500, "predict() raised ValueError: bad item")

    def close(self):
        pass


def _job(tmp_path, body, api="batcher"):
    manager = JobManager(str(tmp_path / "store"))
    record = manager.submit(api, parse(body))
    return manager, record["job_id"]


def _runner(manager, job_id, triton, shutdown=None, api="batcher"):
    def load_config(api, workers, job_spec):
        return {"name": api, "instance_group": [{"count": workers}], "job_spec": job_spec}

    return JobRunner(manager.store, api, job_id, triton, load_config, shutdown or threading.Event(), heal_timeout_s=5)


def _run(manager, job_id, triton, **kwargs):
    runner = _runner(manager, job_id, triton, **kwargs)
    assert runner.enqueue()
    runner.run()
    return manager.get("batcher", job_id)


def test_a_job_runs_every_batch_and_on_job_complete_once(tmp_path):
    manager, job_id = _job(tmp_path, {**ITEMS, "workers": 2, "config": {"k": "v"}, "timeout": 600})
    triton = FakeTriton()
    status = _run(manager, job_id, triton)
    assert status["status"] == "status_succeeded"
    assert status["batch_metrics"]["succeeded"] == 3 and status["batch_metrics"]["failed"] == 0
    assert status["batches_in_queue"] == 0 and status["end_time"]
    assert sorted(items for _, items in triton.calls) == [[1, 2], [3, 4], [5]]
    assert triton.completions == 1 and triton.unloads == 1
    spec = triton.loads[0]["job_spec"]
    assert triton.loads[0]["instance_group"][0]["count"] == 2
    assert spec["job_id"] == job_id and spec["config"] == {"k": "v"} and spec["total_batch_count"] == 3
    assert spec["kind"] == "BatchAPI" and spec["timeout"] == 600
    assert "on_job_complete ran" in manager.log("batcher", job_id)


def test_failing_batches_are_retried_then_dead_lettered(tmp_path):
    dead = tmp_path / "dead"
    body = {**ITEMS, "dead_letter": {"path": str(dead), "max_receive_count": 3}}
    manager, job_id = _job(tmp_path, body)
    triton = FakeTriton(failing={3})
    status = _run(manager, job_id, triton)
    assert status["status"] == "status_completed_with_failures"
    assert status["batch_metrics"] == {"succeeded": 2, "failed": 1, "average_time_per_batch": pytest.approx(0, abs=1)}
    assert [items for _, items in triton.calls].count([3, 4]) == 3
    letter = json.loads((dead / job_id / "000001.json").read_text())
    assert letter["items"] == [3, 4] and letter["attempts"] == 3 and "bad item" in letter["error"]
    assert triton.completions == 1
    assert "attempt 3 of 3 failed: predict() raised ValueError: bad item" in manager.log("batcher", job_id)


def test_without_a_dead_letter_setting_failed_batches_stay_in_the_store(tmp_path):
    manager, job_id = _job(tmp_path, ITEMS)
    _run(manager, job_id, FakeTriton(failing={5}))
    folder = manager.store.dead_letter_dir("batcher", job_id)
    assert json.loads(open(os.path.join(folder, "000002.json")).read())["items"] == [5]
    assert manager.get("batcher", job_id)["dead_letter"] == folder


def test_a_crashed_worker_is_healed_and_its_batch_run_again_without_counting_an_attempt(tmp_path):
    manager, job_id = _job(tmp_path, {**ITEMS, "dead_letter": {"max_receive_count": 1}})
    triton = FakeTriton(crash_once={3})
    status = _run(manager, job_id, triton)
    assert status["status"] == "status_succeeded", manager.log("batcher", job_id)
    assert [items for _, items in triton.calls].count([3, 4]) == 2
    assert "the worker crashed" in manager.log("batcher", job_id)


def test_a_model_that_fails_to_load_is_a_worker_error_with_tritons_reason(tmp_path):
    manager, job_id = _job(tmp_path, ITEMS)
    status = _run(manager, job_id, FakeTriton(load_error="load failed for model 'batcher': boom in __init__"))
    assert status["status"] == "status_worker_error"
    assert "boom in __init__" in manager.log("batcher", job_id)


def test_a_predictor_that_cannot_start_is_a_worker_error_not_a_retry(tmp_path):
    manager, job_id = _job(tmp_path, {**ITEMS, "dead_letter": {"max_receive_count": 5}})
    triton = FakeTriton()

    def not_started(api, batch_text, batch_id, on_job_complete=False):
        triton.calls.append(batch_id)
        raise TritonError(503, "worker did not start: Predictor.__init__ failed: OSError: no weights")

    triton.infer = not_started
    status = _run(manager, job_id, triton)
    assert status["status"] == "status_worker_error"
    assert "no weights" in status["message"] and len(triton.calls) <= 2
    assert triton.unloads == 1


def test_a_store_that_fails_mid_job_ends_the_job_not_the_engine(tmp_path, monkeypatch):
    manager, job_id = _job(tmp_path, {"workers": 2, "item_list": {"items": list(range(10)), "batch_size": 1}})
    runner = _runner(manager, job_id, FakeTriton())
    runner.enqueue()

    def full(self, event, **fields):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tritonize.batch.store.ProgressLog.append", full)
    runner.run()
    status = manager.get("batcher", job_id)
    assert status["status"] == "status_unexpected_error" and "No space left" in status["message"]


def test_a_bad_delimited_file_fails_while_enqueuing(tmp_path):
    data = _files(tmp_path)
    manager, job_id = _job(tmp_path, {"workers": 1, "delimited_files": {"s3_paths": [str(data)], "batch_size": 2}})
    runner = _runner(manager, job_id, FakeTriton())
    assert not runner.enqueue()
    status = manager.get("batcher", job_id)
    assert status["status"] == "status_enqueue_failed" and status["end_time"]
    assert "skip.txt: line 1 is not valid JSON" in manager.log("batcher", job_id)


def test_stop_and_timeout_end_a_job_early(tmp_path):
    manager, job_id = _job(tmp_path, {"workers": 1, "item_list": {"items": list(range(50)), "batch_size": 1}})
    triton = FakeTriton(delay_s=0.05)
    threading.Timer(0.3, manager.stop, args=("batcher", job_id)).start()
    status = _run(manager, job_id, triton)
    assert status["status"] == "status_stopped"
    assert 0 < status["batch_metrics"]["succeeded"] < 50 and triton.completions == 0 and triton.unloads == 1

    manager, job_id = _job(
        tmp_path, {"workers": 1, "timeout": 1, "item_list": {"items": list(range(50)), "batch_size": 1}}
    )
    status = _run(manager, job_id, FakeTriton(delay_s=0.05))
    assert status["status"] == "status_timed_out"


def test_a_resumed_job_never_runs_a_finished_batch_again(tmp_path):
    items = list(range(20))
    manager, job_id = _job(tmp_path, {"workers": 2, "item_list": {"items": items, "batch_size": 1}})
    shutdown = threading.Event()
    first = FakeTriton(delay_s=0.05)
    threading.Timer(0.3, shutdown.set).start()
    runner = _runner(manager, job_id, first, shutdown=shutdown)
    runner.enqueue()
    runner.run()
    assert manager.get("batcher", job_id)["status"] == "status_running"  # resumable
    done = manager.store.read_progress("batcher", job_id).succeeded
    assert 0 < len(done) < 20
    second = FakeTriton()
    status = _run(manager, job_id, second)
    assert status["status"] == "status_succeeded" and status["batch_metrics"]["succeeded"] == 20
    assert not done & {batch_id for batch_id, _ in second.calls}
    assert second.completions == 1


def test_the_engine_runs_one_job_per_api_at_a_time_and_resumes_from_the_store(tmp_path):
    root = str(tmp_path / "store")
    manager = JobManager(root)
    triton = FakeTriton(delay_s=0.02)
    body = {"workers": 1, "item_list": {"items": list(range(10)), "batch_size": 1}}
    first = manager.submit("batcher", parse(body))["job_id"]
    second = manager.submit("batcher", parse(body))["job_id"]
    other = manager.submit("gone", parse(body))["job_id"]

    def load_config(api, workers, spec):
        return {"name": api}

    engine = JobEngine(root, ["batcher"], triton, load_config, log=lambda message: None)
    engine.start()
    seen = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses = {job["job_id"]: job["status"] for job in manager.list("batcher")}
        seen.add(tuple(sorted(statuses.values())))
        assert list(statuses.values()).count("status_running") <= 1
        if all(status == "status_succeeded" for status in statuses.values()):
            break
        time.sleep(0.02)
    engine.stop()
    assert [job["job_id"] for job in manager.list("batcher")] == [second, first]  # newest first
    assert ("status_pending", "status_running") in seen
    assert manager.get("gone", other)["status"] == "status_unexpected_error"
    text = prometheus_text(manager.list("batcher"))
    assert f'tritonize_batch_job_batches{{api="batcher",job_id="{first}",state="succeeded"}} 10' in text
    assert f'tritonize_batch_job_running{{api="batcher",job_id="{first}"}} 0' in text
    with pytest.raises(UnknownJob):
        manager.get("batcher", "nosuchjob")
    with pytest.raises(UnknownJob):
        manager.get("../etc", "x")


def test_the_store_writes_whole_files(tmp_path):
    store = JobStore(str(tmp_path))
    record = {"job_id": "abc", "api_name": "api", "status": "status_enqueuing"}
    store.create(record, {"workers": 1})
    store.write_record({**record, "status": "status_running"})
    assert store.read_record("api", "abc")["status"] == "status_running"
    assert not [name for name in os.listdir(store.job_dir("api", "abc")) if name.endswith(".tmp")]
    with open(os.path.join(store.job_dir("api", "abc"), "progress.jsonl"), "w") as f:
        f.write('{"event":"succeeded","batch_id":"000000"}\n{"event":"succ')  # a line being written
    assert store.read_progress("api", "abc").succeeded == {"000000"}


def test_the_batch_request_carries_the_batch_as_binary_data():
    headers, body = infer_body('[1, "é"]', "000003", on_job_complete=False)
    size = int(headers["Inference-Header-Content-Length"])
    header = json.loads(body[:size])
    assert header["inputs"][0]["name"] == "BATCH" and header["parameters"] == {"batch_id": "000003"}
    assert body[size + 4 :].decode() == '[1, "é"]'
    _, body = infer_body("null", "x", on_job_complete=True)
    assert b'"tritonize_on_job_complete": true' in body


def test_dead_letters_go_to_an_s3_prefix(tmp_path, moto_s3, monkeypatch):  # noqa: F811
    for name, value in moto_s3.env.items():
        monkeypatch.setenv(name, value)
    moto_s3.reset_bucket("dead")
    manager, job_id = _job(tmp_path, {**ITEMS, "dead_letter": {"path": "s3://dead/letters/", "max_receive_count": 2}})
    status = _run(manager, job_id, FakeTriton(failing={1}))
    assert status["status"] == "status_completed_with_failures"
    body = moto_s3.client.get_object(Bucket="dead", Key=f"letters/{job_id}/000000.json")["Body"].read()
    assert json.loads(body)["items"] == [1, 2] and json.loads(body)["attempts"] == 2
    # a prefix that cannot be written: the letter stays in the job store, nothing lost
    manager, job_id = _job(tmp_path, {**ITEMS, "dead_letter": {"path": "s3://no-such-bucket/x"}})
    _run(manager, job_id, FakeTriton(failing={5}))
    assert os.path.exists(os.path.join(manager.store.dead_letter_dir("batcher", job_id), "000002.json"))
    assert "kept in the job store instead" in manager.log("batcher", job_id)
