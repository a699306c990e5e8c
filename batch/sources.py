"""A job's batches from its source, as Cortex enqueued them (pkg/operator/resources/job/batchapi/enqueue.go).

`item_list`: the items cut into lists of batch_size. `file_path_lister`: the listed file paths, batch_size
paths per batch. `delimited_files`: the files' contents, newline-delimited JSON, batch_size items per
batch (a batch may span files, as Cortex's did). A line that is not JSON fails the job while enqueuing,
naming the file and the line.
"""

import json

from . import locations
from .globs import compile_glob, matches


class SourceError(Exception):
    """The job's data could not be enqueued (status_enqueue_failed); the message says where."""


def list_files(source):
    """The files of a file_path_lister / delimited_files source, after includes and excludes."""
    includes = [compile_glob(pattern) for pattern in source.includes]
    excludes = [compile_glob(pattern) for pattern in source.excludes]
    found = []
    for path in source.paths:
        try:
            listed = locations.list_files(path)
        except locations.LocationError as exc:
            raise SourceError(str(exc)) from None
        for name in listed:
            if includes and not matches(includes, name):
                continue
            if matches(excludes, name):
                continue
            found.append(name)
    return found


def batches(source):
    """Yields each batch: a list of items (JSON values) or of file paths."""
    if source.kind == "item_list":
        items = source.items
        for start in range(0, len(items), source.batch_size):
            yield items[start : start + source.batch_size]
        return
    files = list_files(source)
    if not files:
        raise SourceError("no files match search criteria (s3_paths, includes, excludes)")
    if source.kind == "file_path_lister":
        for start in range(0, len(files), source.batch_size):
            yield files[start : start + source.batch_size]
        return
    batch = []
    for path in files:
        for _, item in _json_lines(path):
            batch.append(item)
            if len(batch) == source.batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def _json_lines(path):
    try:
        for number, line in enumerate(locations.read_lines(path), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                raise SourceError(f"{path}: line {number} is not valid JSON ({exc})") from None
    except locations.LocationError as exc:
        raise SourceError(str(exc)) from None
    except UnicodeDecodeError:
        raise SourceError(f"{path}: not UTF-8 text") from None


def dry_run(source):
    """Cortex's dryRun: the files a job would read (file sources), or its batch count (item_list)."""
    if source.kind == "item_list":
        count = -(-len(source.items) // source.batch_size)
        return [f"{len(source.items)} items in {count} batches of up to {source.batch_size}"]
    files = list_files(source)
    if not files:
        raise SourceError("no files match search criteria (s3_paths, includes, excludes)")
    return files
