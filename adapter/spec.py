"""Cortex API specs (cortex.yaml) -> ApiSpec, the one description build uses.

A spec is read in three steps: YAML, bounded (adapter/spec_yaml.py); the schema, which reports
every error with its location (adapter/spec_schema.py); then Cortex's older spellings are mapped
to today's (adapter/cortex_mappings.py) and each section is parsed by its module.
"""

import difflib
import os
import re
from dataclasses import dataclass, field

from tritonize.adapter.autoscaling_spec import Autoscaling, UpdateStrategy, parse_autoscaling, parse_update_strategy
from tritonize.adapter.batching import Batching, parse_batching
from tritonize.adapter.cortex_mappings import apply_cortex_mappings
from tritonize.adapter.instances import parse_api_instances, parse_gpu_count
from tritonize.adapter.models_spec import parse_models, parse_poll_interval
from tritonize.adapter.runtime.constants import BATCH_API, REALTIME_API, REQUEST_TIMEOUT_KEY
from tritonize.adapter.spec_schema import KINDS, BatchApi, RealtimeApi, ignored_fields, validate_api
from tritonize.adapter.spec_values import (
    check_model_name,
    check_path_text,
    check_quantity,
    parse_duration,
    parse_endpoint_path,
)
from tritonize.adapter.spec_yaml import load_yaml
from tritonize.adapter.streaming import parse_streaming
from tritonize.adapter.tensor_spec import parse_tensors
from tritonize.adapter.traffic_splitter import KIND as TRAFFIC_SPLITTER
from tritonize.adapter.traffic_splitter import TrafficSplitter, check_traffic_splitters, parse_traffic_splitter
from tritonize.errors import SpecError

__all__ = [
    "ApiSpec",
    "ApiSpecs",
    "api_from_predictor_file",
    "check_model_name",
    "load_spec_document",
    "load_spec_entries",
    "load_spec_file",
]

# Cortex fields with no equivalent needed: warned with the reason.
NOT_NEEDED = {
    # Used by streaming APIs (streams one instance runs at once); warned for the others at build.
    "predictor.threads_per_process": "not needed: Triton runs one execute() at a time per instance "
    "and batches concurrent requests into it",
}
# Cortex's defaults: files in the project directory, used when they exist.
DEFAULT_DEPENDENCIES = {"pip": "requirements.txt", "conda": "conda-packages.txt", "shell": "dependencies.sh"}
# The API kinds tritonize serves as Triton models (Cortex v0.12 wrote `kind: api`).
REALTIME_KINDS = {"RealtimeAPI", "api"}
# What to do instead, for each kind and predictor type tritonize refuses (Cortex's names).
REFUSED_KINDS = {
    "TaskAPI": "is not supported: a TaskAPI runs a job once, not a server; run its script directly "
    "(or as a Kubernetes Job)",
    "AsyncAPI": "is not supported: deploy the predictor as a RealtimeAPI (the same PythonPredictor) and queue "
    "requests on the caller's side; for long predictions raise tritonize.request_timeout or stream the answer",
    "deployment": "is the deployment entry of Cortex v0.11 and earlier, which Cortex v0.12 dropped: delete it "
    "and describe each API as `- name: <api>` with `predictor: {type: python, path: <file.py>}` "
    "(the format of Cortex v0.12-v0.33 that tritonize reads)",
}
REFUSED_PREDICTOR_TYPES = {
    "tensorflow": "write a PythonPredictor that loads the SavedModel with TensorFlow in __init__ and calls it in "
    "predict() (the python predictor type serves any framework)",
    "onnx": "use the python predictor type instead: load the model with onnxruntime in __init__ and run it in "
    "predict() (as Cortex v0.33 said when it removed the onnx type, the python predictor type fully supports "
    "ONNX models)",
}


