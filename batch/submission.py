"""A job submission (Cortex's BatchJobSubmission JSON) parsed and checked; every error names its field.

Cortex v0.33's rules (pkg/operator/resources/job/batchapi/validations.go): `workers` >= 1, exactly one of
`item_list`, `file_path_lister`, `delimited_files`, `batch_size` >= 1, `items` and `s3_paths` not empty,
`timeout` >= 1, `sqs_dead_letter_queue.max_receive_count` >= 1. tritonize adds `dead_letter{path,
max_receive_count}`: where dead-lettered batches go (a local folder or s3://bucket/prefix).
"""

import json
from dataclasses import dataclass, field

from tritonize.adapter.runtime.model_storage import S3_SCHEME

from .globs import GlobError, compile_glob

SOURCE_KEYS = ("item_list", "file_path_lister", "delimited_files")
# Cortex's SQS message limit per item (validations.go: _messageSizeLimit, SQS's 256 KiB).
ITEM_SIZE_LIMIT = 256 * 1024
DEFAULT_MAX_RECEIVE_COUNT = 1  # without a dead-letter setting Cortex tried each batch once
KNOWN_KEYS = frozenset(("workers", "timeout", "config", "sqs_dead_letter_queue", "dead_letter", *SOURCE_KEYS))


class SubmissionError(Exception):
    """A bad submission: HTTP 400, the message names the field."""

    status = 400


@dataclass(frozen=True)
class Source:
    kind: str  # one of SOURCE_KEYS
    batch_size: int
    items: list = field(default_factory=list)  # item_list
    paths: tuple = ()  # file_path_lister / delimited_files: s3://..., local paths, file:// URLs
    includes: tuple = ()
    excludes: tuple = ()


@dataclass(frozen=True)
class Submission:
    workers: int
    source: Source
    timeout: int | None = None
    config: dict = field(default_factory=dict)
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    dead_letter_path: str | None = None  # None: the job's own folder in the store
    sqs_dead_letter_queue: dict | None = None  # kept as given (the arn is unused)

    def to_json(self):
        """The submission as Cortex's JSON (stored with the job; parse() reads it back)."""
        source = {"batch_size": self.source.batch_size}
        if self.source.kind == "item_list":
            source["items"] = self.source.items
        else:
            source.update(
                s3_paths=list(self.source.paths),
                includes=list(self.source.includes),
                excludes=list(self.source.excludes),
            )
        data = {"workers": self.workers, self.source.kind: source, "config": self.config}
        if self.timeout is not None:
            data["timeout"] = self.timeout
        if self.sqs_dead_letter_queue is not None:
            data["sqs_dead_letter_queue"] = self.sqs_dead_letter_queue
        if self.dead_letter_path is not None or self.sqs_dead_letter_queue is None:
            data["dead_letter"] = {"max_receive_count": self.max_receive_count}
            if self.dead_letter_path is not None:
                data["dead_letter"]["path"] = self.dead_letter_path
        return data


def local_paths(submission):
    """The submission's paths on this machine (local paths, file:// URLs): its sources and its dead-letter folder."""
    paths = [*submission.source.paths, *([submission.dead_letter_path] if submission.dead_letter_path else [])]
    return [path for path in paths if not path.startswith(S3_SCHEME)]


def require_remote(submission):
    """A client on another machine names S3 only (as with Cortex): local paths would let any client of the
    endpoint list and read this machine's files (dryRun answers the listing) and write dead letters anywhere."""
    paths = local_paths(submission)
    if paths:
        raise SubmissionError(
            f"{paths[0]!r}: local paths and file:// URLs are accepted only from this machine (a client on "
            "127.0.0.1 or ::1); use s3://bucket/key"
        )


