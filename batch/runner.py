"""One job, from its batches in the store to its final status.

enqueue (the source's batches into the store) -> its turn (one job per BatchAPI at a time; the manager
says when) -> load the API's model with `workers` instances and the job spec -> `workers` batches in
flight, each a Triton /infer request -> a batch whose predict() raised is retried until it failed
max_receive_count times, then dead-lettered -> on_job_complete once -> unload -> the final status.

A worker crash (Triton: "Stub process ... is not healthy") is not an attempt: the batch waits until the
watchdog has healed the instance (the model's reload nonce changes) and runs again; a batch that was
running during CRASH_LIMIT crashes is dead-lettered (it may be what kills the worker). Batches already
succeeded or dead-lettered are never run again, after a restart either; batches in flight when the
endpoint stopped run again.
"""

import json
import queue
import threading
import time

from . import locations, sources
from .oom import OomCounter
from .store import FINAL_STATUSES, now_rfc3339, parse_rfc3339
from .submission import parse
from .triton import TritonError, TritonUnreachable

CRASH_LIMIT = 3
OUT_OF_MEMORY = "out of memory"
HEAL_TIMEOUT_S = 300.0
UNREACHABLE_RETRY_S = 1.0
POLL_S = 0.2
UNLOAD_WAIT_S = 60.0
# Stopped or timed out: how long batches already sent may take to finish.
IN_FLIGHT_GRACE_S = 30.0


