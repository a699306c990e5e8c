"""Jobs of a repository's BatchAPIs: JobManager answers the routes (any endpoint process), JobEngine runs
the jobs (one thread per job in the endpoint's first process).

The store is the only channel between them: a submission creates the job's folder (status_enqueuing),
DELETE writes its stop file; the engine finds both by polling the store every POLL_S. So every endpoint
worker can take requests, and a restarted endpoint resumes what the store says is unfinished.
One job per BatchAPI runs at a time (the model's instances are the job's workers); the next waits in
status_pending, oldest first.
"""

import os
import secrets
import threading
import time
import traceback

from .runner import JobRunner
from .sources import dry_run
from .store import FINAL_STATUSES, JobStore, UnknownJob, now_rfc3339

POLL_S = 0.25
# An ended job's progress counts, kept in its record once its thread is done: listing jobs and /metrics never
# read the progress logs of ended jobs again (a 10,000-batch job has 10,000 lines).
SUMMARY_KEY = "progress_summary"
ACTIVE_STATUSES = ("status_enqueuing", "status_pending", "status_running")
# Cortex's worker_counts fields (pkg/types/status/status.go); tritonize's workers are running or not.
WORKER_STATES = ("pending", "initializing", "running", "succeeded", "failed", "stalled", "unknown")


class JobNotInProgress(Exception):
    """DELETE of a job that already ended: Cortex v0.33's operator answered 400 with this message."""

    status = 400


class JobManager:
    """submit / get / list / stop / log over the job store."""

    def __init__(self, store_root):
        self.store = JobStore(store_root)

    def submit(self, api, submission):
        """A new job (status_enqueuing; the engine enqueues it) -> its record (Cortex's job spec + status)."""
        created = now_rfc3339()
        job_id = f"{time.time_ns() // 1000:x}{secrets.token_hex(3)}"  # sortable by time, unique
        record = {
            "job_id": job_id,
            "api_name": api,
            "kind": "BatchAPI",
            "workers": submission.workers,
            "sqs_dead_letter_queue": submission.sqs_dead_letter_queue,
            "config": submission.config,
            "timeout": submission.timeout,
            "api_id": "",
            "spec_id": "",
            "predictor_id": "",
            "sqs_url": "",
            "total_batch_count": 0,
            "start_time": created,
            "created_time": created,
            "end_time": None,
            "status": "status_enqueuing",
            "dead_letter": submission.dead_letter_path or self.store.dead_letter_dir(api, job_id),
            "max_receive_count": submission.max_receive_count,
        }
        self.store.create(record, submission.to_json())
        return self.status(record)

    def dry_run(self, submission):
        """Cortex's dryRun: the lines to answer (files, or the batch count), or SourceError."""
        return dry_run(submission.source)

    def get(self, api, job_id):
        return self.status(self.store.read_record(api, job_id))

    def summary(self, api, job_id):
        """The counts of a job's progress log (read whole: an ended job keeps them in its record, SUMMARY_KEY)."""
        progress = self.store.read_progress(api, job_id)
        return {
            "succeeded": len(progress.succeeded),
            "failed": len(progress.dead_lettered),
            "seconds": progress.seconds,
            "failed_attempts": sum(progress.attempts.values()),
        }

    def status(self, record):
        """Cortex's BatchJobStatus (job spec + status + counts) from a record and the job's progress."""
        record = dict(record)
        api, job_id = record["api_name"], record["job_id"]
        summary = record.pop(SUMMARY_KEY, None) if record["status"] in FINAL_STATUSES else None
        summary = summary or self.summary(api, job_id)
        succeeded, failed = summary["succeeded"], summary["failed"]
        total = record.get("total_batch_count") or 0
        running = record["status"] == "status_running"
        return {
            **record,
            "batches_in_queue": max(total - succeeded - failed, 0) if record["status"] in ACTIVE_STATUSES else 0,
            "batch_metrics": {
                "succeeded": succeeded,
                "failed": failed,
                "average_time_per_batch": summary["seconds"] / succeeded if succeeded else None,
            },
            "worker_counts": {**dict.fromkeys(WORKER_STATES, 0), "running": record["workers"] if running else 0},
            "failed_attempts": summary["failed_attempts"],  # tritonize's: predict() raised, retried or not
        }

    def list(self, api):
        """Every job of the API, newest first."""
        statuses = []
        for _, job_id in self.store.jobs(api):
            try:
                statuses.append(self.get(api, job_id))
            except UnknownJob:  # being created or removed
                continue
        return sorted(statuses, key=lambda job: job["created_time"], reverse=True)

    def stop(self, api, job_id):
        """Asks a job in progress to stop; JobNotInProgress (400, Cortex's error) if it already ended."""
        record = self.store.read_record(api, job_id)
        if record["status"] in FINAL_STATUSES:
            raise JobNotInProgress(f"{job_id} ({api} api): cannot stop BatchAPI job because it is not in progress")
        self.store.request_stop(api, job_id)
        return record

    def log(self, api, job_id):
        return self.store.read_log(api, job_id)


