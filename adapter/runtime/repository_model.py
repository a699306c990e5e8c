"""The typed model of a built repository: what `tritonize build` writes, what every reader reads.

A repository holds one folder per model (`<name>/config.pbtxt`); a tritonize API's version folder
also holds its settings (`<name>/1/tritonize_api.json`), and the repository's top level a marker
(`.tritonize.json`) listing the APIs the build wrote. Both carry FORMAT_VERSION: a repository
written by an older (or newer) tritonize is refused with "rebuild it", never half-read.

Standard library only: the runtime reads its settings with it inside Triton's stub (it is
copied into each repository as tritonize_runtime/), and the Cortex endpoint's zipapp holds it.
What Triton's config.pbtxt says (instance groups, decoupled) is read on the host side only,
through model_config_pb2 (adapter/built_repository.py).
"""

import json
import os
from dataclasses import asdict, dataclass, field, fields

from .constants import (
    BATCH_API,
    BATCH_CONFIG_FILE,
    DEFAULT_STREAM_THREADS,
    JOB_SPEC_PARAMETER,
    REALTIME_API,
    REQUEST_TIMEOUT_ENV,
    SETTINGS_FILE,
)

# Bump when what build writes changes meaning; readers refuse every other version.
# 1: before the typed model (keys read with .get() and defaults spread over the readers).
# 2 also reads every repository written before BatchAPIs existed: `kind` is absent there, i.e. RealtimeAPI.
FORMAT_VERSION = 2
MARKER_FILE = ".tritonize.json"
CONFIG_FILE = "config.pbtxt"
# The one model version tritonize writes: <name>/1/model.py.
VERSION_DIR = "1"
REBUILD = "rebuild it with `tritonize build`"
NOT_BUILT = f"not a tritonize model repository (no {MARKER_FILE} or no API settings); build one with `tritonize build`"


class RepositoryFormatError(ValueError):
    """A repository (or one API's settings) this tritonize cannot read: written by another version, or edited."""


@dataclass(frozen=True)
class PredictorSettings:
    """Cortex's `predictor` section, as the runtime loads it."""

    path: str
    class_name: str = "PythonPredictor"
    config: dict = field(default_factory=dict)
    python_path: list = field(default_factory=list)
    env: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ApiSettings:
    """One API's settings (<name>/1/tritonize_api.json). Every default is here, nowhere else."""

    name: str
    predictor: PredictorSettings
    # Cortex's kind: "RealtimeAPI" (a model loaded at start, answering requests) or "BatchAPI" (a model
    # loaded for each job, with the job's spec; adapter/runtime/batch.py).
    kind: str = REALTIME_API
    # The predictor takes lists (Cortex's server_side_batching contract).
    predictor_batching: bool = False
    # predictor.tensors ({"inputs": [...], "outputs": [...]}) of a typed tensor API, or None: a body API.
    tensors: dict | None = None
    # Cortex's dependency files (relative to project/), for `tritonize docker build`.
    dependencies: dict = field(default_factory=dict)
    # predictor.multi_model_reloading for python_client (adapter/models_spec.py), or None.
    models: dict | None = None
    # A streaming API (a decoupled model), and how many streams one instance runs at once.
    stream: bool = False
    stream_threads: int = DEFAULT_STREAM_THREADS
    # networking.endpoint: where the Cortex endpoint also answers for this API, or None.
    endpoint: str | None = None
    # tritonize.request_timeout in seconds (None: serve --request-timeout's; 0: none).
    request_timeout_s: float | None = None

    @property
    def streaming(self):
        return self.stream

    @property
    def batch(self):
        """A BatchAPI: never loaded at start; loaded for each job (batch_load_config)."""
        return self.kind == BATCH_API

    @property
    def typed(self):
        """A typed tensor API: clients call Triton's /infer with named tensors, not a body."""
        return bool(self.tensors)

    @property
    def paths(self):
        """The URL paths the Cortex endpoint answers on for this API: /<name>, and networking.endpoint."""
        paths = ["/" + self.name]
        if self.endpoint:
            path = endpoint_path(self.endpoint)
            if path not in paths:
                paths.append(path)
        return paths

    def timeout_s(self, environ=os.environ):
        """The request timeout in seconds (the spec's, else serve's TRITONIZE_REQUEST_TIMEOUT_S), None for none."""
        value = self.request_timeout_s
        if value is None:
            try:
                value = float(environ.get(REQUEST_TIMEOUT_ENV) or 0)
            except ValueError:
                value = 0
        return float(value) if value and value > 0 else None

    def to_json(self):
        return {"format": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data, where):
        data = dict(_check_format(data, where))
        data.pop("format")
        try:
            predictor = PredictorSettings(**_known(data.pop("predictor"), PredictorSettings, f"{where}: predictor"))
            settings = cls(predictor=predictor, **_known(data, cls, where))
        except (KeyError, TypeError) as exc:
            raise RepositoryFormatError(f"{where}: incomplete settings ({exc}); {REBUILD}") from None
        _check_types(settings, where)
        return settings


