"""Where a job's files are: S3 (s3://bucket/key), a local path, or a file:// URL.

Listing follows Cortex's S3 iterator: every object whose key starts with the given key (a plain
prefix, not only a folder); a local path lists the file itself, or every file under the folder (or
starting with the path). Paths come back in the form given (s3://..., /abs/path or file:///abs/path),
which is what include/exclude globs match. boto3 is imported only for s3:// (model_storage.s3_client).
"""

import io
import json
import os

from tritonize.adapter.runtime.model_storage import S3_SCHEME, StorageError, s3_client

from .store import write_atomic

FILE_SCHEME = "file://"


class LocationError(Exception):
    """A location could not be listed, read or written (the message names it)."""


def is_s3(path):
    return path.startswith(S3_SCHEME)


def split_s3(path):
    """'s3://bucket/a/b' -> ('bucket', 'a/b'): the key is kept as a plain prefix."""
    bucket, _, key = path[len(S3_SCHEME) :].partition("/")
    return bucket, key


def local_path(path):
    return path[len(FILE_SCHEME) :] if path.startswith(FILE_SCHEME) else path


def _client():
    try:
        return s3_client()
    except StorageError as exc:
        raise LocationError(str(exc)) from None


def list_files(path):
    """Every file at or under `path`, sorted, in the form given."""
    if is_s3(path):
        bucket, prefix = split_s3(path)
        found = []
        try:
            for page in _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    if not item["Key"].endswith("/"):  # folder markers
                        found.append(f"{S3_SCHEME}{bucket}/{item['Key']}")
        except LocationError:
            raise
        except Exception as exc:  # botocore: no such bucket, credentials, network
            raise LocationError(f"listing {path} failed: {exc}") from None
        return sorted(found)
    prefix = local_path(path)
    scheme = FILE_SCHEME if path.startswith(FILE_SCHEME) else ""
    if os.path.isfile(prefix):
        return [path]
    root = prefix if os.path.isdir(prefix) else os.path.dirname(prefix) or "."
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            if full.startswith(prefix):
                found.append(scheme + full)
    return sorted(found)


def read_lines(path):
    """The file's lines as text (UTF-8), streamed."""
    if is_s3(path):
        bucket, key = split_s3(path)
        try:
            body = _client().get_object(Bucket=bucket, Key=key)["Body"]
        except LocationError:
            raise
        except Exception as exc:
            raise LocationError(f"reading {path} failed: {exc}") from None
        yield from io.TextIOWrapper(body, encoding="utf-8")
        return
    try:
        with open(local_path(path), encoding="utf-8") as lines:
            yield from lines
    except OSError as exc:
        raise LocationError(f"reading {path} failed: {exc.strerror}") from None


def write_json(folder, name, document):
    """Write `document` as <folder>/<name> (a local folder, created, written atomically; or an S3 prefix)."""
    data = json.dumps(document, indent=1).encode("utf-8")
    if is_s3(folder):
        bucket, prefix = split_s3(folder)
        key = (prefix.rstrip("/") + "/" if prefix.strip("/") else "") + name
        try:
            _client().put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
        except LocationError:
            raise
        except Exception as exc:
            raise LocationError(f"writing {folder}/{name} failed: {exc}") from None
        return f"{S3_SCHEME}{bucket}/{key}"

    directory = local_path(folder)
    try:
        os.makedirs(directory, exist_ok=True)
        write_atomic(os.path.join(directory, name), data)
    except OSError as exc:
        raise LocationError(f"writing {os.path.join(directory, name)} failed: {exc.strerror}") from None
    return os.path.join(directory, name)
