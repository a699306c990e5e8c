"""tritonize.Client's job methods and `tritonize job` against a stand-in of the Cortex endpoint's job routes
(tests/fake_job_endpoint.py); the same paths on real Triton: tests/test_e2e_batch_surfaces.py."""

import json
import os

import pytest
from click.testing import CliRunner
from fake_job_endpoint import FakeJobEndpoint

from tritonize import Client
from tritonize.cli.main import cli
from tritonize.client.batch_job_status import format_batch_jobs, job_lists
from tritonize.client.job_view import ProgressLine, format_job, format_jobs
from tritonize.client.jobs import JobApi, build_submission, cortex_base_url, progress_of, status_message
from tritonize.errors import JobError, ServerUnreachable


@pytest.fixture
def endpoint():
    with FakeJobEndpoint() as fake:
        yield fake


def _client(endpoint):
    return Client("127.0.0.1:1", cortex_url=endpoint.url)


def test_submit_items_posts_cortex_submission(endpoint):
    spec = _client(endpoint).submit_job("batcher", items=[1, 2, 3, 4, 5], batch_size=2, workers=2, config={"k": 1})
    assert spec["job_id"] == "job0001" and spec["kind"] == "BatchAPI"
    query, body = endpoint.submissions[-1]
    assert query == {}
    assert body == {"item_list": {"items": [1, 2, 3, 4, 5], "batch_size": 2}, "workers": 2, "config": {"k": 1}}


def test_submit_dict_with_overrides_and_dry_run(endpoint):
    base = {"workers": 3, "item_list": {"items": ["a"], "batch_size": 1}, "config": {"a": 1, "b": 2}}
    text = _client(endpoint).submit_job("batcher", base, config={"b": 3}, dry_run=True)
    assert text == "1 batches\nvalidations passed"
    query, body = endpoint.submissions[-1]
    assert query == {"dryRun": "true"}
    assert body["workers"] == 3 and body["config"] == {"a": 1, "b": 3}
    assert base["config"] == {"a": 1, "b": 2}  # the caller's dict is not changed


def test_status_list_stop_log(endpoint):
    client = _client(endpoint)
    first = client.submit_job("batcher", items=list(range(4)), batch_size=2)["job_id"]
    second = client.submit_job("batcher", items=[1], batch_size=1)["job_id"]
    status = client.job_status("batcher", first)
    assert status["status"] == "status_running" and status["batch_metrics"]["succeeded"] == 1
    assert [j["job_id"] for j in client.jobs("batcher")] == [second, first]
    assert client.stop_job("batcher", first) == {"message": f"stopped job {first}"}
    assert client.job_status("batcher", first)["status"] == "status_stopped"
    assert "ended" in client.job_log("batcher", first)


def test_error_answer_is_job_error_with_status(endpoint):
    client = _client(endpoint)
    with pytest.raises(JobError) as info:
        client.job_status("batcher", "nope")
    assert info.value.status == 404 and info.value.message == "unknown job nope"
    with pytest.raises(JobError) as info:  # the endpoint's 400 for a bad submission, its message as it is
        JobApi(endpoint.url).submit("batcher", {"item_list": {"items": [1], "batch_size": 1}})
    assert info.value.status == 400 and str(info.value) == "[400] workers: required"
    with pytest.raises(JobError) as info:
        client.submit_job("other", items=[1], batch_size=1)
    assert info.value.status == 404 and "no API" in info.value.message


def test_unreachable_endpoint_says_which_server():
    client = Client("127.0.0.1:1", cortex_url="127.0.0.1:1")
    with pytest.raises(ServerUnreachable, match="the Cortex endpoint at http://127.0.0.1:1"):
        client.jobs("batcher")


def test_wait_job_reports_progress_until_done(endpoint):
    client = _client(endpoint)
    job_id = client.submit_job("batcher", items=list(range(6)), batch_size=2)["job_id"]
    seen = []
    final = client.wait_job("batcher", job_id, progress=lambda s: seen.append(progress_of(s).succeeded), poll_s=0.01)
    assert final["status"] == "status_succeeded"
    assert seen == [1, 2, 3]