@dataclass
class ApiSpec:
    """One API = one Triton model."""

    name: str
    project_dir: str  # absolute; everything under it is copied
    predictor_path: str  # relative to project_dir, '/'-separated
    class_name: str = "PythonPredictor"
    config: dict = field(default_factory=dict)
    python_path: list = field(default_factory=list)  # relative to project_dir
    env: dict = field(default_factory=dict)
    batching: Batching = field(default_factory=Batching)
    tensors: dict | None = None  # typed tensor API: {"inputs": [...], "outputs": [...]}; None = body API
    warnings: list = field(default_factory=list)
    # Triton instance group (adapter/instances.py): kind "cpu"/"gpu", instances per GPU (or in all
    # on CPU), gpus: GPU ids, or None for every GPU Triton sees.
    kind: str = "cpu"
    instances: int = 1
    gpus: list | None = None
    # Cortex's predictor.dependencies, relative to project_dir (used by `tritonize docker build`).
    dependencies: dict = field(default_factory=lambda: dict(DEFAULT_DEPENDENCIES))
    # Cortex's compute (as Kubernetes quantities: cpu '1', '500m'; mem '2Gi'), autoscaling and
    # update_strategy: used by `tritonize deploy` (deploy/k8s.py).
    compute: dict = field(default_factory=dict)
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    autoscaling_given: bool = False
    update_strategy: UpdateStrategy = field(default_factory=UpdateStrategy)
    # Cortex's predictor.multi_model_reloading (python_client), as the runtime's settings; None = none.
    models: dict | None = None
    # Streaming (adapter/streaming.py): the spec's tritonize.stream (None: decided by whether
    # predict() yields), predictor.threads_per_process (streams one instance runs at once), and
    # what build decided from both and the source.
    stream: bool | None = None
    stream_threads: int | None = None
    streaming: bool = False
    # Cortex's networking.endpoint: a second URL path the Cortex endpoint (cortex_endpoint/) answers on.
    endpoint: str | None = None
    # tritonize.request_timeout in seconds (adapter/runtime/request_timeout.py); None: serve's default, 0: none.
    request_timeout_s: float | None = None
    # Cortex's kind: RealtimeAPI, or BatchAPI (a model loaded for each job; adapter/runtime/batch.py).
    api_kind: str = REALTIME_API
    # Why `tritonize build predictor.py` built a BatchAPI ("predict() takes batch_id"), for the build output.
    batch_reason: str | None = None

    @property
    def batch(self):
        return self.api_kind == BATCH_API


def parse_endpoint(networking, where):
    """networking.endpoint -> '/path' or None (the schema has warned about the other networking keys)."""
    if not isinstance(networking, dict) or networking.get("endpoint") is None:
        return None
    return parse_endpoint_path(networking["endpoint"], f"{where}.endpoint")


def load_spec_file(spec_file, class_name="PythonPredictor"):
    """Parse a cortex.yaml (a list of APIs, or one mapping) -> [ApiSpec]; every error at once."""
    try:
        with open(spec_file, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise SpecError(f"{spec_file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{spec_file}: not UTF-8 text") from None
    document = load_yaml(text, spec_file)
    project_dir = os.path.dirname(os.path.realpath(spec_file))
    return load_spec_document(document, project_dir, spec_file, class_name=class_name)


class ApiSpecs(list):
    """The RealtimeAPIs of one spec, as a list; its TrafficSplitters ride along (adapter/traffic_splitter.py)."""

    traffic_splitters: list = []


def load_spec_document(document, project_dir, source="api_spec", class_name="PythonPredictor"):
    """A parsed spec (a list of API mappings, or one: what cortex.yaml holds, or the dicts of Cortex's
    Python client) -> [ApiSpec] with .traffic_splitters, paths relative to project_dir.

    Each entry is checked against the schema, then parsed; the errors of every entry are reported
    together, one line each, with its location (`<source>: [0] (iris).predictor.path: ...`)."""
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list) or not document:
        raise SpecError(f"{source}: expected a list of APIs")
    project_dir = os.path.realpath(project_dir)
    return load_spec_entries(
        [(entry, project_dir, f"{source}: [{i}]", class_name) for i, entry in enumerate(document)], source
    )


