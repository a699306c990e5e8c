"""Cortex API specs (cortex.yaml) -> ApiSpec, the one description build uses."""

import os
import re
from dataclasses import dataclass, field

import yaml

from tritonize.adapter.autoscaling_spec import Autoscaling, UpdateStrategy, parse_autoscaling, parse_update_strategy
from tritonize.adapter.batching import Batching, parse_batching
from tritonize.adapter.instances import parse_api_instances
from tritonize.adapter.models_spec import SECTION_KEYS as MODELS_SECTION_KEYS
from tritonize.adapter.models_spec import parse_models, parse_poll_interval
from tritonize.adapter.runtime.constants import REQUEST_TIMEOUT_KEY
from tritonize.adapter.spec_values import check_keys, is_quantity, parse_duration
from tritonize.adapter.streaming import parse_streaming
from tritonize.adapter.tensor_spec import parse_tensors
from tritonize.adapter.traffic_splitter import KIND as TRAFFIC_SPLITTER
from tritonize.adapter.traffic_splitter import check_traffic_splitters, parse_traffic_splitter
from tritonize.errors import SpecError

# Cortex fields (v0.12-v0.33) this release parses but does not use yet.
KNOWN_IGNORED = {
    "predictor.image": None,
    "predictor.tensorflow_serving_image": None,
    "predictor.log_level": None,
    "predictor.shm_size": None,
    "predictor.model_path": None,
    "predictor.signature_key": None,
}
# Cortex fields with no equivalent needed: warned with the reason.
NOT_NEEDED = {
    # Used by streaming APIs (streams one instance runs at once); warned for the others at build.
    "predictor.threads_per_process": "not needed: Triton runs one execute() at a time per instance "
    "and batches concurrent requests into it",
}
# NOT_NEEDED keys that some APIs do use: checked once build knows what the API is (adapter/streaming.py).
USED_BY_SOME = {"predictor.threads_per_process"}
API_KEYS = {"name", "kind", "predictor", "networking", "compute", "autoscaling", "update_strategy", "tritonize"}
PREDICTOR_KEYS = {
    "type",
    "path",
    "config",
    "python_path",
    "env",
    "server_side_batching",
    "tensors",
    "processes_per_replica",
    "dependencies",
    *MODELS_SECTION_KEYS,
} | {key.split(".", 1)[1] for key in list(KNOWN_IGNORED) + list(NOT_NEEDED) if key.startswith("predictor.")}
# Cortex's defaults: files in the project directory, used when they exist.
DEFAULT_DEPENDENCIES = {"pip": "requirements.txt", "conda": "conda-packages.txt", "shell": "dependencies.sh"}
OTHER_KINDS = {"BatchAPI", "TaskAPI", "AsyncAPI"}
# Triton model names become directory names; keep them portable.
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# networking.endpoint without its slashes: segments like API names (so it never meets /_tritonize/...).
ENDPOINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")


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
    tensors: dict = None  # typed tensor API: {"inputs": [...], "outputs": [...]}; None = body API
    warnings: list = field(default_factory=list)
    # Triton instance group (adapter/instances.py): kind "cpu"/"gpu", instances per GPU (or in all
    # on CPU), gpus: GPU ids, or None for every GPU Triton sees.
    kind: str = "cpu"
    instances: int = 1
    gpus: list = None
    # Cortex's predictor.dependencies, relative to project_dir (used by `tritonize docker build`).
    dependencies: dict = field(default_factory=lambda: dict(DEFAULT_DEPENDENCIES))
    # Cortex's compute (as Kubernetes quantities: cpu '1', '500m'; mem '2Gi'), autoscaling and
    # update_strategy: used by `tritonize deploy` (deploy/k8s.py).
    compute: dict = field(default_factory=dict)
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    autoscaling_given: bool = False
    update_strategy: UpdateStrategy = field(default_factory=UpdateStrategy)
    # Cortex's predictor.multi_model_reloading (python_client), as the runtime's settings; None = none.
    models: dict = None
    # Streaming (adapter/streaming.py): the spec's tritonize.stream (None: decided by whether
    # predict() yields), predictor.threads_per_process (streams one instance runs at once), and
    # what build decided from both and the source.
    stream: bool = None
    stream_threads: int = None
    streaming: bool = False
    # Cortex's networking.endpoint: a second URL path the Cortex endpoint (cortex_endpoint/) answers on.
    endpoint: str = None
    # tritonize.request_timeout in seconds (adapter/runtime/request_timeout.py); None: serve's default, 0: none.
    request_timeout_s: float = None


def parse_endpoint(networking, where, warnings, name):
    """networking.endpoint -> '/path' or None; the other networking keys are Cortex's load balancer's."""
    if networking is None:
        return None
    if not isinstance(networking, dict):
        raise SpecError(f"{where}: expected a mapping")
    for key in sorted(set(networking) - {"endpoint"}):
        warnings.append(f"{name}: ignored: networking.{key} (not supported)")
    endpoint = networking.get("endpoint")
    if endpoint is None:
        return None
    if not isinstance(endpoint, str) or not ENDPOINT_RE.match(endpoint.strip("/")):
        raise SpecError(
            f"{where}.endpoint: {endpoint!r} is not a URL path (letters, digits, '-', '_', '.', '/' between segments)"
        )
    return "/" + endpoint.strip("/")


def check_model_name(name, where="name"):
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        raise SpecError(
            f"{where}: {name!r} is not a valid API name (letters, digits, '_', '.', '-'; "
            "start with a letter or digit; at most 128 characters)"
        )
    return name