def endpoint_path(endpoint):
    """'my/path' or '/my/path/' -> '/my/path'."""
    return "/" + endpoint.strip().strip("/")


def _check_format(data, where):
    if not isinstance(data, dict):
        raise RepositoryFormatError(f"{where}: not a settings object; {REBUILD}")
    version = data.get("format")
    if version == FORMAT_VERSION:
        return data
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise RepositoryFormatError(
            f"{where}: written by a newer tritonize (format {version}; this one reads {FORMAT_VERSION}): "
            f"upgrade tritonize, or {REBUILD}"
        )
    raise RepositoryFormatError(
        f"{where}: written by an older tritonize (format {version if version is not None else 'unversioned'}; "
        f"this one reads {FORMAT_VERSION}): {REBUILD}"
    )


def _known(data, cls, where):
    if not isinstance(data, dict):
        raise RepositoryFormatError(f"{where}: not an object; {REBUILD}")
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise RepositoryFormatError(f"{where}: unknown settings {', '.join(unknown)}; {REBUILD}")
    return data


_TYPES = {
    "name": str,
    "kind": str,
    "predictor_batching": bool,
    "tensors": (dict, type(None)),
    "dependencies": dict,
    "models": (dict, type(None)),
    "stream": bool,
    "stream_threads": int,
    "endpoint": (str, type(None)),
    "request_timeout_s": (int, float, type(None)),
}
API_KINDS = (REALTIME_API, BATCH_API)
_PREDICTOR_TYPES = {"path": str, "class_name": str, "config": dict, "python_path": list, "env": dict}


def _check_types(settings, where):
    if settings.kind not in API_KINDS:
        raise RepositoryFormatError(f"{where}: kind is {settings.kind!r}; {REBUILD}")
    for owner, types, prefix in ((settings, _TYPES, ""), (settings.predictor, _PREDICTOR_TYPES, "predictor.")):
        for name, expected in types.items():
            value = getattr(owner, name)
            if not isinstance(value, expected) or (isinstance(value, bool) and expected in (int, float)):
                raise RepositoryFormatError(f"{where}: {prefix}{name} is {value!r}; {REBUILD}")


@dataclass(frozen=True)
class SplitterTarget:
    """One API of a TrafficSplitter: its weight (percent), or the shadow that gets a copy of every request."""

    name: str
    weight: int
    shadow: bool = False


@dataclass(frozen=True)
class SplitterSettings:
    """A `kind: TrafficSplitter` (validated by adapter/traffic_splitter.py, routed by the Cortex endpoint)."""

    name: str
    apis: tuple  # SplitterTarget, in the spec's order
    endpoint: str | None = None  # networking.endpoint ('/path'), or None: /<name> only

    @property
    def targets(self):
        return [api for api in self.apis if not api.shadow]

    @property
    def shadow(self):
        return next((api.name for api in self.apis if api.shadow), None)

    @property
    def paths(self):
        return {"/" + self.name} | ({endpoint_path(self.endpoint)} if self.endpoint else set())

    def to_json(self):
        return {"name": self.name, "endpoint": self.endpoint, "apis": [asdict(api) for api in self.apis]}

    @classmethod
    def from_json(cls, data, where):
        try:
            splitter = cls(
                name=data["name"],
                endpoint=data.get("endpoint"),
                apis=tuple(SplitterTarget(**api) for api in data["apis"]),
            )
        except (KeyError, TypeError, AttributeError):
            splitter = None
        well_typed = splitter is not None and (
            isinstance(splitter.name, str)
            and isinstance(splitter.endpoint, (str, type(None)))
            and all(
                isinstance(api.name, str)
                and isinstance(api.weight, int)
                and not isinstance(api.weight, bool)
                and isinstance(api.shadow, bool)
                for api in splitter.apis
            )
        )
        if not well_typed:
            raise RepositoryFormatError(f"{where}: a traffic splitter is {data!r}; {REBUILD}")
        return splitter