def load_spec_entries(entries, source):
    """[(entry, project_dir, location, class_name)] -> [ApiSpec] with .traffic_splitters, checked together
    (tritonize.cortex_client gathers entries of several projects)."""
    apis, splitters, errors = ApiSpecs(), [], []
    for entry, project_dir, location, class_name in entries:
        try:
            parsed, entry_errors = _parse_entry(entry, location, project_dir, class_name)
        except SpecError as exc:
            parsed, entry_errors = None, [str(exc)]
        errors.extend(entry_errors)
        if isinstance(parsed, TrafficSplitter):
            splitters.append(parsed)
        elif parsed is not None:
            apis.append(parsed)
    if errors:
        raise SpecError("\n".join(errors))
    seen = set()
    for name in [api.name for api in apis] + [splitter.name for splitter in splitters]:
        if name in seen:
            raise SpecError(f"{source}: two APIs are named {name!r}")
        seen.add(name)
    paths = {}
    answering = [(api.name, {"/" + api.name, api.endpoint} - {None}) for api in apis]
    for name, own in answering + [(splitter.name, splitter.paths) for splitter in splitters]:
        for path in own:
            if paths.setdefault(path, name) != name:
                raise SpecError(f"{source}: APIs {paths[path]!r} and {name!r} both answer on {path}")
    check_traffic_splitters(splitters, apis, source)
    apis.traffic_splitters = splitters
    return apis


