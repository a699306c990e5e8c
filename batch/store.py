"""The job store: one folder per job, the only reader and writer of its files.

    <root>/<api>/<job_id>/
        job.json         the job record: Cortex's job spec and status fields (replaced atomically)
        submission.json  the submission as received (Cortex's JSON, parsed again on resume)
        batches.jsonl    one line per batch: {"batch_id", "items"} (written whole, then renamed)
        progress.jsonl   append-only events: a batch succeeded, failed an attempt, crashed its worker,
                         was dead-lettered; on_job_complete started / finished
        job.log          the job's log, text
        dead_letter/     failed batches when the submission names no other place
        stop             present once DELETE asked the job to stop

Several processes read it (every Cortex endpoint worker answers GET); one writes a job's progress
(the engine). A progress line is flushed when written (a killed process loses nothing) and fsynced at
least every FSYNC_INTERVAL_S and when the job ends or the endpoint stops (a machine crash loses at
most that much: those batches run again).
"""

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

FSYNC_INTERVAL_S = 1.0
# The store's folder in images (a volume: docs/batch-internals.md); serve's --job-store sets it too.
JOB_STORE_ENV = "TRITONIZE_JOB_STORE"
JOB_ID = re.compile(r"[0-9a-z]{1,64}")
_BATCH_LINE = re.compile(r'\{"batch_id":"([0-9]+)","items":(.*)\}', re.DOTALL)
API_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")
FINAL_STATUSES = frozenset(
    [
        "status_succeeded",
        "status_completed_with_failures",
        "status_enqueue_failed",
        "status_unexpected_error",
        "status_worker_error",
        "status_worker_oom",
        "status_timed_out",
        "status_stopped",
    ]
)


def default_store(repository, environ):
    """$TRITONIZE_JOB_STORE, else ~/.cache/tritonize/jobs/<repository folder name>-<hash of its absolute path>."""
    if environ.get(JOB_STORE_ENV):
        return environ[JOB_STORE_ENV]
    path = os.path.abspath(repository)
    digest = hashlib.sha256(path.encode("utf-8", errors="surrogateescape")).hexdigest()[:12]
    name = re.sub(r"[^0-9A-Za-z_.-]", "_", os.path.basename(path.rstrip("/"))) or "repository"
    return os.path.join(os.path.expanduser("~"), ".cache", "tritonize", "jobs", f"{name}-{digest}")