@dataclass(frozen=True)
class RepositoryMarker:
    """.tritonize.json: the repository was written by `tritonize build` (build --force replaces only those)."""

    apis: list
    traffic_splitters: tuple = ()  # SplitterSettings

    def to_json(self):
        return {
            "format": FORMAT_VERSION,
            "apis": list(self.apis),
            "traffic_splitters": [splitter.to_json() for splitter in self.traffic_splitters],
        }

    @classmethod
    def from_json(cls, data, where):
        data = _check_format(data, where)
        apis = data.get("apis")
        if not isinstance(apis, list) or not all(isinstance(name, str) for name in apis):
            raise RepositoryFormatError(f"{where}: apis is {apis!r}; {REBUILD}")
        splitters = data.get("traffic_splitters", [])
        if not isinstance(splitters, list):
            raise RepositoryFormatError(f"{where}: traffic_splitters is {splitters!r}; {REBUILD}")
        return cls(apis=list(apis), traffic_splitters=tuple(SplitterSettings.from_json(s, where) for s in splitters))


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RepositoryFormatError(f"{path}: not valid JSON ({exc}); {REBUILD}") from None


def settings_path(model_dir):
    return os.path.join(model_dir, VERSION_DIR, SETTINGS_FILE)


def write_api_settings(version_dir, settings):
    """Raises TypeError/ValueError if predictor.config cannot be stored as JSON."""
    _write_json(os.path.join(version_dir, SETTINGS_FILE), settings.to_json())


def read_api_settings(version_dir):
    """The settings of the API whose version folder this is (model.py reads its own)."""
    path = os.path.join(version_dir, SETTINGS_FILE)
    return ApiSettings.from_json(_read_json(path), path)


def write_marker(repository, api_names, traffic_splitters=()):
    marker = RepositoryMarker(list(api_names), tuple(traffic_splitters))
    _write_json(os.path.join(repository, MARKER_FILE), marker.to_json())


def read_marker(repository):
    """The repository's marker, or None when it has none (not written by `tritonize build`)."""
    path = os.path.join(repository, MARKER_FILE)
    if not os.path.isfile(path):
        return None
    return RepositoryMarker.from_json(_read_json(path), path)


def has_marker(repository):
    return os.path.isfile(os.path.join(repository, MARKER_FILE))


def unlisted_entries(repository):
    """Entries of an earlier build's repository that its marker does not list (models added by hand).

    Reads the marker of any tritonize version: `build --force` replaces an older build's repository
    (the very fix REBUILD asks for).
    """
    if not has_marker(repository):
        return []
    try:
        listed = _read_json(os.path.join(repository, MARKER_FILE)).get("apis")
    except (OSError, RepositoryFormatError, AttributeError):
        listed = None
    ours = {name for name in listed if isinstance(name, str)} if isinstance(listed, list) else set()
    return sorted(entry for entry in os.listdir(repository) if entry != MARKER_FILE and entry not in ours)


def model_names(repository):
    """The models a Triton repository holds: its folders with a config.pbtxt, sorted."""
    return sorted(
        entry for entry in os.listdir(repository) if os.path.isfile(os.path.join(repository, entry, CONFIG_FILE))
    )


def batch_models(repository):
    """The BatchAPIs of a repository, sorted ([] if it cannot be read): a job loads each with the job's config.
    A model whose settings cannot be read counts as loaded at start: its load reports the problem."""
    try:
        names = model_names(repository)
    except OSError:
        return []
    batch = []
    for name in names:
        if os.path.isfile(settings_path(os.path.join(repository, name))):
            try:
                if read_api_settings(os.path.join(repository, name, VERSION_DIR)).batch:
                    batch.append(name)
            except (OSError, RepositoryFormatError):
                pass
    return batch