class JobEngine:
    """Finds unfinished jobs in the store and runs them; stop() leaves them resumable."""

    def __init__(self, store_root, batch_apis, client_factory, load_config, log=print):
        self.store = JobStore(store_root)
        self.batch_apis = frozenset(batch_apis)
        self.client_factory = client_factory
        self.load_config = load_config
        self.print = log
        self.shutdown = threading.Event()
        self._threads = {}  # (api, job_id) -> Thread
        self._runners = {}  # (api, job_id) -> JobRunner of the jobs running now
        self._turn = threading.Condition()
        # api -> {(created_time, job_id)} of its unfinished jobs (enqueuing, pending, running): the oldest runs next,
        # whichever job's enqueuing ends first.
        self._active = {}
        self._running = {}  # api -> job_id
        self._scanner = None

    def start(self):
        try:
            os.makedirs(self.store.root, exist_ok=True)
        except OSError as exc:  # the routes answer 503 meanwhile; the realtime APIs serve on
            self.print(f"tritonize jobs: the job store {self.store.root} is not usable: {exc.strerror or exc}")
        self._scanner = threading.Thread(target=self._scan_forever, name="tritonize-jobs", daemon=True)
        self._scanner.start()

    def stop(self, timeout_s=5.0):
        """SIGTERM: nothing new is sent; progress is on disk; in-flight batches run again after a restart."""
        self.shutdown.set()
        with self._turn:
            self._turn.notify_all()
        for runner in list(self._runners.values()):
            runner.sync()
        deadline = time.monotonic() + timeout_s
        for thread in [self._scanner, *self._threads.values()]:
            if thread is not None:
                thread.join(max(deadline - time.monotonic(), 0))

    def _scan_forever(self):
        while not self.shutdown.is_set():
            try:
                self.scan()
            except Exception as exc:  # the engine never dies of one odd folder
                self.print(f"tritonize jobs: scanning the job store failed: {type(exc).__name__}: {exc}")
            self.shutdown.wait(POLL_S)

    def scan(self):
        for api, job_id in self.store.jobs():
            if (api, job_id) in self._threads:
                continue
            try:
                record = self.store.read_record(api, job_id)
            except UnknownJob:
                continue
            if record.get("status") in FINAL_STATUSES:
                continue
            key = (record.get("created_time") or "", job_id)
            with self._turn:
                self._active.setdefault(api, set()).add(key)
            thread = threading.Thread(target=self._run_job, args=(api, job_id, key), name=f"job-{job_id}", daemon=True)
            self._threads[(api, job_id)] = thread
            thread.start()

    def _run_job(self, api, job_id, key):
        try:
            self._run(api, job_id, key)
            self._keep_summary(api, job_id)
        finally:
            with self._turn:
                self._active[api].discard(key)
                self._turn.notify_all()

    def _keep_summary(self, api, job_id):
        """An ended job's counts into its record (its thread is done: nothing writes its progress any more)."""
        try:
            record = self.store.read_record(api, job_id)
            if record.get("status") in FINAL_STATUSES and SUMMARY_KEY not in record:
                record[SUMMARY_KEY] = JobManager(self.store.root).summary(api, job_id)
                self.store.write_record(record)
        except (OSError, UnknownJob):
            pass  # the counts are read from the progress log instead

    def _run(self, api, job_id, key):
        try:
            runner = JobRunner(self.store, api, job_id, self.client_factory, self.load_config, self.shutdown)
            if api not in self.batch_apis:
                runner.log(f"{api} is not a BatchAPI of the repository being served")
                runner.set_status("status_unexpected_error", message=f"{api} is not a BatchAPI of this repository")
                return
            if not runner.enqueue():
                return
            if self._wait_turn(runner, key):
                self._runners[(api, job_id)] = runner
                try:
                    runner.run()
                finally:
                    self._runners.pop((api, job_id), None)
                    with self._turn:
                        self._running.pop(api, None)
                        self._turn.notify_all()
        except Exception as exc:  # a store that went away, a bug: this job ends, the others and the server go on
            self.print(f"tritonize jobs: job {job_id} of {api} failed: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            try:
                self.store.log(api, job_id, f"unexpected error: {type(exc).__name__}: {exc}")
                record = self.store.read_record(api, job_id)
                record.update(status="status_unexpected_error", end_time=now_rfc3339())
                self.store.write_record(record)
            except (OSError, UnknownJob):
                pass

    def _wait_turn(self, runner, key):
        """Waits (status_pending) until no other job of the API runs and no older one is unfinished (an older
        job still enqueuing goes first); -> False if the job ended meanwhile."""
        api = runner.api
        with self._turn:
            while True:
                if self.shutdown.is_set():
                    return False
                ended = runner.should_stop()
                if ended:
                    runner.end_early(ended)
                    return False
                if self._running.get(api) is None and min(self._active[api]) == key:
                    self._running[api] = runner.job_id
                    return True
                self._turn.wait(POLL_S)
