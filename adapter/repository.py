"""Write a Triton model repository for a list of APIs, atomically."""

import json
import os
import shutil
import tempfile
from importlib import resources

from tritonize.adapter import runtime
from tritonize.adapter.model_config import render_config
from tritonize.adapter.project_env import api_environment
from tritonize.adapter.project_files import copy_project, excluded_predictor_warning
from tritonize.adapter.runtime.constants import (
    PROJECT_DIR,
    REPOSITORY_MARKER_FILE,
    REQUEST_TIMEOUT_SETTING,
    RUNTIME_PACKAGE,
    SETTINGS_FILE,
)
from tritonize.adapter.signature import check_predictor_source, predict_is_generator
from tritonize.adapter.spec import NOT_NEEDED
from tritonize.adapter.streaming import THREADS_KEY, resolve_streaming, stream_threads
from tritonize.adapter.traffic_splitter import MARKER_KEY as SPLITTERS_KEY
from tritonize.errors import BuildError, PredictorSourceError

MARKER_FILE = REPOSITORY_MARKER_FILE
VERSION = "1"


def model_names(repository):
    """The models a Triton repository holds: its folders with a config.pbtxt, sorted."""
    return sorted(
        entry for entry in os.listdir(repository) if os.path.isfile(os.path.join(repository, entry, "config.pbtxt"))
    )


def check_api_sources(apis):
    """Parse each predictor (no import) and check its class and signatures."""
    for api in apis:
        path = os.path.join(api.project_dir, api.predictor_path)
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
        except OSError as exc:
            raise PredictorSourceError(f"{path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise PredictorSourceError(f"{path}: not UTF-8 text") from None
        check_predictor_source(source, path, api.class_name, models_configured=api.models is not None)
        excluded = excluded_predictor_warning(api.name, api.project_dir, api.predictor_path)
        if excluded:
            api.warnings.append(excluded)
        resolve_streaming(api, predict_is_generator(source, api.class_name), NOT_NEEDED[THREADS_KEY])
        for entry in api.python_path:
            if not os.path.isdir(os.path.join(api.project_dir, entry)):
                api.warnings.append(f"{api.name}: python_path {entry!r} is not a directory")


def api_settings(api):
    return {
        "format": 1,
        "name": api.name,
        "predictor": {
            "path": api.predictor_path,
            "class_name": api.class_name,
            "config": api.config,
            "python_path": api.python_path,
            # predictor.env, then the project's .env over it (adapter/project_env.py), as Cortex sourced it.
            "env": api_environment(api, api.warnings),
        },
        # The predictor takes lists (Cortex's server_side_batching contract).
        "predictor_batching": api.batching.predictor_batching,
        "tensors": api.tensors,
        # Cortex's dependency files (relative to project/), for `tritonize docker build`.
        "dependencies": api.dependencies,
        # predictor.multi_model_reloading for python_client (adapter/models_spec.py), or None.
        "models": api.models,
        # A streaming API (decoupled model): how many streams one instance runs at once.
        "stream": api.streaming,
        "stream_threads": stream_threads(api) if api.streaming else None,
        # networking.endpoint: where the Cortex endpoint (cortex_endpoint/) also answers for this API.
        "endpoint": api.endpoint,
        # tritonize.request_timeout (seconds; None: serve --request-timeout's, 0: none).
        REQUEST_TIMEOUT_SETTING: api.request_timeout_s,
    }


def _write_model(api, repo_dir, exclude):
    model_dir = os.path.join(repo_dir, api.name)
    version_dir = os.path.join(model_dir, VERSION)
    os.makedirs(version_dir)
    with open(os.path.join(model_dir, "config.pbtxt"), "w", encoding="utf-8") as f:
        f.write(render_config(api))
    template = resources.files("tritonize.model_repository_template").joinpath("model.py")
    with open(os.path.join(version_dir, "model.py"), "w", encoding="utf-8") as f:
        f.write(template.read_text(encoding="utf-8"))
    runtime_src = os.path.dirname(os.path.abspath(runtime.__file__))
    shutil.copytree(
        runtime_src, os.path.join(version_dir, RUNTIME_PACKAGE), ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    try:
        settings = json.dumps(api_settings(api), indent=2, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise BuildError(f"{api.name}: predictor.config cannot be stored as JSON: {exc}") from None
    with open(os.path.join(version_dir, SETTINGS_FILE), "w", encoding="utf-8") as f:
        f.write(settings + "\n")
    return copy_project(api.project_dir, os.path.join(version_dir, PROJECT_DIR), exclude=exclude)


def _is_our_repository(path):
    return os.path.isfile(os.path.join(path, MARKER_FILE)) or not os.listdir(path)


def _hand_added(path):
    """Entries of an earlier build's repository that the build did not write (models added by hand)."""
    try:
        with open(os.path.join(path, MARKER_FILE), encoding="utf-8") as f:
            ours = set(json.load(f).get("apis", []))
    except (OSError, ValueError, AttributeError):
        return []
    return sorted(entry for entry in os.listdir(path) if entry != MARKER_FILE and entry not in ours)


def build_repository(apis, output_dir, force=False):
    """Write every API into output_dir; on any failure output_dir is unchanged."""
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir):
        if not os.path.isdir(output_dir):
            raise BuildError(f"{output_dir} exists and is not a directory")
        if not force:
            raise BuildError(f"{output_dir} already exists; use --force to replace it")
        if not _is_our_repository(output_dir):
            raise BuildError(f"{output_dir} is not empty and was not written by tritonize; refusing to replace it")
        added = _hand_added(output_dir)
        if added:
            raise BuildError(
                f"{output_dir} holds {', '.join(added)}, which an earlier build did not write (added by hand?); "
                "--force would delete it: move it out of the repository first"
            )
    check_api_sources(apis)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tritonize-build-", dir=parent)
    os.chmod(staging, 0o755)  # mkdtemp makes it private; a repository is read by other users (containers)
    try:
        for api in apis:
            _write_model(api, staging, exclude=[output_dir, staging])
        with open(os.path.join(staging, MARKER_FILE), "w", encoding="utf-8") as f:
            marker = {"apis": [api.name for api in apis], "format": 1}
            splitters = getattr(apis, "traffic_splitters", [])  # kind: TrafficSplitter (adapter/traffic_splitter.py)
            if splitters:
                marker[SPLITTERS_KEY] = [splitter.to_json() for splitter in splitters]
            json.dump(marker, f)
            f.write("\n")
        _replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir


def _replace(staging, output_dir):
    """Move staging into place; the old repository is removed only after that worked."""
    old = None
    if os.path.exists(output_dir):
        old = output_dir + ".old-" + os.path.basename(staging)
        os.rename(output_dir, old)
    try:
        os.rename(staging, output_dir)
    except BaseException:
        if old:
            os.rename(old, output_dir)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)