def now_rfc3339():
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_rfc3339(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def write_atomic(path, data):
    """`path` holds `data` whole or keeps what it held: temporary file, fsync, rename, fsync the folder."""
    temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    _fsync_dir(os.path.dirname(path))


def _fsync_dir(path):
    try:
        fd = os.open(path or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class Progress:
    """What progress.jsonl says: per batch its attempts and end, and on_job_complete's."""

    succeeded: set = field(default_factory=set)
    dead_lettered: set = field(default_factory=set)
    attempts: dict = field(default_factory=dict)  # batch_id -> failed attempts (predict raised)
    crashes: dict = field(default_factory=dict)  # batch_id -> worker crashes while it ran
    seconds: float = 0.0  # total time of the succeeded batches
    complete_started: bool = False
    complete_done: bool = False
    complete_error: str | None = None  # what on_job_complete raised

    def done(self, batch_id):
        return batch_id in self.succeeded or batch_id in self.dead_lettered

    def apply(self, event):
        batch_id = event.get("batch_id")
        kind = event.get("event")
        if kind == "succeeded":
            self.succeeded.add(batch_id)
            self.seconds += event.get("seconds", 0.0)
        elif kind == "failed":
            self.attempts[batch_id] = self.attempts.get(batch_id, 0) + 1
        elif kind == "crashed":
            self.crashes[batch_id] = self.crashes.get(batch_id, 0) + 1
        elif kind == "dead_lettered":
            self.dead_lettered.add(batch_id)
        elif kind == "on_job_complete_started":
            self.complete_started = True
        elif kind == "on_job_complete_done":
            self.complete_done = True
            self.complete_error = event.get("error")


class ProgressLog:
    """Appends events to a job's progress.jsonl (thread-safe)."""

    def __init__(self, path):
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self._synced = time.monotonic()

    def append(self, event, **fields):
        line = json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line)
            self._file.flush()
            if time.monotonic() - self._synced >= FSYNC_INTERVAL_S:
                os.fsync(self._file.fileno())
                self._synced = time.monotonic()

    def sync(self):
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._synced = time.monotonic()

    def close(self):
        self.sync()
        with self._lock:
            self._file.close()


class UnknownJob(KeyError):
    pass


class JobStore:
    def __init__(self, root):
        self.root = os.path.abspath(root)

    def job_dir(self, api, job_id):
        if not API_NAME.fullmatch(api) or not JOB_ID.fullmatch(job_id):
            raise UnknownJob(job_id)
        return os.path.join(self.root, api, job_id)

    def _path(self, api, job_id, name):
        return os.path.join(self.job_dir(api, job_id), name)

    # --- the record and the submission

    def create(self, record, submission):
        """A new job folder with its record and submission, or FileExistsError."""
        directory = self.job_dir(record["api_name"], record["job_id"])
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        partial = directory + ".creating"
        os.makedirs(partial)
        write_atomic(os.path.join(partial, "submission.json"), json.dumps(submission).encode("utf-8"))
        write_atomic(os.path.join(partial, "job.json"), json.dumps(record, indent=1).encode("utf-8"))
        os.rename(partial, directory)  # the job exists whole or not at all
        _fsync_dir(os.path.dirname(directory))

    def write_record(self, record):
        data = json.dumps(record, indent=1).encode("utf-8")
        write_atomic(self._path(record["api_name"], record["job_id"], "job.json"), data)

    def read_record(self, api, job_id):
        try:
            with open(self._path(api, job_id, "job.json"), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            raise UnknownJob(job_id) from None

    def read_submission(self, api, job_id):
        with open(self._path(api, job_id, "submission.json"), encoding="utf-8") as f:
            return json.load(f)

    def jobs(self, api=None):
        """[(api, job_id)] of every job in the store (of one API)."""
        found = []
        apis = [api] if api is not None else _listdir(self.root)
        for name in apis:
            for job_id in _listdir(os.path.join(self.root, name)):
                if JOB_ID.fullmatch(job_id) and API_NAME.fullmatch(name):
                    found.append((name, job_id))
        return found

    # --- batches

    def write_batches(self, api, job_id, batches):
        """Writes every batch (an iterable of lists) -> how many; the file appears only when complete."""
        path = self._path(api, job_id, "batches.jsonl")
        partial = path + ".partial"
        count = 0
        with open(partial, "w", encoding="utf-8") as out:
            for items in batches:
                text = json.dumps(items, separators=(",", ":"))  # no newline inside: json.dumps escapes them
                out.write(f'{{"batch_id":"{batch_id(count)}","items":{text}}}\n')
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
        _fsync_dir(os.path.dirname(path))
        return count

    def discard_partial_batches(self, api, job_id):
        try:
            os.remove(self._path(api, job_id, "batches.jsonl.partial"))
        except OSError:
            pass

    def read_batches(self, api, job_id):
        """Yields (batch_id, the items as JSON text) in order: sent as they are, never parsed again."""
        with open(self._path(api, job_id, "batches.jsonl"), encoding="utf-8") as f:
            for line in f:
                match = _BATCH_LINE.fullmatch(line.rstrip("\n"))
                if match is None:
                    raise ValueError(f"{f.name}: not a batch line written by this store")
                yield match.group(1), match.group(2)

    # --- progress

    def progress_log(self, api, job_id):
        return ProgressLog(self._path(api, job_id, "progress.jsonl"))

    def read_progress(self, api, job_id):
        progress = Progress()
        try:
            with open(self._path(api, job_id, "progress.jsonl"), encoding="utf-8") as f:
                for line in f:
                    try:
                        progress.apply(json.loads(line))
                    except ValueError:  # the line being written right now
                        break
        except FileNotFoundError:
            pass
        return progress

    # --- the job's log

    def log(self, api, job_id, message):
        line = f"{now_rfc3339()} {message.rstrip()}\n"
        with open(self._path(api, job_id, "job.log"), "a", encoding="utf-8") as f:
            f.write(line)

    def read_log(self, api, job_id):
        self.job_dir(api, job_id)
        try:
            with open(self._path(api, job_id, "job.log"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            if not os.path.isdir(self.job_dir(api, job_id)):
                raise UnknownJob(job_id) from None
            return ""

    # --- stop requests and dead letters

    def request_stop(self, api, job_id):
        write_atomic(self._path(api, job_id, "stop"), b"")

    def stop_requested(self, api, job_id):
        return os.path.exists(self._path(api, job_id, "stop"))

    def dead_letter_dir(self, api, job_id):
        return self._path(api, job_id, "dead_letter")


def batch_id(index):
    return f"{index:06d}"


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []
