"""Where multi-model files live: a local directory or an S3 prefix.

Both list a tree as {relative path: stamp}: a tuple that changes when the file does, its last
item the modification time in nanoseconds. Both
fetch a subtree to local disk. boto3 is imported only for s3:// paths.
"""

import importlib
import os
import shutil
import tempfile

from .constants import MODEL_CACHE_DIR_ENV

S3_SCHEME = "s3://"
DOWNLOADS_PREFIX = "tritonize-models-"  # <prefix><api>-<pid>-<random>: one process's S3 downloads


class StorageError(Exception):
    """A model location could not be listed or fetched."""


def is_s3(path):
    return path.startswith(S3_SCHEME)


def split_s3(path):
    """'s3://bucket/a/b' -> ('bucket', 'a/b/'); the prefix always ends with '/' (or is '')."""
    rest = path[len(S3_SCHEME) :]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


def _hidden(relpath):
    return any(part.startswith(".") for part in relpath.split("/"))


class LocalStorage:
    """Files under a local root are read in place: fetch() returns the folder itself."""

    copies = False

    def list(self, root):
        listing = {}
        if not os.path.isdir(root):
            return listing
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                if _hidden(rel):
                    continue
                try:
                    info = os.stat(full)
                except OSError:  # removed while listing
                    continue
                listing[rel] = (info.st_size, info.st_mtime_ns)
        return listing

    def join(self, root, *parts):
        return os.path.join(root, *parts)

    def fetch(self, location, keys, dest):
        return location


class S3Storage:
    """An S3 bucket through boto3, honouring the standard AWS variables (AWS_ENDPOINT_URL too)."""

    copies = True

    def __init__(self):
        self._client = s3_client("s3:// model paths need boto3 in the predictor's Python environment")

    def list(self, root):
        bucket, prefix = split_s3(root)
        listing = {}
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    rel = item["Key"][len(prefix) :]
                    if not rel or rel.endswith("/") or _hidden(rel):
                        continue  # folder markers
                    modified = item.get("LastModified")
                    ns = int(modified.timestamp() * 10**9) if modified is not None else 0
                    listing[rel] = (item.get("Size"), item.get("ETag"), ns)
        except Exception as exc:  # botocore's errors: no such bucket, credentials, network
            raise StorageError(f"listing {root} failed: {exc}") from None
        return listing

    def join(self, root, *parts):
        return root.rstrip("/") + "/" + "/".join(parts)

    def fetch(self, location, keys, dest):
        """Download the files `keys` (relative to `location`) into dest; returns dest."""
        bucket, prefix = split_s3(location)
        partial = dest + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            for rel in keys:
                target = os.path.join(partial, *rel.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                self._client.download_file(bucket, prefix + rel, target)
        except Exception as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise StorageError(f"downloading {location} failed: {exc}") from None
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.rename(partial, dest)
        return dest


def s3_client(missing="s3:// paths need boto3 in this Python environment"):
    """boto3's S3 client from the standard AWS variables (AWS_ENDPOINT_URL[_S3] too); boto3 imported here only."""
    try:  # only s3:// locations need boto3, from this Python's environment
        boto3 = importlib.import_module("boto3")
    except ImportError:
        raise StorageError(f"{missing} (pip install boto3)") from None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.session.Session().client("s3", endpoint_url=endpoint)


def storage_for(path):
    return S3Storage() if is_s3(path) else LocalStorage()


def make_download_dir(api_name):
    """A private folder for this process's S3 downloads, under $TRITONIZE_MODEL_CACHE_DIR or the temp dir."""
    base = os.environ.get(MODEL_CACHE_DIR_ENV) or tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    _remove_stale_caches(base)
    return tempfile.mkdtemp(prefix=f"{DOWNLOADS_PREFIX}{api_name}-{os.getpid()}-", dir=base)


def _remove_stale_caches(base):
    """Remove the download folders of processes that are gone (killed before they could clean up)."""
    for name in os.listdir(base):
        parts = name.rsplit("-", 2)
        if not name.startswith(DOWNLOADS_PREFIX) or len(parts) != 3 or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        except OSError:  # alive, another user's
            pass
