"""python_client: the multi-model object Cortex passed to a predictor's __init__.

get_model(name, version) returns what the predictor's load_model(path) made of that model's
folder, loading it on first use. With cache_size/disk_cache_size, at most that many models stay
in memory / on disk in this process, least recently used evicted first. A background poller
(multi_model.ModelPoller) calls refresh(): it loads new "latest" versions and files changed in place
before it publishes them, so requests keep using what they had until the new one is ready, and a
version whose load_model failed is skipped until its files change.
"""

import gc
import logging
import os
import shutil
import threading
import traceback
from collections import OrderedDict, namedtuple

from .constants import SINGLE_MODEL_NAME
from .model_errors import ModelLoadError, ModelNotFound, UserRuntimeException
from .model_storage import LocalStorage, StorageError, is_s3, make_download_dir, storage_for
from .model_tree import discover, latest_version

log = logging.getLogger("tritonize")

_Loaded = namedtuple("_Loaded", "obj fingerprint")


class PythonClient:
    def __init__(self, settings, api_name="api", on_change=None):
        """settings: the API's "models" settings (adapter/models_spec.py writes them)."""
        self._api = api_name
        self._mode = settings["mode"]  # path | paths | dir
        self._models = [(m["name"], m["path"]) for m in settings.get("models", [])]
        self._dir = settings.get("dir")
        self._cache_size = settings.get("cache_size")
        self._disk_cache_size = settings.get("disk_cache_size")
        self._on_change = on_change or (lambda keys: None)
        self._load_fn = None
        self._storages = {}
        self._lock = threading.RLock()  # held only for bookkeeping, never while loading
        self._key_locks = {}
        self._available = {}  # name -> {version: VersionEntry}, as last published
        self._loaded = OrderedDict()  # (name, version) -> _Loaded, least recently used first
        self._disk = OrderedDict()  # (name, version) -> (folder, fingerprint), for S3 copies
        self._broken = {}  # (name, version) -> fingerprint whose load_model failed
        self._problems = set()
        self._cache_dir = None
        self.poller = None  # set by multi_model.construct_with_models; close() stops it
        found, problems = self._discover()  # StorageError here fails the API's load
        self._report(problems)
        self._available = found

    # ---- what the predictor calls -------------------------------------------------------------
    def set_load_method(self, load_model_fn):
        self._load_fn = load_model_fn

    @property
    def caching(self):
        return bool(self._cache_size and self._disk_cache_size)

    @property
    def metadata(self):
        """{name: {"versions": [...], "timestamps": [...]}} of the models available now."""
        with self._lock:
            available = dict(self._available)
        return {
            name: {
                "versions": sorted(versions, key=int),
                "timestamps": [versions[v].timestamp for v in sorted(versions, key=int)],
            }
            for name, versions in available.items()
        }

    def get_model(self, model_name=None, model_version="latest"):
        version = "latest" if model_version is None else str(model_version)
        if version != "latest" and not version.isnumeric():
            raise UserRuntimeException("model_version must be either a parse-able numeric value or 'latest'")
        name = self._model_name(model_name)
        with self._lock:
            versions = self._available.get(name)
        if not versions:
            if self._mode == "dir":
                raise ModelNotFound(f"'{name}' model wasn't found in the list of available models")
            raise ModelNotFound(f"model {name} of version {version} wasn't found")
        if version == "latest":
            return self._get_latest(name)
        entry = versions.get(version)
        if entry is None:
            raise ModelNotFound(f"model {name} of version {version} wasn't found")
        return self._obtain((name, version), entry)

    # ---- resolving names and versions ---------------------------------------------------------
    def _model_name(self, model_name):
        if self._mode == "path":
            return SINGLE_MODEL_NAME  # Cortex ignored the name for a single model
        if model_name is None:
            if self._mode == "dir":
                raise UserRuntimeException("model_name was not specified")
            names = [name for name, _ in self._models]
            raise UserRuntimeException(f"model_name was not specified, choose one of the following: {names}")
        model_name = str(model_name)
        if self._mode == "paths" and model_name not in dict(self._models):
            raise ModelNotFound(f"'{model_name}' model wasn't found in the list of available models")
        return model_name

    def _broken_versions(self, name, versions):
        return {v for v, e in versions.items() if self._broken.get((name, v)) == e.fingerprint}

    def _latest(self, name, versions):
        return latest_version(versions, skip=self._broken_versions(name, versions))

    def _get_latest(self, name):
        """The highest version whose load_model works: a broken newest one falls back to the next."""
        failure, tried = None, set()
        while True:
            with self._lock:
                versions = self._available.get(name) or {}
                version = latest_version(versions, skip=tried | self._broken_versions(name, versions))
            if version is None:
                if failure is not None:
                    raise failure
                raise ModelNotFound(
                    f"'{name}' model's versions have been removed; "
                    "add at least a version to the model to resume operations"
                )
            try:
                return self._obtain((name, version), versions[version])
            except ModelLoadError as exc:
                failure = exc
                tried.add(version)

    # ---- loading ------------------------------------------------------------------------------
    def _key_lock(self, key):
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _obtain(self, key, entry):
        with self._lock:
            loaded = self._touch(key)
            if loaded is not None:
                return loaded.obj
            if self._broken.get(key) == entry.fingerprint:
                raise ModelLoadError(
                    f"failed (re-)loading model {key[0]} of version {key[1]}",
                    "its files have not changed since load_model failed",
                )
        with self._key_lock(key):  # one load per model version; other models go on
            with self._lock:
                loaded = self._touch(key)
                if loaded is not None:
                    return loaded.obj
            obj = self._load(key, entry)
            self._store(key, entry, obj)
            return obj

    def _touch(self, key):
        loaded = self._loaded.get(key)
        if loaded is not None:
            self._loaded.move_to_end(key)
            if key in self._disk:
                self._disk.move_to_end(key)
        return loaded

    def _load(self, key, entry):
        name, version = key
        if self._load_fn is None:
            raise ModelLoadError(f"model {name} of version {version}: the predictor has no load_model()")
        try:
            path = self._local_copy(key, entry)
        except StorageError as exc:
            log.error("%s: model %s of version %s: %s", self._api, name, version, exc)
            raise ModelLoadError(f"failed (re-)loading model {name} of version {version}", str(exc)) from None
        log.info("%s: loading model %s of version %s", self._api, name, version)
        try:
            return self._load_fn(path)
        except Exception as exc:
            with self._lock:
                self._broken[key] = entry.fingerprint
            log.error(
                "%s: load_model failed for model %s of version %s (skipped until its files change):\n%s",
                self._api,
                name,
                version,
                traceback.format_exc(),
            )
            raise ModelLoadError(f"failed (re-)loading model {name} of version {version}", str(exc)) from None

    def _store(self, key, entry, obj):
        with self._lock:
            self._loaded[key] = _Loaded(obj, entry.fingerprint)
            self._loaded.move_to_end(key)
            evicted = []
            while self._cache_size and len(self._loaded) > self._cache_size:
                evicted.append(self._loaded.popitem(last=False))
            keys = list(self._loaded)
        self._dropped([k for k, _ in evicted], f"from memory (cache_size {self._cache_size})")
        del evicted
        self._evict_disk()
        self._on_change(keys)

    def _dropped(self, keys, why):
        for name, version in keys:
            log.info("%s: removed model %s of version %s %s", self._api, name, version, why)
        if keys:
            gc.collect()  # let the model's memory go now, as Cortex's `del` + collect did

    def _local_copy(self, key, entry):
        """The folder load_model gets: the local folder itself, or an S3 copy in the disk cache."""
        storage = self._storage(entry.location)
        if not storage.copies:
            return entry.location
        with self._lock:
            disk = self._disk.get(key)
            if disk and disk[1] == entry.fingerprint:
                self._disk.move_to_end(key)
                return disk[0]
        safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in key[0])
        dest = os.path.join(self._cache_root(), safe_name, f"{key[1]}-{entry.fingerprint}")
        log.info("%s: downloading model %s of version %s from %s", self._api, key[0], key[1], entry.location)
        storage.fetch(entry.location, entry.files, dest)
        with self._lock:
            old = self._disk.pop(key, None)
            self._disk[key] = (dest, entry.fingerprint)
        if old and old[0] != dest:
            shutil.rmtree(old[0], ignore_errors=True)
        self._evict_disk(keep=key)
        return dest

    def _evict_disk(self, keep=None):
        """Down to disk_cache_size S3 copies: least recently used first, never one in memory."""
        stale = []
        with self._lock:
            while self._disk_cache_size and len(self._disk) > self._disk_cache_size:
                victim = next((k for k in self._disk if k not in self._loaded and k != keep), None)
                if victim is None:
                    break
                stale.append(self._disk.pop(victim)[0])
                log.info(
                    "%s: removed model %s of version %s from disk (disk_cache_size %s)",
                    self._api,
                    victim[0],
                    victim[1],
                    self._disk_cache_size,
                )
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)

    def _cache_root(self):
        if self._cache_dir is None:
            self._cache_dir = make_download_dir(self._api)
        return self._cache_dir

    def _storage(self, location):
        kind = "s3" if is_s3(location) else "local"
        if kind not in self._storages:
            self._storages[kind] = storage_for(location) if kind == "s3" else LocalStorage()
        return self._storages[kind]

    # ---- live reloading -----------------------------------------------------------------------
    def _discover(self):
        if self._dir is not None:
            return discover(self._storage(self._dir), models_dir=self._dir)
        found, problems = {}, []
        for name, location in self._models:
            more, issues = discover(self._storage(location), models=[(name, location)])
            found.update(more)
            problems.extend(issues)
        return found, problems

    def _report(self, problems):
        for text in set(problems) - self._problems:
            log.warning("%s: %s (not served)", self._api, text)
        self._problems = set(problems)

    def refresh(self):
        """One poll: load what changed in the background, then publish the new set of models."""
        try:
            found, problems = self._discover()
        except StorageError as exc:
            log.warning("%s: cannot list the models (%s); serving what is loaded", self._api, exc)
            return
        self._report(problems)
        with self._lock:
            old = self._available
            loaded = {k: v.fingerprint for k, v in self._loaded.items()}
        for key, entry in self._to_preload(old, found, loaded):
            self._preload(key, entry)
        with self._lock:
            self._available = found
            self._broken = {
                k: fp
                for k, fp in self._broken.items()
                if k[1] in found.get(k[0], {}) and found[k[0]][k[1]].fingerprint == fp
            }
            gone = [k for k in self._loaded if k[1] not in found.get(k[0], {})]
            dropped = [self._loaded.pop(k) for k in gone]
            stale = [
                k
                for k, (_, fp) in self._disk.items()
                if k not in self._loaded and (k[1] not in found.get(k[0], {}) or found[k[0]][k[1]].fingerprint != fp)
            ]
            folders = [self._disk.pop(k)[0] for k in stale]
            keys = list(self._loaded)
        if gone:
            self._on_change(keys)  # first: the gauge should follow what requests see
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        del dropped
        self._dropped(gone, "from memory: its files are no longer there")

    def _to_preload(self, old, found, loaded):
        """Versions in memory whose files changed, and new latest versions of models in use."""
        todo = []
        for name, versions in found.items():
            for version, entry in versions.items():
                key = (name, version)
                if key in loaded and loaded[key] != entry.fingerprint and self._broken.get(key) != entry.fingerprint:
                    todo.append((key, entry))
            old_latest = self._latest(name, old.get(name, {}))
            new_latest = self._latest(name, versions)
            if (
                new_latest not in (None, old_latest)
                and (name, old_latest) in loaded
                and (name, new_latest) not in loaded
            ):
                todo.append(((name, new_latest), versions[new_latest]))
        return todo

    def _preload(self, key, entry):
        with self._key_lock(key):
            try:
                obj = self._load(key, entry)
            except ModelLoadError:
                return  # logged; the version in memory (or the previous latest) keeps serving
            self._store(key, entry, obj)

    def close(self):
        if self.poller is not None:
            self.poller.stop()
        if self._cache_dir:
            shutil.rmtree(self._cache_dir, ignore_errors=True)