class JobRunner:
    """run() executes the job; `shutdown` (an Event: the endpoint is stopping) leaves it resumable."""

    def __init__(
        self, store, api, job_id, client_factory, load_config, shutdown, heal_timeout_s=HEAL_TIMEOUT_S, oom=None
    ):
        self.store = store
        self.api = api
        self.job_id = job_id
        self.client_factory = client_factory  # () -> TritonClient (one per thread)
        self.load_config = load_config  # (api, workers, job_spec) -> the model config for the job's load
        self.shutdown = shutdown
        self.heal_timeout_s = heal_timeout_s
        self.oom = oom or OomCounter()  # tells a worker the kernel's OOM killer killed from other crashes
        self.record = store.read_record(api, job_id)
        self.submission = parse(store.read_submission(api, job_id))
        self._lock = threading.Lock()
        self._generation = None  # the model's reload nonce as this job last saw it
        self.events = None  # the progress log while batches run

    def sync(self):
        """Progress on disk now (SIGTERM)."""
        if self.events is not None:
            self.events.sync()

    # --- status

    def log(self, message):
        self.store.log(self.api, self.job_id, message)

    def set_status(self, status, **fields):
        self.record.update(fields, status=status)
        self.record["end_time"] = now_rfc3339() if status in FINAL_STATUSES else None
        self.store.write_record(self.record)

    @property
    def status(self):
        return self.record["status"]

    def deadline(self):
        timeout = self.submission.timeout
        return None if timeout is None else parse_rfc3339(self.record["start_time"]) + timeout

    def should_stop(self):
        """-> the status the job ends with now (stopped / timed out), or None."""
        if self.store.stop_requested(self.api, self.job_id):
            return "status_stopped"
        deadline = self.deadline()
        if deadline is not None and time.time() >= deadline:
            return "status_timed_out"
        return None

    def end_early(self, status):
        message = "stopped" if status == "status_stopped" else f"timed out after {self.submission.timeout} s"
        self.log(f"job {message}")
        self.set_status(status)

    # --- enqueue

    def enqueue(self):
        """status_enqueuing -> status_pending (batches stored) or status_enqueue_failed. -> True if it may run."""
        if self.status != "status_enqueuing":
            return True
        self.log(f"enqueuing batches from {self.submission.source.kind}")
        try:
            count = self.store.write_batches(self.api, self.job_id, sources.batches(self.submission.source))
        except sources.SourceError as exc:
            self.store.discard_partial_batches(self.api, self.job_id)
            self.log(f"failed while enqueuing: {exc}")
            self.set_status("status_enqueue_failed", message=f"failed while enqueuing: {exc}")
            return False
        if count == 0:
            self.log("failed while enqueuing: unable to enqueue batches because no data was found")
            self.set_status("status_enqueue_failed", message="unable to enqueue batches because no data was found")
            return False
        self.log(f"enqueued {count} batches")
        self.set_status("status_pending", total_batch_count=count)
        return True

    # --- run

    def job_spec(self):
        """Cortex's job_spec as the predictor's __init__ gets it."""
        keys = ("job_id", "api_name", "kind", "workers", "config", "timeout", "sqs_dead_letter_queue")
        spec = {key: self.record.get(key) for key in keys}
        spec.update(
            total_batch_count=self.record["total_batch_count"],
            start_time=self.record["start_time"],
            created_time=self.record["created_time"],
        )
        return spec

    def run(self):
        """Runs the job's batches (after enqueue() and its turn); returns when the job ended or shutdown is set."""
        ended = self.should_stop()
        if ended:
            return self.end_early(ended)
        progress = self.store.read_progress(self.api, self.job_id)
        if self.status != "status_running":
            self.set_status("status_running")
        client = self.client_factory()
        loaded = False  # from the load call on, the model is unloaded however the job ends (a store that fails too)
        try:
            workers = self.submission.workers
            self.log(f"loading {self.api} with {workers} worker(s)")
            try:
                config = self.load_config(self.api, workers, self.job_spec())
                loaded = True
                client.load(self.api, config)
            except (TritonError, TritonUnreachable, ValueError, OSError) as exc:  # ValueError: the repository's config
                if self.shutdown.is_set():
                    return None
                if isinstance(exc, TritonError):
                    reason = exc.message
                elif isinstance(exc, TritonUnreachable):
                    reason = f"Triton did not answer: {exc}"
                else:
                    reason = str(exc)
                self.log(f"the workers failed to start: {reason}")
                self.set_status("status_worker_error", message=f"the workers failed to start: {reason}")
                return None
            self._generation = client.generation(self.api)[1]
            outcome = self._run_batches(progress)
            if self.shutdown.is_set() and outcome is None:
                self.log("the endpoint is stopping: the job resumes when it starts again")
                return None
            if outcome in ("status_stopped", "status_timed_out"):
                pass  # its status was written when it was asked to stop (_run_batches)
            elif outcome is not None:  # status_worker_error, status_worker_oom, status_unexpected_error
                message = self.record.get("message") or f"the workers were not healed within {self.heal_timeout_s:g} s"
                self.set_status(outcome, message=message)
            else:
                failure = self._on_job_complete(client)
                progress = self.store.read_progress(self.api, self.job_id)
                final = "status_completed_with_failures" if progress.dead_lettered else "status_succeeded"
                self.log(
                    f"job ended: {len(progress.succeeded)} batches succeeded, {len(progress.dead_lettered)} failed"
                )
                if failure is not None:  # Cortex: on_job_complete raising failed the worker (status_worker_error)
                    self.set_status("status_worker_error", message=f"on_job_complete failed: {failure}")
                else:
                    self.set_status(final)
        finally:
            try:
                if loaded and not self.shutdown.is_set():  # on shutdown: the job resumes, Triton stops with serve
                    self._unload(client)
            finally:
                client.close()
        return None

    def _unload(self, client):
        """Unload, and wait until Triton is done (its readiness is false while a model unloads, and the next
        job's load of the same model must not meet the unloading one)."""
        try:
            client.unload(self.api)
            deadline = time.monotonic() + UNLOAD_WAIT_S
            while client.state(self.api) in ("READY", "UNLOADING") and time.monotonic() < deadline:
                time.sleep(POLL_S)
            if client.state(self.api) in ("READY", "UNLOADING"):  # a predict() that never returns holds it
                self.log(
                    f"{self.api} is still unloading after {UNLOAD_WAIT_S:g} s: a batch still running keeps its worker "
                    "(set tritonize.request_timeout to end a predict() that never returns)"
                )
            else:
                self.log(f"unloaded {self.api}")
        except (TritonError, TritonUnreachable) as exc:
            self.log(f"unloading {self.api} failed: {exc}")

    def _run_batches(self, progress):
        """-> None when every batch ended, or the status that ended the job early (None too on shutdown)."""
        todo = queue.Queue()
        remaining = 0
        for batch_id, items in self.store.read_batches(self.api, self.job_id):
            if not progress.done(batch_id):
                todo.put((batch_id, items))
                remaining += 1
        if remaining < self.record["total_batch_count"]:
            self.log(f"resuming: {remaining} of {self.record['total_batch_count']} batches left")
        state = {"remaining": remaining, "ended": None}
        events = self.events = self.store.progress_log(self.api, self.job_id)
        threads = [
            threading.Thread(target=self._worker, args=(todo, state, progress, events), daemon=True)
            for _ in range(self.submission.workers)
        ]
        for thread in threads:
            thread.start()
        ended_at = None
        try:
            while any(thread.is_alive() for thread in threads):
                if state["ended"] is None and not self.shutdown.is_set():
                    state["ended"] = self.should_stop()
                    if state["ended"] is not None:  # Cortex: stopped / timed out at once, in-flight batches or not
                        self.end_early(state["ended"])
                if state["ended"] is not None:
                    ended_at = ended_at or time.monotonic()
                    if time.monotonic() - ended_at > IN_FLIGHT_GRACE_S:  # a predict() that never returns
                        self.log(f"batches still in flight after {IN_FLIGHT_GRACE_S:g} s are abandoned")
                        break
                for thread in threads:
                    thread.join(POLL_S / len(threads))
        finally:
            events.close()
        return state["ended"]

    def _worker(self, todo, state, progress, events):
        client = self.client_factory()
        try:
            while state["ended"] is None and not self.shutdown.is_set():
                with self._lock:
                    if state["remaining"] == 0:
                        return
                try:
                    batch_id, items = todo.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                try:
                    ended = self._run_batch(client, batch_id, items, progress, events, state)
                except Exception as exc:  # the store failed (disk full...): this job ends, the server goes on
                    self.log(f"batch {batch_id}: {type(exc).__name__}: {exc}")
                    self.record["message"] = f"unexpected error: {type(exc).__name__}: {exc}"
                    state["ended"] = state["ended"] or "status_unexpected_error"
                    return
                if ended is False:  # not finished: again later
                    todo.put((batch_id, items))
                else:
                    with self._lock:
                        state["remaining"] -= 1
        finally:
            client.close()

    def _run_batch(self, client, batch_id, items, progress, events, state):
        """`items`: the batch as JSON text. -> True when the batch ended (succeeded or dead-lettered), False to
        run it again."""
        generation = self._generation
        started = time.monotonic()
        oom_kills = self.oom.read()
        try:
            client.infer(self.api, items, batch_id)
        except TritonUnreachable as exc:
            if not self.shutdown.is_set():
                self.log(f"batch {batch_id}: Triton did not answer ({exc}); trying again")
                time.sleep(UNREACHABLE_RETRY_S)
            return False
        except TritonError as exc:
            if exc.not_started:
                if state["ended"] is None:
                    self.log(f"the workers failed to start: {exc.message}")
                    self.record["message"] = f"the workers failed to start: {exc.message}"
                    state["ended"] = "status_worker_error"
                return False
            if exc.crashed:
                oom = self.oom.rose_since(oom_kills)
                with self._lock:
                    progress.crashes[batch_id] = progress.crashes.get(batch_id, 0) + 1
                    crashes = progress.crashes[batch_id]
                events.append("crashed", batch_id=batch_id, error=exc.message[:1000], **({"oom": True} if oom else {}))
                what = f"killed by the kernel's OOM killer: {OUT_OF_MEMORY}" if oom else "crashed"
                self.log(f"batch {batch_id}: the worker {what} ({exc.message}); waiting for it to be healed")
                if crashes >= CRASH_LIMIT:
                    reason = f"worker {what}: {exc.message}"
                    self._dead_letter(batch_id, items, progress, events, reason)
                    if oom and state["ended"] is None:  # Cortex: a worker OOM-killed ends the job, status_worker_oom
                        self.record["message"] = (
                            f"batch {batch_id}: its worker was killed by the kernel's OOM killer {crashes} times "
                            f"({OUT_OF_MEMORY}: give the API more memory, or submit smaller batches)"
                        )
                        state["ended"] = "status_worker_oom"
                        self.log(self.record["message"])
                    return True
                if not self._wait_for_heal(client, generation):
                    if not self.shutdown.is_set() and state["ended"] is None:
                        self.log(f"the workers were not healed within {self.heal_timeout_s:g} s")
                        state["ended"] = "status_worker_error"
                return False
            with self._lock:
                progress.attempts[batch_id] = progress.attempts.get(batch_id, 0) + 1
                attempts = progress.attempts[batch_id]
            events.append("failed", batch_id=batch_id, error=exc.message[:1000])
            limit = self.submission.max_receive_count
            self.log(f"batch {batch_id}: attempt {attempts} of {limit} failed: {exc.message}")
            if attempts >= self.submission.max_receive_count:
                return self._dead_letter(batch_id, items, progress, events, exc.message)
            return False
        events.append("succeeded", batch_id=batch_id, seconds=round(time.monotonic() - started, 6))
        with self._lock:
            progress.succeeded.add(batch_id)
        return True

    def _wait_for_heal(self, client, generation):
        deadline = time.monotonic() + self.heal_timeout_s
        while not self.shutdown.is_set() and time.monotonic() < deadline:
            ready, nonce = client.generation(self.api)
            if ready and nonce != generation:
                with self._lock:
                    self._generation = nonce
                return True
            time.sleep(POLL_S)
        return False

    def dead_letter_location(self):
        path = self.submission.dead_letter_path
        if path is None:
            return self.store.dead_letter_dir(self.api, self.job_id)
        return path.rstrip("/") + "/" + self.job_id

    def _dead_letter(self, batch_id, items, progress, events, error):
        document = {
            "job_id": self.job_id,
            "api_name": self.api,
            "batch_id": batch_id,
            "items": json.loads(items),
            "attempts": progress.attempts.get(batch_id, 0),
            "worker_crashes": progress.crashes.get(batch_id, 0),
            "error": error,
        }
        try:
            where = locations.write_json(self.dead_letter_location(), f"{batch_id}.json", document)
        except locations.LocationError as exc:  # nothing lost: the job's own folder keeps it
            self.log(f"batch {batch_id}: dead letter not written ({exc}); kept in the job store instead")
            own = self.store.dead_letter_dir(self.api, self.job_id)
            where = locations.write_json(own, f"{batch_id}.json", document)
        events.append("dead_lettered", batch_id=batch_id, error=error[:1000])
        with self._lock:
            progress.dead_lettered.add(batch_id)
        self.log(f"batch {batch_id}: dead-lettered to {where}")
        return True

    def _on_job_complete(self, client):
        """Runs the predictor's on_job_complete once -> None, or the error it raised."""
        failure = None
        progress = self.store.read_progress(self.api, self.job_id)
        if progress.complete_started:
            if not progress.complete_done:  # it was running when the endpoint stopped: never twice
                self.log("on_job_complete was interrupted by a restart; not run again")
            return progress.complete_error
        events = self.store.progress_log(self.api, self.job_id)
        try:
            events.append("on_job_complete_started")
            events.sync()
            try:
                client.infer(self.api, "null", "on_job_complete", on_job_complete=True)
                self.log("on_job_complete ran")
            except TritonError as exc:
                self.log(f"on_job_complete failed: {exc.message}")
                failure = exc.message
            except TritonUnreachable as exc:
                self.log(f"on_job_complete: Triton did not answer: {exc}")
            events.append("on_job_complete_done", **({"error": failure[:1000]} if failure else {}))
        finally:
            events.close()
        return failure