def startup_models(repository):
    """The models serve and the image's supervisor load at start: every model but the BatchAPIs."""
    try:
        names = model_names(repository)
    except OSError:
        return []
    batch = set(batch_models(repository))
    return [name for name in names if name not in batch]


@dataclass(frozen=True)
class RepositorySettings:
    """What tritonize wrote in a repository: the marker (None if none) and each API's settings.

    `others` are models without settings (added by hand): Triton serves them, tritonize knows nothing of them.
    """

    path: str
    marker: RepositoryMarker | None
    apis: dict
    others: list

    @property
    def names(self):
        """Every model of the repository, sorted (BatchAPIs included: see startup_names)."""
        return sorted([*self.apis, *self.others])

    @property
    def startup_names(self):
        """The models loaded at start, sorted: all but the BatchAPIs (loaded for each job)."""
        return sorted([*(name for name, api in self.apis.items() if not api.batch), *self.others])

    @property
    def batch_names(self):
        return sorted(name for name, api in self.apis.items() if api.batch)


def read_repository_settings(repository):
    """Read what tritonize wrote in `repository` (RepositoryFormatError if another version wrote it)."""
    if not os.path.isdir(repository):
        raise RepositoryFormatError(f"{repository}: no such model repository; build one with `tritonize build`")
    marker = read_marker(repository)
    apis, others = {}, []
    for name in model_names(repository):
        if os.path.isfile(settings_path(os.path.join(repository, name))):
            settings = read_api_settings(os.path.join(repository, name, VERSION_DIR))
            if settings.name != name:
                raise RepositoryFormatError(
                    f"{settings_path(os.path.join(repository, name))}: settings of API {settings.name!r} in folder "
                    f"{name!r} (renamed by hand?); {REBUILD}"
                )
            apis[name] = settings
        else:
            others.append(name)
    return RepositorySettings(repository, marker, apis, others)


# ---- BatchAPI models: loaded for a job with the job's config ----------------------------------


def batch_config_path(repository, api):
    return os.path.join(repository, api, BATCH_CONFIG_FILE)


def write_batch_model_config(model_dir, config):
    """<repo>/<api>/tritonize_batch_config.json: the API's complete Triton model config as JSON (build writes it
    from the same ModelConfig as config.pbtxt)."""
    _write_json(os.path.join(model_dir, BATCH_CONFIG_FILE), config)


def read_batch_model_config(repository, api):
    """The Triton model config (a dict, protobuf-JSON with proto field names) a BatchAPI's jobs load it with."""
    path = batch_config_path(repository, api)
    if not os.path.isfile(path):
        raise RepositoryFormatError(f"{path}: no such file: {api!r} is not a BatchAPI of this repository ({REBUILD})")
    config = _read_json(path)
    groups = config.get("instance_group") if isinstance(config, dict) else None
    if not isinstance(groups, list) or not groups or not isinstance(groups[0], dict) or config.get("name") != api:
        raise RepositoryFormatError(f"{path}: not the model config of BatchAPI {api!r}; {REBUILD}")
    return config


def batch_load_config(repository, api, workers, job_spec):
    """The `config` a job loads its BatchAPI's model with (POST /v2/repository/models/<api>/load, body
    {"parameters": {"config": json.dumps(<this>)}}): the built config, `workers` instances (on an API built
    for several GPUs: spread over them, one instance per worker in all), the job's spec as the model
    parameter the runtime reads (adapter/runtime/batch.py)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a whole number >= 1, got {workers!r}")
    config = read_batch_model_config(repository, api)
    group = config["instance_group"][0]
    gpus = group.get("gpus")
    if group.get("kind") == "KIND_GPU" and isinstance(gpus, list) and len(gpus) > 1:
        # An instance is one process on one GPU: the job's workers are spread over the API's GPUs.
        counts = [workers // len(gpus) + (1 if i < workers % len(gpus) else 0) for i in range(len(gpus))]
        config["instance_group"] = [{**group, "gpus": [gpu], "count": n} for gpu, n in zip(gpus, counts) if n]
    else:
        group["count"] = workers
    config.setdefault("parameters", {})[JOB_SPEC_PARAMETER] = {"string_value": json.dumps(job_spec)}
    return config