def _parse_entry(entry, location, project_dir, class_name):
    """One entry -> (ApiSpec, or what parse_traffic_splitter returns; [errors])."""
    if not isinstance(entry, dict):
        return None, [f"{location}: expected a mapping with name, kind and predictor"]
    name = entry.get("name")
    where = f"{location} ({name})" if isinstance(name, str) else location
    kind = entry.get("kind", "RealtimeAPI")
    kind = kind if isinstance(kind, str) else repr(kind)  # `kind: [x]` is an unknown kind, not a crash
    if kind == TRAFFIC_SPLITTER:  # it names itself in its errors
        return parse_traffic_splitter(entry, location), []
    if kind in REFUSED_KINDS:
        return None, [f"{where}.kind: {kind} {REFUSED_KINDS[kind]}"]
    if kind not in REALTIME_KINDS and kind != BATCH_API:
        close = difflib.get_close_matches(str(kind), list(KINDS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return None, [f"{where}.kind: unknown kind {kind!r} (expected RealtimeAPI or BatchAPI){hint}"]
    predictor = entry.get("predictor")
    ptype = predictor.get("type") if isinstance(predictor, dict) else None
    if isinstance(ptype, str) and ptype in REFUSED_PREDICTOR_TYPES:
        return None, [
            f"{where}.predictor.type: {ptype!r} predictors are not supported (only 'python'): "
            f"{REFUSED_PREDICTOR_TYPES[ptype]}"
        ]
    if isinstance(ptype, str) and ptype != "python":
        return None, [f"{where}.predictor.type: {ptype!r} predictors are not supported (only 'python')"]
    model = BatchApi if kind == BATCH_API else RealtimeApi
    errors = validate_api(entry, where, model)
    if errors:
        return None, errors
    warnings = []
    if kind == BATCH_API:  # no older spellings: BatchAPI came with v0.19's kinds
        return _parse_api(entry, where, project_dir, class_name, warnings, model), []
    entry = apply_cortex_mappings(entry, where, warnings)
    return _parse_api(entry, where, project_dir, class_name, warnings), []


def _parse_api(entry, where, project_dir, class_name, warnings, model=RealtimeApi):
    """A schema-valid RealtimeAPI (or BatchAPI) entry in today's spelling -> ApiSpec (the checks that need
    several values or the project's files)."""
    name = entry["name"]
    predictor = entry["predictor"]
    config = predictor.get("config") or {}
    python_path = predictor.get("python_path") or []
    if isinstance(python_path, str):
        python_path = [python_path]
    env = predictor.get("env") or {}
    for path, why in ignored_fields(entry, model):
        warnings.append(f"{name}: ignored: {path} ({why})")
    api = ApiSpec(
        name=name,
        project_dir=project_dir,
        predictor_path=_relative_inside(project_dir, predictor["path"], f"{where}.predictor.path"),
        class_name=class_name,
        config=config,
        python_path=[_relative_inside(project_dir, p, f"{where}.predictor.python_path") for p in python_path],
        env={k: _env_value(v) for k, v in env.items()},
        batching=parse_batching(predictor.get("server_side_batching"), f"{where}.predictor.server_side_batching"),
        tensors=parse_tensors(predictor.get("tensors"), f"{where}.predictor.tensors"),
        warnings=warnings,
    )
    if model is BatchApi:
        api.api_kind = BATCH_API
    api.endpoint = parse_endpoint(entry.get("networking"), f"{where}.networking")
    api.warnings.extend(parse_api_instances(api, entry, predictor, where))
    api.stream, api.stream_threads = parse_streaming(entry, predictor, where)
    api.request_timeout_s = parse_request_timeout(entry, where)
    api.compute = _parse_compute(entry.get("compute"), f"{where}.compute")
    api.autoscaling, more = parse_autoscaling(entry.get("autoscaling"), f"{where}.autoscaling", api.instances)
    api.warnings.extend(f"{name}: {text}" for text in more)
    api.autoscaling_given = entry.get("autoscaling") is not None
    api.update_strategy = parse_update_strategy(entry.get("update_strategy"), f"{where}.update_strategy")
    api.models = parse_models(
        predictor,
        f"{where}.predictor",
        project_dir,
        processes_per_replica=int(predictor.get("processes_per_replica") or 1),
        poll_interval=parse_poll_interval(entry, where),
    )
    if api.models is None and parse_poll_interval(entry, where) is not None:
        api.warnings.append(f"{name}: ignored: tritonize.model_poll_interval (no predictor.multi_model_reloading)")
    api.dependencies = _parse_dependencies(
        predictor.get("dependencies"), project_dir, f"{where}.predictor.dependencies"
    )
    return api


def _relative_inside(project_dir, path, where):
    check_path_text(path, where)
    if os.path.isabs(path):
        raise SpecError(f"{where}: {path!r} must be relative to the project directory {project_dir}")
    full = os.path.realpath(os.path.join(project_dir, path))
    if full != project_dir and not full.startswith(project_dir + os.sep):
        raise SpecError(f"{where}: {path!r} points outside the project directory {project_dir}")
    return os.path.relpath(full, project_dir).replace(os.sep, "/")


def api_from_predictor_file(
    predictor_file, name=None, class_name="PythonPredictor", config=None, batching=None, tensors=None
):
    """`tritonize build predictor.py`: the project is the predictor's directory."""
    if not os.path.isfile(predictor_file):
        raise SpecError(f"{predictor_file}: no such file")
    project_dir = os.path.dirname(os.path.realpath(predictor_file))
    stem = os.path.splitext(os.path.basename(predictor_file))[0]
    if name is None:
        # Most Cortex projects call the file predictor.py: then the folder names the API.
        name = os.path.basename(project_dir) if stem == "predictor" else stem
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "api"
    return ApiSpec(
        name=check_model_name(name, "--name"),
        project_dir=project_dir,
        predictor_path=os.path.basename(predictor_file),
        class_name=class_name,
        config=dict(config or {}),
        batching=batching or Batching(),
        tensors=tensors,
    )


def parse_request_timeout(entry, where):
    """The API's tritonize.request_timeout ('30s', '2m', 5) -> seconds, or None; 0 turns serve's default off."""
    settings = entry.get("tritonize")
    if not isinstance(settings, dict) or settings.get(REQUEST_TIMEOUT_KEY) is None:
        return None
    return parse_duration(
        settings[REQUEST_TIMEOUT_KEY], f"{where}.tritonize.{REQUEST_TIMEOUT_KEY}", example="30s or 2m"
    )


def _parse_dependencies(value, project_dir, where):
    if value is None:
        return dict(DEFAULT_DEPENDENCIES)
    return {
        key: _relative_inside(project_dir, value.get(key, default), f"{where}.{key}")
        for key, default in DEFAULT_DEPENDENCIES.items()
    }


def _env_value(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_compute(value, where):
    """compute.cpu / compute.mem -> Kubernetes quantity strings; compute.gpu -> int (0 = none)."""
    value = value or {}
    result = {"gpu": parse_gpu_count(value.get("gpu") or 0, f"{where}.gpu")}
    for key in ("cpu", "mem"):
        if value.get(key) is not None:
            result[key] = check_quantity(value[key], f"{where}.{key}")
    return result