def _relative_inside(project_dir, path, where):
    if not isinstance(path, str) or not path:
        raise SpecError(f"{where}: expected a path relative to the project directory, got {path!r}")
    if "\0" in path:  # the OS refuses it (ValueError deep in os.path): say so here
        raise SpecError(f"{where}: {path!r} contains a NUL byte")
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


class ApiSpecs(list):
    """The RealtimeAPIs of one spec, as a list; its TrafficSplitters ride along (adapter/traffic_splitter.py)."""

    traffic_splitters: list = []


def load_spec_file(spec_file, class_name="PythonPredictor"):
    """Parse a cortex.yaml (a list of APIs, or one mapping) -> [ApiSpec]."""
    try:
        with open(spec_file, encoding="utf-8") as f:
            document = yaml.safe_load(f)
    except OSError as exc:
        raise SpecError(f"{spec_file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{spec_file}: not valid YAML: {exc}") from None
    return load_spec_document(document, os.path.dirname(os.path.realpath(spec_file)), spec_file, class_name)


def load_spec_document(document, project_dir, where, class_name="PythonPredictor"):
    """A parsed spec (what cortex.yaml holds, or the dicts of Cortex's Python client) -> [ApiSpec];
    `where` names it in errors, paths in it are relative to project_dir."""
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list) or not document:
        raise SpecError(f"{where}: expected a list of APIs")
    project_dir = os.path.realpath(project_dir)
    return load_spec_entries(
        [(entry, project_dir, f"{where}: [{i}]", class_name) for i, entry in enumerate(document)], where
    )


def load_spec_entries(entries, where):
    """[(entry, project_dir, location, class_name)] -> [ApiSpec] with their .traffic_splitters, checked together."""
    apis, splitters = ApiSpecs(), []
    for entry, project_dir, location, class_name in entries:
        if isinstance(entry, dict) and entry.get("kind") == TRAFFIC_SPLITTER:
            splitters.append(parse_traffic_splitter(entry, location))
        else:
            apis.append(_parse_api(entry, location, project_dir, class_name))
    seen = set()
    for name in [api.name for api in apis] + [s.name for s in splitters]:
        if name in seen:
            raise SpecError(f"{where}: two APIs are named {name!r}")
        seen.add(name)
    paths = {}
    answering = [(api.name, {"/" + api.name, api.endpoint} - {None}) for api in apis]
    for name, own in answering + [(s.name, s.paths()) for s in splitters]:
        for path in own:
            if paths.setdefault(path, name) != name:
                raise SpecError(f"{where}: APIs {paths[path]!r} and {name!r} both answer on {path}")
    check_traffic_splitters(splitters, apis, where)
    apis.traffic_splitters = splitters
    return apis


def _parse_api(entry, where, project_dir, class_name):
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: expected a mapping with name, kind and predictor")
    name = entry.get("name")
    where = f"{where} ({name})" if isinstance(name, str) else where
    check_model_name(name, f"{where}.name")
    check_keys(entry, API_KEYS, where)
    kind = entry.get("kind", "RealtimeAPI")
    if kind in OTHER_KINDS:
        raise SpecError(f"{where}.kind: {kind} is not supported; tritonize serves RealtimeAPI only")
    if kind != "RealtimeAPI":
        raise SpecError(f"{where}.kind: unknown kind {kind!r} (expected RealtimeAPI)")
    predictor = entry.get("predictor")
    if not isinstance(predictor, dict):
        raise SpecError(f"{where}.predictor: required mapping is missing")
    check_keys(predictor, PREDICTOR_KEYS, f"{where}.predictor")
    ptype = predictor.get("type", "python")
    if ptype != "python":
        raise SpecError(f"{where}.predictor.type: {ptype!r} predictors are not supported (only 'python')")
    if "path" not in predictor:
        raise SpecError(f"{where}.predictor.path: required (the predictor's .py file)")
    config = predictor.get("config") or {}
    if not isinstance(config, dict):
        raise SpecError(f"{where}.predictor.config: expected a mapping")
    python_path = predictor.get("python_path") or []
    if isinstance(python_path, str):
        python_path = [python_path]
    env = predictor.get("env") or {}
    if not isinstance(env, dict):
        raise SpecError(f"{where}.predictor.env: expected a mapping of names to values")
    for key, value in env.items():
        if not isinstance(key, str) or isinstance(value, (dict, list)):
            raise SpecError(f"{where}.predictor.env.{key}: expected a string value")
    warnings = []
    for dotted in KNOWN_IGNORED:
        section, _, sub = dotted.partition(".")
        holder = predictor if section == "predictor" else entry
        if (sub in holder) if sub else (section in entry):
            warnings.append(f"{name}: ignored: {dotted} (not supported yet)")
    for dotted, why in NOT_NEEDED.items():
        if dotted.split(".", 1)[1] in predictor and dotted not in USED_BY_SOME:
            warnings.append(f"{name}: ignored: {dotted} ({why})")
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
    api.endpoint = parse_endpoint(entry.get("networking"), f"{where}.networking", api.warnings, name)
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
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping with pip, conda and/or shell")
    check_keys(value, DEFAULT_DEPENDENCIES, where)
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
    result = {"gpu": int(value.get("gpu", 0) or 0)}
    for key in ("cpu", "mem"):
        if value.get(key) is None:
            continue
        text = str(value[key]).strip()
        if isinstance(value[key], bool) or not is_quantity(text):
            raise SpecError(f"{where}.{key}: expected a Kubernetes quantity (e.g. 1, 500m, 2Gi), got {value[key]!r}")
        result[key] = text
    return result
