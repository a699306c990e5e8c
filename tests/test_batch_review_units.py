"""A demanding Cortex user's review of the job engine (issue 25), without Triton: stopping a job that ended,
GET's api_spec, OOM-killed workers told from other crashes, submissions at Cortex's limits."""

import functools
import json
import threading
import time

import pytest
from test_batch_jobs_units import ITEMS, FakeTriton, _job

from tritonize.adapter.runtime.repository_model import ApiSettings, PredictorSettings
from tritonize.batch import oom
from tritonize.batch.manager import JobNotInProgress
from tritonize.batch.runner import JobRunner
from tritonize.batch.submission import SubmissionError, parse, parse_body
from tritonize.cortex_endpoint.app import CORS, CORS_WITH_JOBS
from tritonize.cortex_endpoint.jobs import JobRoutes, _answer

# --- DELETE of a job that already ended (Cortex v0.33: job.go StopJob, errors.go ErrorJobIsNotInProgress)


def _ended_job(tmp_path):
    manager, job_id = _job(tmp_path, ITEMS)
    record = manager.store.read_record("batcher", job_id)
    record.update(status="status_succeeded", end_time=record["created_time"])
    manager.store.write_record(record)
    return manager, job_id


def test_stopping_a_job_that_ended_is_cortexs_400_and_changes_nothing(tmp_path):
    manager, job_id = _ended_job(tmp_path)
    with pytest.raises(JobNotInProgress) as raised:
        manager.stop("batcher", job_id)
    assert str(raised.value) == f"{job_id} (batcher api): cannot stop BatchAPI job because it is not in progress"
    assert not manager.store.stop_requested("batcher", job_id)
    assert manager.get("batcher", job_id)["status"] == "status_succeeded"
    routes = JobRoutes(str(tmp_path / "store"), ["batcher"])
    status, _, body = _answer(lambda: routes._stop("batcher", job_id))
    assert status == 400 and "not in progress" in json.loads(body)["error"]


def test_stopping_a_job_in_progress_still_answers_cortexs_message(tmp_path):
    manager, job_id = _job(tmp_path, ITEMS)
    routes = JobRoutes(str(tmp_path / "store"), ["batcher"])
    status, _, body = _answer(lambda: routes._stop("batcher", job_id))
    assert (status, json.loads(body)) == (200, {"message": f"stopped job {job_id}"})
    assert manager.store.stop_requested("batcher", job_id)


# --- GET's api_spec: what the built repository knows of the API, never predictor.env's values

SECRET = "s3cr3t-value-never-sent"


def _settings(endpoint=None):
    predictor = PredictorSettings(
        path="batcher.py",
        config={"threshold": 0.5},
        python_path=["lib"],
        env={"AWS_SECRET_ACCESS_KEY": SECRET, "MODE": "fast"},
    )
    return ApiSettings(
        name="batcher", predictor=predictor, kind="BatchAPI", endpoint=endpoint, dependencies={"pip": "req.txt"}
    )


class _Request:
    headers = [(b"host", b"example:8888")]


def test_get_answers_the_apis_spec_without_env_values(tmp_path):
    manager, job_id = _job(tmp_path, ITEMS)
    routes = JobRoutes(str(tmp_path / "store"), ["batcher"], {"batcher": _settings(endpoint="v1/score")})
    status, _, body = _answer(lambda: routes._get("batcher", job_id, routes._endpoint(_Request(), "batcher")))
    assert status == 200 and SECRET.encode() not in body and b"fast" not in body
    answer = json.loads(body)
    spec = answer["api_spec"]
    assert spec["name"] == "batcher" and spec["kind"] == "BatchAPI"
    assert spec["predictor"]["type"] == "python" and spec["predictor"]["path"] == "batcher.py"
    assert spec["predictor"]["config"] == {"threshold": 0.5} and spec["predictor"]["python_path"] == "lib"
    assert sorted(spec["predictor"]["env"]) == ["AWS_SECRET_ACCESS_KEY", "MODE"]
    assert spec["predictor"]["dependencies"] == {"pip": "req.txt"}
    assert spec["networking"] == {"endpoint": "/v1/score"}
    assert answer["endpoint"] == "http://example:8888/v1/score"
    assert answer["job_status"]["job_id"] == job_id