def test_wait_job_timeout_leaves_job_running(endpoint):
    client = _client(endpoint)
    job_id = client.submit_job("batcher", items=list(range(1000)), batch_size=1)["job_id"]
    with pytest.raises(TimeoutError, match="still running"):
        client.wait_job("batcher", job_id, timeout=0.2, poll_s=0.05)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"items": [1]}, "item_list needs a batch_size"),
        ({"items": [1], "file_path_lister": ["s3://b/p"], "batch_size": 1}, "one job source"),
        ({"batch_size": 1}, "exactly one job source"),
        ({"items": [1], "batch_size": 1, "includes": ["*.json"]}, "includes/excludes filter files"),
    ],
)
def test_build_submission_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_submission(**kwargs)


def test_build_submission_sources_and_dead_letter():
    body = build_submission(
        delimited_files=["s3://b/in/"],
        includes=["**.jsonl"],
        excludes=["**skip*"],
        batch_size=10,
        timeout=60,
        dead_letter="/tmp/dead",
        max_receive_count=2,
        base={"file_path_lister": {"s3_paths": ["x"], "batch_size": 1}, "workers": 4},
    )
    assert body == {
        "delimited_files": {
            "s3_paths": ["s3://b/in/"],
            "includes": ["**.jsonl"],
            "excludes": ["**skip*"],
            "batch_size": 10,
        },
        "workers": 4,
        "timeout": 60,
        "dead_letter": {"path": "/tmp/dead", "max_receive_count": 2},
    }


def test_cortex_base_url():
    assert cortex_base_url("host") == "http://host:8080"
    assert cortex_base_url("host:9") == "http://host:9"
    assert cortex_base_url("https://h:9/") == "https://h:9"
    assert cortex_base_url("[::1]") == "http://[::1]:8080"
    assert Client("10.0.0.2:8000").cortex_url == "http://10.0.0.2:8080"


def test_cli_submit_wait_succeeded(endpoint, tmp_path):
    items = tmp_path / "items.json"
    items.write_text(json.dumps(list(range(6))))
    result = CliRunner().invoke(
        cli,
        ["job", "submit", "batcher", "--items", f"@{items}", "--batch-size", "2", "--workers", "2",
         "--config", "dest=/out", "--config", "n=3", "--wait", "--cortex-url", endpoint.url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert endpoint.submissions[-1][1]["config"] == {"dest": "/out", "n": 3}
    assert '"job_id": "job0001"' in result.output
    # not a terminal: one plain line each time the numbers change, then the verdict
    assert "running: 1 done, 0 failed of 3 batches" in result.output
    assert "succeeded: 3 done, 0 failed of 3 batches" in result.output
    assert result.output.rstrip().endswith("job job0001: succeeded")
    assert json.loads(result.stdout)["job_id"] == "job0001"  # stdout: the job's JSON only (progress: stderr)


def test_cli_submit_wait_completed_with_failures_exits_1(tmp_path):
    with FakeJobEndpoint(final_status="status_completed_with_failures", fail_batches=1) as fake:
        result = CliRunner().invoke(
            cli,
            ["job", "submit", "batcher", "--items", "[1, 2, 3]", "--batch-size", "1", "--wait",
             "--cortex-url", fake.url],
        )  # fmt: skip
    assert result.exit_code == 1
    assert "completed with failures: 2 done, 1 failed of 3 batches" in result.output
    assert "tritonize job logs batcher job0001" in result.output


def test_cli_submission_file_and_dry_run(endpoint, tmp_path):
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"workers": 1, "item_list": {"items": [1, 2], "batch_size": 1}}))
    result = CliRunner().invoke(
        cli, ["job", "submit", "batcher", "--submission", f"@{job_file}", "--dry-run", "--cortex-url", endpoint.url]
    )
    assert result.exit_code == 0, result.output
    assert result.output == "2 batches\nvalidations passed\n"
    assert endpoint.submissions[-1][0] == {"dryRun": "true"}


