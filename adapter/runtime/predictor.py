"""Import a Cortex predictor from its project and call it by argument name."""

import copy
import importlib.util
import inspect
import logging
import os
import sys
import traceback

from .constants import (
    BATCH_PREDICT_ARGS,
    POST_PREDICT_ARGS,
    POST_PREDICT_DRAIN_S,
    POST_PREDICT_DROPPED_METRIC,
    PREDICT_ARGS,
)
from .environment import python_path_entries
from .errors import PredictorLoadError
from .metrics import API_LABEL, COUNTER, MetricsClient, Recorder, metrics_sink
from .model_storage import StorageError
from .multi_model import construct_with_models
from .post_predict import PostPredictWorker

log = logging.getLogger("tritonize")


def _argument_names(function, allowed):
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return []
    return [name for name in params if name in allowed]


class LoadedPredictor:
    """One predictor object plus which arguments its methods take."""

    def __init__(self, instance, recorder=None, api_name=""):
        self.instance = instance
        self.predict_args = _argument_names(instance.predict, PREDICT_ARGS)
        self._predict = instance.predict
        self._predict_indices = tuple((name, PREDICT_ARGS.index(name)) for name in self.predict_args)
        post = getattr(instance, "post_predict", None)
        self.post_predict_args = _argument_names(post, POST_PREDICT_ARGS) if callable(post) else None
        self._post_indices = tuple((name, POST_PREDICT_ARGS.index(name)) for name in self.post_predict_args or ())
        self._recorder = recorder
        self._dropped_labels = ((API_LABEL, api_name),)
        self._post_worker = PostPredictWorker(post, on_drop=self._count_drop) if callable(post) else None
        self._batch_args = _argument_names(instance.predict, BATCH_PREDICT_ARGS)

    @property
    def wants_payload(self):
        return "payload" in self.predict_args

    def predict(self, payload, query_params, headers):
        # Runs for every request: index a tuple instead of building dicts.
        values = (payload, query_params, headers)
        return self._predict(**{name: values[i] for name, i in self._predict_indices})

    def predict_batch(self, payload, batch_id):
        """A BatchAPI's call: one batch of a job (a list of items) and its id, by argument name."""
        values = {"payload": payload, "batch_id": batch_id}
        return self._predict(**{name: values[name] for name in self._batch_args})

    def post_predict(self, response, payload, query_params, headers, nbytes=0):
        """Queue post_predict (if defined) for the background worker; never blocks, never raises.

        nbytes: about the memory the call holds (the payload and response it takes), for the queue's bound."""
        if self._post_worker is None:
            return
        values = (response, payload, query_params, headers)
        self._post_worker.submit({name: values[i] for name, i in self._post_indices}, nbytes)

    def _count_drop(self):
        if self._recorder is not None:
            self._recorder.record(COUNTER, POST_PREDICT_DROPPED_METRIC, self._dropped_labels, 1.0)

    def stop(self):
        """Instance shutdown: let queued post_predict calls finish (briefly), send pending metrics."""
        if self._post_worker is not None:
            self._post_worker.stop(POST_PREDICT_DRAIN_S)
        if self._recorder is not None:
            self._recorder.stop()


def _evict_foreign_modules(project_dir):
    """Drop cached modules that shadow the project's own top-level modules.

    Triton imports its `model.py` as `model`; a Cortex project often has its own
    `model.py` (`from model import Net`), which must win inside the predictor.
    """
    for entry in os.listdir(project_dir):
        name = entry[:-3] if entry.endswith(".py") else entry
        module = sys.modules.get(name)
        if module is None:
            continue
        location = os.path.abspath(getattr(module, "__file__", "") or "")
        if not location.startswith(os.path.abspath(project_dir) + os.sep):
            del sys.modules[name]


def prepare_process(project_dir, settings):
    """env, chdir and sys.path as Cortex set them up, before any user import.

    The API's environment first (predictor.env; the project's .env travels in it), so that the
    predictor module sees it at import time; then sys.path: PYTHONPATH's entries (Cortex exported
    PYTHONPATH=$PYTHONPATH:<python_path>; the stub itself ignores PYTHONPATH), python_path, the
    predictor's folder, the project."""
    predictor = settings.predictor
    for key, value in predictor.env.items():
        os.environ[str(key)] = str(value)
    os.chdir(project_dir)
    search_paths = python_path_entries(project_dir)
    search_paths += [os.path.join(project_dir, p) for p in predictor.python_path]
    search_paths.append(os.path.dirname(os.path.join(project_dir, predictor.path)))
    search_paths.append(project_dir)
    for path in reversed(search_paths):
        path = os.path.normpath(path)
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def merge_config(config, override):
    """`override` merged into `config` in place, nested mappings recursively, override's values winning
    (Cortex's merge_dicts_in_place_overwrite: a job's config over the API's predictor.config)."""
    for key, value in (override or {}).items():
        if isinstance(config.get(key), dict) and isinstance(value, dict):
            merge_config(config[key], value)
        else:
            config[key] = value
    return config


def load_predictor(project_dir, settings, extra_config=None, instance_name=None, job_spec=None):
    """Import the predictor class and construct it with its config.

    job_spec: a BatchAPI's job (adapter/runtime/batch.py): its config is merged over predictor.config and
    __init__ may take it as `job_spec`, as Cortex's batch workers did."""
    predictor = settings.predictor
    prepare_process(project_dir, settings)
    _evict_foreign_modules(project_dir)
    path = os.path.join(project_dir, predictor.path)
    module_name = os.path.splitext(os.path.basename(path))[0]
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        raise PredictorLoadError(f"importing {predictor.path} failed:\n{_user_traceback(exc)}") from None
    class_name = predictor.class_name
    cls = getattr(module, class_name, None)
    if cls is None:
        raise PredictorLoadError(f"{predictor.path} defines no class {class_name!r}")
    config = copy.deepcopy(predictor.config)
    if job_spec is not None and isinstance(job_spec.get("config"), dict):
        merge_config(config, copy.deepcopy(job_spec["config"]))
    if extra_config:
        config.update(extra_config)
    recorder = Recorder(metrics_sink())
    api_name = settings.name
    available = {"config": config, "metrics_client": MetricsClient(api_name, recorder)}
    if job_spec is not None:
        available["job_spec"] = job_spec
    # python_client is added by construct_with_models when the spec configures models.
    kwargs = {name: available[name] for name in _argument_names(cls.__init__, available)}
    try:
        if settings.models:  # python_client: multi-model serving, caching, live reloading
            instance = construct_with_models(cls, kwargs, settings, project_dir, instance_name)
        else:
            instance = cls(**kwargs)
    except StorageError as exc:  # the models could not be listed (no boto3, no bucket, no access)
        raise PredictorLoadError(f"multi_model_reloading: {exc}") from None
    except BaseException as exc:
        raise PredictorLoadError(f"{class_name}.__init__ failed:\n{_user_traceback(exc)}") from None
    return LoadedPredictor(instance, recorder, api_name)


def _user_traceback(exc):
    """The traceback without tritonize's own frames at the top."""
    frames = traceback.extract_tb(exc.__traceback__)
    here = os.path.dirname(os.path.abspath(__file__))
    frames = [
        frame
        for frame in frames
        if not frame.filename.startswith("<frozen") and not os.path.abspath(frame.filename).startswith(here)
    ]
    text = "".join(traceback.format_list(frames))
    text += "".join(traceback.format_exception_only(type(exc), exc))
    return "Traceback (most recent call last):\n" + text if frames else text