def test_an_api_without_networking_endpoint_answers_on_its_name(tmp_path):
    routes = JobRoutes(str(tmp_path / "store"), ["batcher"], {"batcher": _settings()})
    assert routes._api_spec("batcher")["networking"] == {"endpoint": "/batcher"}
    assert routes._endpoint(_Request(), "batcher") == "http://example:8888/batcher"


def test_cors_lists_delete_when_the_endpoint_has_jobs():
    assert dict(CORS)[b"access-control-allow-methods"] == b"GET, POST, OPTIONS"  # realtime only: as Cortex's nginx
    assert dict(CORS_WITH_JOBS)[b"access-control-allow-methods"] == b"GET, POST, DELETE, OPTIONS"


# --- workers killed by the kernel's OOM killer


class MemoryEvents:
    """A fake cgroup v2 memory.events whose oom_kill counter the fake Triton raises when it crashes a worker."""

    def __init__(self, path):
        self.path = path
        self.kills = 0
        self.write()

    def write(self):
        self.path.write_text(f"low 0\nhigh 0\nmax 4\noom 2\noom_kill {self.kills}\noom_group_kill 0\n")

    def kill(self):
        self.kills += 1
        self.write()


class OomTriton(FakeTriton):
    """Every batch holding a `killing` item crashes its worker; with `events`, as the OOM killer does."""

    def __init__(self, killing, events=None):
        super().__init__()
        self.killing = set(killing)
        self.events = events

    def infer(self, api, batch_text, batch_id, on_job_complete=False):
        if on_job_complete:
            return super().infer(api, batch_text, batch_id, on_job_complete)
        batch = json.loads(batch_text)
        if not self.killing:
            with self.lock:
                self.calls.append((batch_id, batch))
            return None
        if self.killing.intersection(batch):
            with self.lock:
                self.calls.append((batch_id, json.loads(batch_text)))
            if self.events is not None:
                self.events.kill()
            self.nonce += "+"  # healed
            raise TritonError(500, "Stub process 'batcher_0_0' is not healthy.")
        return super().infer(api, batch_text, batch_id, on_job_complete)


from tritonize.batch.triton import TritonError  # noqa: E402


def _run_with(manager, job_id, triton, counter):
    def load_config(api, workers, job_spec):
        return {"name": api, "instance_group": [{"count": workers}]}

    runner = JobRunner(
        manager.store, "batcher", job_id, triton, load_config, threading.Event(), heal_timeout_s=5, oom=counter
    )
    assert runner.enqueue()
    runner.run()
    return manager.get("batcher", job_id)


def test_a_batch_whose_worker_the_oom_killer_kills_ends_the_job_status_worker_oom(tmp_path):
    events = MemoryEvents(tmp_path / "memory.events")
    manager, job_id = _job(tmp_path, {"workers": 1, "item_list": {"items": [1, 2, 3, 4, 5], "batch_size": 1}})
    status = _run_with(manager, job_id, OomTriton({2}, events), oom.OomCounter(str(events.path)))
    log = manager.log("batcher", job_id)
    assert status["status"] == "status_worker_oom", log
    assert "OOM killer" in status["message"] and "out of memory" in status["message"]
    assert "the worker killed by the kernel's OOM killer" in log
    letter = json.loads(open(f"{status['dead_letter']}/000001.json").read())
    assert letter["worker_crashes"] == 3 and "OOM killer" in letter["error"]
    assert status["batch_metrics"]["failed"] == 1


def test_a_crash_the_counter_does_not_see_is_a_crash(tmp_path):
    events = MemoryEvents(tmp_path / "memory.events")
    manager, job_id = _job(tmp_path, {"workers": 1, "item_list": {"items": [1, 2, 3], "batch_size": 1}})
    status = _run_with(manager, job_id, OomTriton({2}), oom.OomCounter(str(events.path)))
    assert status["status"] == "status_completed_with_failures", manager.log("batcher", job_id)
    assert "OOM" not in manager.log("batcher", job_id)
    # and no counter at all (no cgroup file readable): crashes stay crashes
    manager, job_id = _job(tmp_path, {"workers": 1, "item_list": {"items": [1, 2, 3], "batch_size": 1}})
    status = _run_with(manager, job_id, OomTriton({2}), oom.OomCounter(str(tmp_path / "absent")))
    assert status["status"] == "status_completed_with_failures"