def test_cli_file_sources_and_filters(endpoint):
    CliRunner().invoke(
        cli,
        ["job", "submit", "batcher", "--file-path-lister", "s3://b/images/", "--include", "**.jpg",
         "--batch-size", "4", "--cortex-url", endpoint.url],
    )  # fmt: skip
    assert endpoint.submissions[-1][1] == {
        "file_path_lister": {"s3_paths": ["s3://b/images/"], "includes": ["**.jpg"], "batch_size": 4},
        "workers": 1,
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["--items", "{}", "--batch-size", "1"], "expected a JSON list"),
        (["--items", "[1", "--batch-size", "1"], "not JSON"),
        (["--items", "[1]"], "needs a batch_size"),
        (["--items", "[1]", "--delimited-files", "x", "--batch-size", "1"], "one job source"),
        (["--items", "[1]", "--batch-size", "1", "--config", "@/nonexistent.yaml"], "No such file"),
    ],
)
def test_cli_submit_usage_errors(endpoint, args, message):
    result = CliRunner().invoke(cli, ["job", "submit", "batcher", *args, "--cortex-url", endpoint.url])
    assert result.exit_code == 2 and message in result.output, result.output
    assert endpoint.submissions == []


def test_cli_status_stop_logs(endpoint):
    runner = CliRunner()
    job_id = _client(endpoint).submit_job("batcher", items=[1, 2], batch_size=1)["job_id"]
    one = runner.invoke(cli, ["job", "status", "batcher", job_id, "--cortex-url", endpoint.url])
    assert one.exit_code == 0 and f"job id: {job_id}" in one.output and "status: running" in one.output
    listed = runner.invoke(cli, ["job", "status", "batcher", "--cortex-url", endpoint.url])
    assert listed.exit_code == 0 and job_id in listed.output and "progress" in listed.output
    stopped = runner.invoke(cli, ["job", "stop", "batcher", job_id, "--cortex-url", endpoint.url])
    assert stopped.output == f"stopped job {job_id}\n"
    logs = runner.invoke(cli, ["job", "logs", "batcher", job_id, "--cortex-url", endpoint.url])
    assert logs.exit_code == 0 and logs.output.endswith(f"{job_id}: ended\n")
    missing = runner.invoke(cli, ["job", "stop", "batcher", "nope", "--cortex-url", endpoint.url])
    assert missing.exit_code == 1 and "[404] unknown job nope" in missing.output


def test_format_job_like_cortex_get():
    text = format_job(
        {
            "job_status": {
                "job_id": "j1",
                "status": "status_completed_with_failures",
                "total_batch_count": 4,
                "batches_in_queue": 0,
                "batch_metrics": {"succeeded": 3, "failed": 1, "average_time_per_batch": 0.25},
                "failed_attempts": 2,
                "message": "1 batch failed",
                "start_time": "2026-12-05T01:00:00Z",
                "end_time": "2026-12-05T01:01:05Z",
                "dead_letter": "/data/dead",
            },
            "endpoint": "http://h:8080/batcher",
        }
    )
    assert "status: completed with failures" in text
    assert "duration: 1m05s" in text
    assert text.splitlines()[9].split() == ["4", "3", "1", "2", "250ms", "0"]
    assert "failed batches (dead letter): /data/dead" in text and "message: 1 batch failed" in text
    assert "job endpoint: http://h:8080/batcher" in text


def test_format_jobs_and_status_words():
    assert format_jobs([]) == "no submitted batch jobs"
    table = format_jobs([{"job_id": "j2", "status": "status_pending", "total_batch_count": 5}])
    assert "j2      pending  0/5" in table
    assert status_message("status_worker_oom") == "out of memory"
    assert status_message("status_something_new") == "something new"


def test_progress_bar_on_a_terminal():
    line = ProgressLine(tty=True, width=10)
    job = {"status": "status_running", "total_batch_count": 4, "batch_metrics": {"succeeded": 2, "failed": 0}}
    text = line(job)
    assert text.startswith("\r[#####-----] 2 done, 0 failed of 4 batches") and not text.endswith("\n")
    job = {"status": "status_succeeded", "total_batch_count": 4, "batch_metrics": {"succeeded": 4, "failed": 0}}
    assert line(job).endswith("succeeded\x1b[K\n")


