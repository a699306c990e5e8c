"""Constructing a predictor that takes python_client (Cortex's multi_model_reloading)."""

import atexit
import inspect
import logging
import os
import threading
import traceback

from .constants import DEFAULT_MODEL_POLL_INTERVAL_S
from .model_metrics import LoadedModelsGauge
from .python_client import PythonClient

log = logging.getLogger("tritonize")
_CLIENTS: list[PythonClient] = []  # this process's python_clients, for close_all()


def construct_with_models(cls, kwargs, settings, project_dir, instance_name=None):
    """-> the predictor, built with python_client when its __init__ names it.

    load_model is bound to the object under construction before __init__ runs, so __init__ may
    call get_model() already (Cortex allowed that, with self=None; here self is the object).
    Then the poller starts.
    """
    models = resolve_locations(settings.models, project_dir)
    gauge = LoadedModelsGauge(settings.name, instance_name)
    client = PythonClient(models, api_name=settings.name, on_change=gauge.update)
    _CLIENTS.append(client)
    atexit.register(client.close)
    if "python_client" in _init_args(cls):
        kwargs = dict(kwargs, python_client=client)
    if type(cls).__call__ is type.__call__ and cls.__new__ is object.__new__:
        instance = object.__new__(cls)
        client.set_load_method(instance.load_model)
        instance.__init__(**kwargs)
    else:  # a custom metaclass or __new__: Cortex's way
        client.set_load_method(lambda model_path: cls.load_model(None, model_path))
        instance = cls(**kwargs)
        client.set_load_method(instance.load_model)
    interval = models.get("poll_interval", DEFAULT_MODEL_POLL_INTERVAL_S)
    if interval:
        client.poller = ModelPoller(client, interval)
        client.poller.start()
    return instance


def close_all():
    """Stop every poller and remove the S3 downloads (model.py's finalize: the stub skips atexit)."""
    while _CLIENTS:
        _CLIENTS.pop().close()


def _init_args(cls):
    try:
        return set(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return set()


def resolve_locations(models, project_dir):
    """Local folders are read where they were at build time (so `serve` sees changes live), or
    from the repository's copy of the project when that place does not exist (an image)."""

    def where(location):
        if location is None:
            return None
        path, copy = location["path"], location.get("project_path")
        if copy is not None and not os.path.isdir(path):
            return os.path.join(project_dir, copy)
        return path

    resolved = dict(models)
    resolved["models"] = [{"name": m["name"], "path": where(m)} for m in models.get("models", [])]
    resolved["dir"] = where(models.get("dir"))
    return resolved


class ModelPoller(threading.Thread):
    """Calls client.refresh() every `interval` seconds (Cortex: 10) until stopped."""

    def __init__(self, client, interval):
        super().__init__(name="tritonize-model-poller", daemon=True)
        self._client, self._interval = client, interval
        self._stopped = threading.Event()

    def run(self):
        while not self._stopped.wait(self._interval):
            try:
                self._client.refresh()
            except Exception:  # never let the poller die: the next round may work
                log.error("model poller failed:\n%s", traceback.format_exc())

    def stop(self):
        self._stopped.set()
