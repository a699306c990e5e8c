"""Write a Triton model repository for a list of APIs, atomically."""

import os
import shutil
import tempfile
from importlib import resources

from tritonize.adapter import runtime
from tritonize.adapter.model_config import batch_config_json, render_config
from tritonize.adapter.project_env import api_environment
from tritonize.adapter.project_files import copy_project, excluded_predictor_warning
from tritonize.adapter.runtime.constants import PROJECT_DIR, RUNTIME_PACKAGE
from tritonize.adapter.runtime.repository_model import (
    CONFIG_FILE,
    VERSION_DIR,
    ApiSettings,
    PredictorSettings,
    has_marker,
    unlisted_entries,
    write_api_settings,
    write_batch_model_config,
    write_marker,
)
from tritonize.adapter.signature import check_predictor_source, predict_is_generator
from tritonize.adapter.spec import NOT_NEEDED
from tritonize.adapter.streaming import THREADS_KEY, resolve_streaming, stream_threads
from tritonize.errors import BuildError, PredictorSourceError


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
        check_predictor_source(source, path, api.class_name, models_configured=api.models is not None, batch=api.batch)
        excluded = excluded_predictor_warning(api.name, api.project_dir, api.predictor_path)
        if excluded:
            api.warnings.append(excluded)
        generator = predict_is_generator(source, api.class_name)
        if api.batch:
            if generator:
                raise PredictorSourceError(
                    f"{path}: {api.class_name}.predict yields: a BatchAPI's predict() writes its results "
                    "(to files, S3, a database) and returns; nothing streams back to a job"
                )
        else:
            resolve_streaming(api, generator, NOT_NEEDED[THREADS_KEY])
        for entry in api.python_path:
            if not os.path.isdir(os.path.join(api.project_dir, entry)):
                api.warnings.append(f"{api.name}: python_path {entry!r} is not a directory")


def api_settings(api):
    """An ApiSpec (checked by check_api_sources) -> the settings build writes and the runtime reads."""
    return ApiSettings(
        name=api.name,
        predictor=PredictorSettings(
            path=api.predictor_path,
            class_name=api.class_name,
            config=api.config or {},
            python_path=list(api.python_path),
            # predictor.env, then the project's .env over it (adapter/project_env.py), as Cortex sourced it.
            env=api_environment(api, api.warnings),
        ),
        predictor_batching=api.batching.predictor_batching,
        tensors=api.tensors or None,
        dependencies=dict(api.dependencies or {}),
        models=api.models,
        stream=bool(api.streaming),
        stream_threads=stream_threads(api),
        endpoint=api.endpoint or None,
        # A BatchAPI's batch may run long: no time limit unless its spec sets one (serve's default is for requests).
        request_timeout_s=0 if api.batch and api.request_timeout_s is None else api.request_timeout_s,
        kind=api.api_kind,
    )


def _write_model(api, repo_dir, exclude):
    model_dir = os.path.join(repo_dir, api.name)
    version_dir = os.path.join(model_dir, VERSION_DIR)
    os.makedirs(version_dir)
    with open(os.path.join(model_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
        f.write(render_config(api))
    if api.batch:  # what each job loads the model with (repository_model.batch_load_config)
        write_batch_model_config(model_dir, batch_config_json(api))
    template = resources.files("tritonize.model_repository_template").joinpath("model.py")
    with open(os.path.join(version_dir, "model.py"), "w", encoding="utf-8") as f:
        f.write(template.read_text(encoding="utf-8"))
    runtime_src = os.path.dirname(os.path.abspath(runtime.__file__))
    shutil.copytree(
        runtime_src, os.path.join(version_dir, RUNTIME_PACKAGE), ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    try:
        write_api_settings(version_dir, api_settings(api))
    except (TypeError, ValueError) as exc:
        raise BuildError(f"{api.name}: predictor.config cannot be stored as JSON: {exc}") from None
    return copy_project(api.project_dir, os.path.join(version_dir, PROJECT_DIR), exclude=exclude)


def _is_our_repository(path):
    return has_marker(path) or not os.listdir(path)


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
        added = unlisted_entries(output_dir)
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
        # kind: TrafficSplitter entries (adapter/traffic_splitter.py) ride in the marker.
        splitters = getattr(apis, "traffic_splitters", [])
        write_marker(staging, [api.name for api in apis], [splitter.to_settings() for splitter in splitters])
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