def test_status_tells_batch_apis_by_their_job_list(endpoint):
    client = _client(endpoint)
    assert job_lists(endpoint.url, ["batcher", "other"]) == {"batcher": []}  # a BatchAPI without jobs yet
    done = client.submit_job("batcher", items=[1], batch_size=1)["job_id"]
    client.wait_job("batcher", done, poll_s=0.01)
    running = client.submit_job("batcher", items=list(range(10)), batch_size=2)["job_id"]
    client.job_status("batcher", running)  # the stand-in advances one batch per read
    listed = job_lists(endpoint.url, ["batcher"])["batcher"]
    assert [job["job_id"] for job in listed] == [running, done]
    text = format_batch_jobs([("batcher", listed[0])])
    header = ["BATCH", "API", "JOB", "ID", "STATUS", "SUCCEEDED", "FAILED", "QUEUED", "TOTAL"]
    assert text.splitlines()[0].split() == header
    assert text.splitlines()[1].split() == ["batcher", running, "running", "1", "0", "4", "5"]
    assert job_lists("127.0.0.1:1", ["batcher"]) == {}  # no endpoint: no section, no error


def test_follow_log_prints_new_text_until_the_job_ends(endpoint):
    jobs = JobApi(endpoint.url)
    job_id = jobs.submit("batcher", {"workers": 1, "item_list": {"items": [1, 2], "batch_size": 1}})["job_id"]
    chunks = list(jobs.follow_log("batcher", job_id, poll_s=0.01))
    assert "".join(chunks) == f"{job_id}: batch 0 succeeded\n{job_id}: ended\n"  # printed once, not per poll
    assert jobs.get("batcher", job_id)["job_status"]["status"] == "status_succeeded"
    result = CliRunner().invoke(cli, ["job", "logs", "batcher", job_id, "--follow", "--cortex-url", endpoint.url])
    assert result.exit_code == 0 and result.output.endswith(f"{job_id}: ended\n")


def test_readme_batch_examples_are_what_the_batch_page_runs():
    """README's batch curl line and Python block are not run there (no BatchAPI is served in its flow):
    docs/batch.md runs the same line and the same block."""
    from doc_blocks import ROOT, blocks

    readme = [b for b in blocks(os.path.join(ROOT, "README.md")) if "sentiment-batch" in b.code]
    assert len(readme) == 2 and all(block.not_run for block in readme)
    curl, python = readme
    page = [b.code for b in blocks(os.path.join(ROOT, "docs", "batch.md")) if b.runs]
    assert any(curl.code.strip() in code.splitlines() for code in page)
    assert any(python.code.strip() == code.strip() for code in page)


def test_format_job_worker_stats_while_running_only():
    running = {"job_id": "j", "status": "status_running", "workers": 2,
               "worker_counts": {"pending": 0, "running": 2, "succeeded": 0, "failed": 0}}  # fmt: skip
    text = format_job({"job_status": running})
    stats = text.splitlines()[text.splitlines().index("worker stats") + 1 :][:2]
    assert [line.split() for line in stats] == [["requested", "running", "succeeded"], ["2", "2", "0"]]
    assert "not currently running" in format_job({"job_status": {**running, "status": "status_stopped"}})
    assert "still enqueuing" in format_job({"job_status": {**running, "status": "status_enqueuing"}})


def test_ctrl_c_while_waiting_leaves_the_job_running(endpoint, monkeypatch):
    from tritonize.client.jobs import JobApi as Jobs

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Jobs, "wait", interrupted)
    result = CliRunner().invoke(
        cli,
        ["job", "submit", "batcher", "--items", "[1, 2]", "--batch-size", "1", "--wait", "--cortex-url", endpoint.url],
    )
    assert result.exit_code == 130 and "the job goes on: tritonize job status batcher job0001" in result.output
    assert endpoint.jobs["job0001"]["status"] == "status_running"


def test_submitting_to_a_realtime_api_is_refused_before_posting(endpoint):
    with pytest.raises(JobError) as info:
        _client(endpoint).submit_job("realtime", items=[1], batch_size=1)
    assert info.value.status == 400 and "realtime is not a BatchAPI" in info.value.message
    assert endpoint.submissions == []  # the realtime predictor never got the submission as a payload