def test_the_oom_counter_is_found_for_cgroup_v2_and_v1(tmp_path):
    root = tmp_path / "cgroup"
    (root / "kubepods" / "pod1").mkdir(parents=True)
    (root / "kubepods" / "pod1" / "memory.events").write_text("oom 1\noom_kill 7\n")
    proc = tmp_path / "cgroup.txt"
    proc.write_text("0::/kubepods/pod1\n")
    (path,) = oom.counter_paths(str(proc), str(root))
    assert oom.read_oom_kills(path) == 7
    (root / "memory.events").write_text("oom_kill 1\n")  # inside a cgroup namespace: "0::/" is the root
    proc.write_text("0::/\n")
    assert oom.counter_paths(str(proc), str(root)) == [str(root / "memory.events")]
    (root / "memory" / "docker" / "abc").mkdir(parents=True)
    (root / "memory" / "docker" / "abc" / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
    )
    proc.write_text("12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n")
    (path,) = oom.counter_paths(str(proc), str(root))
    assert oom.read_oom_kills(path) == 3
    counter = oom.OomCounter(path)
    before = counter.read()
    assert not counter.rose_since(before)
    (root / "memory" / "docker" / "abc" / "memory.oom_control").write_text("oom_kill 4\n")
    assert counter.rose_since(before)
    assert not oom.OomCounter(str(tmp_path / "none")).rose_since(None)


# --- submissions at Cortex's limits


def test_items_of_every_json_kind_and_unicode_are_kept_exactly(tmp_path):
    items = [None, 0, -1.5, 1e300, True, "", "naïve ☃ 🚀 \u2028", {"a": [{"b": None}]}, [[]], "\x00"]
    manager, job_id = _job(tmp_path, {"workers": 1, "item_list": {"items": items, "batch_size": 3}})
    triton = OomTriton(())  # records each batch (FakeTriton's own checks take hashable items only)
    status = _run_with(manager, job_id, triton, oom.OomCounter(str(tmp_path / "none")))
    assert status["status"] == "status_succeeded"
    got = [item for _, batch in sorted(triton.calls) for item in batch]
    assert got == items


def test_an_item_at_cortexs_size_limit_passes_and_one_over_it_is_named():
    near = "x" * (256 * 1024 - 2)  # json.dumps adds the quotes: exactly the limit
    assert parse({"workers": 1, "item_list": {"items": [near], "batch_size": 1}}).source.items == [near]
    with pytest.raises(SubmissionError, match=r"item_list.items\[1\]: has size 262145 bytes"):
        parse({"workers": 1, "item_list": {"items": [1, near + "y"], "batch_size": 1}})


def test_a_realtime_payload_posted_to_a_batch_api_says_what_a_batch_api_takes():
    for body in (b'{"text": "hello"}', b'["a", "b"]', b'"hello"'):
        with pytest.raises(SubmissionError, match="BatchAPI") as raised:
            parse_body(body)
        assert "workers" in str(raised.value) and "item_list" in str(raised.value)


# --- on_job_complete raising (Cortex v0.33 batch.py: UserRuntimeException, the worker exits 1: a worker error)


class CompletionFails(FakeTriton):
    def infer(self, api, batch_text, batch_id, on_job_complete=False):
        if on_job_complete:
            self.completions += 1
            raise TritonError(500, "on_job_complete() raised KeyError: 'bucket'")
        return super().infer(api, batch_text, batch_id)


def test_on_job_complete_raising_is_a_worker_error_and_runs_once(tmp_path):
    manager, job_id = _job(tmp_path, ITEMS)
    triton = CompletionFails()
    status = _run_with(manager, job_id, triton, oom.OomCounter(str(tmp_path / "none")))
    assert status["status"] == "status_worker_error"
    assert status["message"] == "on_job_complete failed: on_job_complete() raised KeyError: 'bucket'"
    assert status["batch_metrics"]["succeeded"] == 3 and triton.completions == 1
    # resumed after a restart (the record says running again): on_job_complete is not run twice, the status stays
    record = manager.store.read_record("batcher", job_id)
    record.update(status="status_running", end_time=None)
    manager.store.write_record(record)
    again = _run_with(manager, job_id, triton, oom.OomCounter(str(tmp_path / "none")))
    assert again["status"] == "status_worker_error" and triton.completions == 1