def parse_body(body):
    """Request body bytes -> Submission, or SubmissionError."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"the job submission is not valid JSON: {exc}") from None
    return parse(data)


# A prediction's payload posted to a BatchAPI (nothing of a submission in it): say what the API takes.
NOT_A_SUBMISSION = (
    "this API is a BatchAPI: POST a job submission, a JSON object with `workers` and one of "
    + ", ".join(SOURCE_KEYS)
    + ' (e.g. {"workers": 1, "item_list": {"items": [...], "batch_size": 8}}); predictions go to a RealtimeAPI'
)


def parse(data):
    if not isinstance(data, dict):
        raise SubmissionError(f"the job submission must be a JSON object, got {_kind(data)}: {NOT_A_SUBMISSION}")
    if data and not set(data) & KNOWN_KEYS:
        raise SubmissionError(f"{sorted(data)[0]}: unknown field: {NOT_A_SUBMISSION}")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise SubmissionError(f"{unknown[0]}: unknown field (known: {', '.join(sorted(KNOWN_KEYS))})")
    given = [key for key in SOURCE_KEYS if data.get(key) is not None]
    if not given:
        raise SubmissionError(f"specify exactly one of {', '.join(SOURCE_KEYS)}")
    if len(given) > 1:
        raise SubmissionError(f"{given[0]}: conflicts with {', '.join(given[1:])} (specify exactly one)")
    source = _source(given[0], data[given[0]])
    workers = _integer(data, "workers", required=True)
    timeout = _integer(data, "timeout")
    config = data.get("config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise SubmissionError(f"config: expected a JSON object, got {_kind(config)}")
    max_receive_count = DEFAULT_MAX_RECEIVE_COUNT
    sqs = data.get("sqs_dead_letter_queue")
    if sqs is not None:
        _object(sqs, "sqs_dead_letter_queue")
        arn = sqs.get("arn")
        if not isinstance(arn, str) or not arn:
            raise SubmissionError("sqs_dead_letter_queue.arn: cannot be empty")
        max_receive_count = _integer(sqs, "max_receive_count", "sqs_dead_letter_queue.", required=True)
    dead_letter_path = None
    dead_letter = data.get("dead_letter")
    if dead_letter is not None:
        _object(dead_letter, "dead_letter")
        path = dead_letter.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise SubmissionError("dead_letter.path: expected a local folder or s3://bucket/prefix")
        dead_letter_path = path
        if dead_letter.get("max_receive_count") is not None:
            max_receive_count = _integer(dead_letter, "max_receive_count", "dead_letter.", required=True)
    return Submission(
        workers=workers,
        source=source,
        timeout=timeout,
        config=config,
        max_receive_count=max_receive_count,
        dead_letter_path=dead_letter_path,
        sqs_dead_letter_queue=sqs,
    )


def _source(kind, value):
    _object(value, kind)
    batch_size = _integer(value, "batch_size", f"{kind}.", required=True)
    if kind == "item_list":
        items = value.get("items")
        if not isinstance(items, list):
            raise SubmissionError(f"{kind}.items: expected a list of items, got {_kind(items)}")
        if not items:
            raise SubmissionError(f"{kind}.items: must have at least 1 element")
        for index, item in enumerate(items):
            size = len(json.dumps(item))
            if size > ITEM_SIZE_LIMIT:
                raise SubmissionError(
                    f"{kind}.items[{index}]: has size {size} bytes which exceeds the limit ({ITEM_SIZE_LIMIT} bytes)"
                )
        return Source(kind, batch_size, items=items)
    paths = _strings(value, "s3_paths", kind)
    if not paths:
        raise SubmissionError(f"{kind}.s3_paths: must have at least 1 element")
    for path in paths:
        if path.startswith("s3://") and not path[5:].split("/", 1)[0]:
            raise SubmissionError(f"{kind}.s3_paths: {path!r} is not a valid S3 path (s3://bucket/key)")
    globs = {}
    for key in ("includes", "excludes"):
        globs[key] = _strings(value, key, kind)
        for pattern in globs[key]:
            try:
                compile_glob(pattern)
            except GlobError as exc:
                raise SubmissionError(f"{kind}.{key}: {pattern!r}: {exc}") from None
    return Source(
        kind, batch_size, paths=tuple(paths), includes=tuple(globs["includes"]), excludes=tuple(globs["excludes"])
    )


def _strings(value, key, kind):
    items = value.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise SubmissionError(f"{kind}.{key}: expected a list of strings")
    return items


def _object(value, name):
    if not isinstance(value, dict):
        raise SubmissionError(f"{name}: expected a JSON object, got {_kind(value)}")


def _integer(data, key, prefix="", required=False):
    value = data.get(key)
    if value is None:
        if required:
            raise SubmissionError(f"{prefix}{key}: required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise SubmissionError(f"{prefix}{key}: expected an integer, got {json.dumps(value)[:40]}")
    if value < 1:
        raise SubmissionError(f"{prefix}{key}: must be greater than or equal to 1 (got {value})")
    return value


def _kind(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
