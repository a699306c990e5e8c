"""Batch jobs of a BatchAPI over the Cortex endpoint's HTTP port: Cortex's job API (submit, get, list, stop)
and tritonize's job log. `tritonize.Client`'s job methods and `tritonize job` both call this.

Cortex's routes: `POST /<api>` submits (`?dryRun=true` lists the batches or files as text),
`GET /<api>?jobID=<id>` one job, `GET /<api>` the API's jobs (newest first), `DELETE /<api>?jobID=<id>`
stops one. An error answer `{"error": "..."}` is a JobError carrying the HTTP status.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tritonize.adapter.runtime.constants import DEFAULT_CORTEX_PORT, JOB_LOG_PATH
from tritonize.batch.store import FINAL_STATUSES
from tritonize.errors import JobError, ServerUnreachable
from tritonize.host import local_http

# Cortex's job statuses (pkg/types/status/job_code.go) and the words `cortex get` showed for them;
# status_pending is tritonize's: queued behind another job of the same API (one job per BatchAPI at a time).
STATUS_MESSAGES = {
    "status_pending": "pending",
    "status_enqueuing": "enqueuing",
    "status_running": "running",
    "status_enqueue_failed": "failed while enqueuing",
    "status_unexpected_error": "unexpected error",
    "status_completed_with_failures": "completed with failures",
    "status_succeeded": "succeeded",
    "status_worker_error": "worker error",
    "status_worker_oom": "out of memory",
    "status_timed_out": "timed out",
    "status_stopped": "stopped",
}
IN_PROGRESS_STATUSES = frozenset(STATUS_MESSAGES) - FINAL_STATUSES
SUCCEEDED = "status_succeeded"


def status_message(status: str) -> str:
    """'status_completed_with_failures' -> 'completed with failures' (Cortex's wording)."""
    return STATUS_MESSAGES.get(status, status.removeprefix("status_").replace("_", " "))


def is_done(job_status: Mapping[str, Any]) -> bool:
    """True once a job has ended, however it ended."""
    return str(job_status.get("status", "")) in FINAL_STATUSES


@dataclass(frozen=True)
class Progress:
    """A job's batches as a progress bar shows them."""

    total: int  # 0 while the job is still enqueuing (not known yet)
    succeeded: int
    failed: int  # batches given up on (dead-lettered): batch_metrics.failed
    queued: int


def progress_of(job_status: Mapping[str, Any]) -> Progress:
    metrics = job_status.get("batch_metrics") or {}
    succeeded = int(metrics.get("succeeded") or 0)
    failed = int(metrics.get("failed") or 0)
    return Progress(
        total=int(job_status.get("total_batch_count") or 0),
        succeeded=succeeded,
        failed=failed,
        queued=int(job_status.get("batches_in_queue") or 0),
    )


def cortex_base_url(url: str) -> str:
    """'host:port' or 'http://host:port/' -> 'http://host:port'; a bare host gets the Cortex port."""
    base = url if "://" in url else f"http://{url}"
    base = base.rstrip("/")
    if urllib.parse.urlsplit(base).port is None:
        base = f"{base}:{DEFAULT_CORTEX_PORT}"
    return base


class JobApi:
    """The job routes of one Cortex endpoint ('http://host:8080')."""

    def __init__(self, cortex_url: str, timeout_s: float = 60.0) -> None:
        self.base = cortex_base_url(cortex_url)
        self.timeout_s = timeout_s

    def _url(self, api: str, **query: str) -> str:
        path = "/" + urllib.parse.quote(api.strip("/"), safe="/")
        return self.base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")

    def _open(self, url: str, method: str = "GET", body: bytes | None = None, timeout: float | None = None) -> Any:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            return local_http.urlopen(request, timeout=self.timeout_s if timeout is None else timeout)
        except urllib.error.HTTPError as exc:
            raise _job_error(exc) from None
        except OSError as exc:
            raise ServerUnreachable(self.base, "http", exc, what="the Cortex endpoint") from None

    def _json(self, url: str, method: str = "GET", body: bytes | None = None) -> Any:
        with self._open(url, method, body) as response:
            raw = response.read()
        try:
            return json.loads(raw)
        except ValueError:
            raise JobError(502, f"{url}: not a JSON answer: {raw[:200]!r}") from None

    def submit(self, api: str, submission: Mapping[str, Any], dry_run: bool = False) -> Any:
        """Cortex's submission -> the job's spec (job_id, ...); dry_run: the batches/files it would run, as text.
        JobError 400 for an API that is not a BatchAPI (asked first: a RealtimeAPI would take the submission
        as a prediction's payload)."""
        answer = self.json(api)
        if not (isinstance(answer, dict) and isinstance(answer.get("jobs"), list)):
            raise JobError(400, f"{api} is not a BatchAPI: jobs are submitted to a kind: BatchAPI")
        body = json.dumps(submission).encode("utf-8")
        if dry_run:
            with self._open(self._url(api, dryRun="true"), "POST", body) as response:
                return response.read().decode("utf-8", "replace")
        return self._json(self._url(api), "POST", body)

    def get(self, api: str, job_id: str) -> dict:
        """-> {"job_status": {...}, "endpoint": ..., "api_spec": {...}} (Cortex's answer)."""
        return self._json(self._url(api, jobID=job_id))

    def list(self, api: str) -> list[dict]:
        """-> the API's job statuses, newest first."""
        return list(self._json(self._url(api)).get("jobs", []))

    def json(self, api: str) -> Any:
        """GET /<api> as it is: a BatchAPI's {"jobs": [...]}, a RealtimeAPI's summary."""
        return self._json(self._url(api))

    def stop(self, api: str, job_id: str) -> dict:
        """-> {"message": "stopped job <id>"}."""
        return self._json(self._url(api, jobID=job_id), "DELETE")

    def log(self, api: str, job_id: str) -> str:
        """The job's log so far (text)."""
        with self._open(self._log_url(api, job_id)) as response:
            return response.read().decode("utf-8", "replace")

    def follow_log(self, api: str, job_id: str, poll_s: float = 1.0) -> Iterator[str]:
        """The job's log as it grows, until the job has ended (then what it wrote last, and stop)."""
        printed = 0
        while True:
            done = is_done(self.get(api, job_id)["job_status"])  # before the read: its last lines are in it
            text = self.log(api, job_id)
            if len(text) > printed:
                yield text[printed:]
                printed = len(text)
            if done:
                return
            time.sleep(poll_s)

    def _log_url(self, api: str, job_id: str) -> str:
        quote = urllib.parse.quote
        return self.base + JOB_LOG_PATH.format(api=quote(api.strip("/"), safe=""), job_id=quote(job_id, safe=""))

    def wait(
        self,
        api: str,
        job_id: str,
        timeout: float | None = None,
        progress: Callable[[dict], object] | None = None,
        poll_s: float = 1.0,
    ) -> dict:
        """Poll until the job ends -> its final job_status; progress(job_status) after each poll.
        TimeoutError after `timeout` seconds (the job keeps running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job_status = self.get(api, job_id)["job_status"]
            if progress is not None:
                progress(job_status)
            if is_done(job_status):
                return job_status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"job {job_id} of {api} still {status_message(job_status['status'])} after {timeout:g} s"
                )
            time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))


def _job_error(exc: urllib.error.HTTPError) -> JobError:
    raw = exc.read()
    try:
        message = str(json.loads(raw)["error"])
    except (ValueError, KeyError, TypeError):
        message = raw.decode("utf-8", "replace").strip()[:500] or exc.reason
    return JobError(exc.code, message)


SOURCES = ("item_list", "file_path_lister", "delimited_files")


def build_submission(
    *,
    workers: int | None = None,
    items: list | None = None,
    file_path_lister: list[str] | None = None,
    delimited_files: list[str] | None = None,
    batch_size: int | None = None,
    includes: list[str] | None = None,
    excludes: list[str] | None = None,
    config: Mapping[str, Any] | None = None,
    timeout: int | None = None,
    dead_letter: str | None = None,
    max_receive_count: int | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict:
    """Cortex's submission JSON from keyword arguments, over `base` (a whole submission, e.g. a job.json):
    what is given here wins; config is merged into base's config. ValueError for a submission that names
    no source or more than one."""
    submission: dict[str, Any] = json.loads(json.dumps(dict(base or {})))  # a deep copy
    given = {
        name: value
        for name, value in (
            ("item_list", items),
            ("file_path_lister", file_path_lister),
            ("delimited_files", delimited_files),
        )
        if value is not None
    }
    if len(given) > 1:
        raise ValueError(f"give one job source, not {' and '.join(given)}")
    for name, value in given.items():
        for other in SOURCES:
            submission.pop(other, None)
        submission[name] = {"items": list(value)} if name == "item_list" else {"s3_paths": list(value)}
    sources = [name for name in SOURCES if name in submission]
    if len(sources) != 1:
        raise ValueError(
            "give exactly one job source: items (item_list), file_path_lister or delimited_files"
            + (f" (the submission has {', '.join(sources)})" if sources else "")
        )
    source = submission[sources[0]]
    if batch_size is not None:
        source["batch_size"] = batch_size
    if "batch_size" not in source:
        raise ValueError(f"{sources[0]} needs a batch_size")
    if sources[0] != "item_list":
        if includes:
            source["includes"] = list(includes)
        if excludes:
            source["excludes"] = list(excludes)
    elif includes or excludes:
        raise ValueError("includes/excludes filter files: they go with file_path_lister or delimited_files")
    if workers is not None:
        submission["workers"] = workers
    submission.setdefault("workers", 1)
    if config:
        submission["config"] = {**submission.get("config", {}), **config}
    if timeout is not None:
        submission["timeout"] = timeout
    if dead_letter is not None or max_receive_count is not None:
        dead = submission.setdefault("dead_letter", {})
        if dead_letter is not None:
            dead["path"] = dead_letter
        if max_receive_count is not None:
            dead["max_receive_count"] = max_receive_count
    return submission