def test_an_unusable_store_is_a_503_for_the_job_routes(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # a store root that cannot be a folder (a read-only mount answers the same OSError)
    routes = JobRoutes(str(blocker / "store"), ["batcher"])
    status, _, body = _answer(lambda: routes._submit("batcher", json.dumps(ITEMS).encode(), False))
    assert status == 503 and "job store is not usable" in json.loads(body)["error"]
    assert str(tmp_path) not in json.loads(body)["error"]


def test_jobs_of_one_api_run_oldest_first_even_when_an_older_one_enqueues_longer(tmp_path, monkeypatch):
    from tritonize.batch import runner as runner_module
    from tritonize.batch.manager import JobEngine, JobManager

    slow_batches = runner_module.sources.batches

    def batches(source):  # the older job's source takes a while to list (a big S3 prefix)
        if len(source.items) == 10:
            time.sleep(1.0)
        return slow_batches(source)

    monkeypatch.setattr(runner_module.sources, "batches", batches)
    root = str(tmp_path / "store")
    manager = JobManager(root)
    manager.submit("batcher", parse({"workers": 1, "item_list": {"items": list(range(10)), "batch_size": 5}}))
    manager.submit("batcher", parse({"workers": 1, "item_list": {"items": [99], "batch_size": 1}}))
    triton = FakeTriton()
    engine = JobEngine(root, ["batcher"], triton, lambda api, workers, spec: {"name": api}, log=lambda m: None)
    engine.start()
    deadline = time.monotonic() + 30
    while not all(job["end_time"] for job in manager.list("batcher")):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    engine.stop()
    assert [items for _, items in triton.calls] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [99]]


# --- DELETE and timeouts: the status says so at once (Cortex), in-flight batches may still finish


class SlowTriton(FakeTriton):
    def __init__(self, delay_s, unload_state="UNAVAILABLE"):
        super().__init__(delay_s=delay_s)
        self.unload_state = unload_state

    def state(self, api):
        return self.unload_state


def test_a_stopped_job_says_status_stopped_while_its_batch_in_flight_finishes(tmp_path, monkeypatch):
    from tritonize.batch import runner as runner_module

    monkeypatch.setattr(runner_module, "UNLOAD_WAIT_S", 0.5)
    manager, job_id = _job(tmp_path, {"workers": 1, "item_list": {"items": [1, 2, 3], "batch_size": 1}})
    triton = SlowTriton(delay_s=3.0, unload_state="UNLOADING")  # Triton still unloading: a batch holds the worker
    thread = threading.Thread(target=_run_with, args=(manager, job_id, triton, oom.OomCounter(str(tmp_path / "x"))))
    thread.start()
    deadline = time.monotonic() + 10
    while not triton.calls:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    manager.stop("batcher", job_id)
    asked = time.monotonic()
    while manager.get("batcher", job_id)["status"] != "status_stopped":
        assert time.monotonic() - asked < 1.5, "status_stopped only after the batch in flight ended"
        time.sleep(0.02)
    assert thread.is_alive()  # the batch in flight is still running
    thread.join(30)
    status = manager.get("batcher", job_id)
    assert status["status"] == "status_stopped" and len(triton.calls) == 1
    log = manager.log("batcher", job_id)
    assert log.count("job stopped") == 1
    assert "still unloading after 0.5 s" in log and "unloaded batcher" not in log


# --- local paths: only from this machine (any client could otherwise list and read its files through dryRun)


class _Conn:
    def __init__(self, peer):
        self.transport = type("T", (), {"get_extra_info": lambda self, name: peer})()


@pytest.mark.parametrize(
    "peer, local",
    [
        (("127.0.0.1", 5), True),
        (("::1", 5, 0, 0), True),
        (("::ffff:127.0.0.1", 5, 0, 0), True),
        (("10.1.2.3", 5), False),
        (("::ffff:10.1.2.3", 5, 0, 0), False),
        (None, False),
    ],
)
def test_only_loopback_clients_count_as_this_machine(peer, local):
    from tritonize.cortex_endpoint.jobs import _from_loopback

    assert _from_loopback(_Conn(peer)) is local


def test_a_remote_client_names_s3_only(tmp_path):
    routes = JobRoutes(str(tmp_path / "store"), ["batcher"])
    listing = {"workers": 1, "file_path_lister": {"s3_paths": ["/root"], "batch_size": 1}}
    for body in (
        listing,
        {**listing, "file_path_lister": {"s3_paths": ["file:///etc"], "batch_size": 1}},
        {**ITEMS, "dead_letter": {"path": "/tmp/anywhere"}},
    ):
        for dry_run in (True, False):
            status, _, answer = _answer(
                functools.partial(routes._submit, "batcher", json.dumps(body).encode(), dry_run, False)
            )
            assert status == 400 and "accepted only from this machine" in json.loads(answer)["error"], answer
    s3 = {"workers": 1, "file_path_lister": {"s3_paths": ["s3://bucket/x"], "batch_size": 1}}
    status, _, answer = _answer(lambda: routes._submit("batcher", json.dumps(s3).encode(), False, False))
    assert status == 200, answer
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.json").write_text("1\n")
    local = {"workers": 1, "file_path_lister": {"s3_paths": [str(tmp_path / "data")], "batch_size": 1}}
    status, _, answer = _answer(lambda: routes._submit("batcher", json.dumps(local).encode(), True, True))
    assert status == 200 and b"a.json" in answer


def test_an_ended_jobs_counts_are_kept_in_its_record_and_its_progress_log_never_read_again(tmp_path, monkeypatch):
    from tritonize.batch.manager import SUMMARY_KEY, JobEngine, JobManager

    root = str(tmp_path / "store")
    manager = JobManager(root)
    job_id = manager.submit("batcher", parse({"workers": 2, "item_list": {"items": list(range(50)), "batch_size": 1}}))
    job_id = job_id["job_id"]
    engine = JobEngine(root, ["batcher"], FakeTriton(failing={7}), lambda a, w, s: {"name": a}, log=lambda m: None)
    engine.start()
    deadline = time.monotonic() + 30
    while SUMMARY_KEY not in manager.store.read_record("batcher", job_id):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    engine.stop()
    before = manager.get("batcher", job_id)

    def unread(api, job):
        raise AssertionError("an ended job's progress log was read again")

    monkeypatch.setattr(manager.store, "read_progress", unread)
    (job,) = manager.list("batcher")
    assert job == before and SUMMARY_KEY not in job
    assert job["batch_metrics"]["succeeded"] == 49 and job["batch_metrics"]["failed"] == 1
    assert job["failed_attempts"] == 1 and job["status"] == "status_completed_with_failures"


def test_a_store_that_turns_read_only_mid_job_still_unloads_the_jobs_model(tmp_path, monkeypatch):
    manager, job_id = _job(tmp_path, {"workers": 1, "item_list": {"items": [1, 2, 3], "batch_size": 1}})
    triton = FakeTriton()
    original = manager.store.progress_log

    def read_only(api, job):  # the progress log cannot be written: the store was remounted read-only
        log = original(api, job)

        def append(event, **fields):
            raise OSError(30, "Read-only file system")

        log.append = append
        return log

    runner = JobRunner(
        manager.store,
        "batcher",
        job_id,
        triton,
        lambda api, workers, spec: {"name": api},
        threading.Event(),
        oom=oom.OomCounter(str(tmp_path / "x")),
    )
    assert runner.enqueue() and runner.status == "status_pending"
    monkeypatch.setattr(manager.store, "progress_log", read_only)
    writes = []

    def write_record(record):
        writes.append(record["status"])
        if len(writes) > 1:  # status_running is written; the end is not
            raise OSError(30, "Read-only file system")

    monkeypatch.setattr(manager.store, "write_record", write_record)
    with pytest.raises(OSError):  # the engine logs it; the job ends (status_unexpected_error where it can write)
        runner.run()
    assert writes == ["status_running", "status_unexpected_error"]
    assert triton.unloads == 1  # the workers do not stay loaded
