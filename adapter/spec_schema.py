"""cortex.yaml as a schema (pydantic v2; build side only, the runtime never imports it).

Every key any Cortex version from v0.12 to v0.33 documented is a field here, with its status for
tritonize in the field's metadata: "used", "mapped" (an older spelling, read as its current one),
"ignored" (accepted with a warning that says why) or "refused" (an error that says what to do).
Values are checked by the same functions that parse them (adapter/spec_values.py and friends), so
each value type has one grammar. `cortex_json_schema()` is the published JSON Schema
(schema/cortex.schema.json); `validate_api` reports every error of one API with its location.
"""

import difflib
import functools
import json
import os
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, ValidationError, WithJsonSchema

from tritonize.adapter.autoscaling_spec import number_at_least, parse_surge
from tritonize.adapter.batching import non_negative_int, positive_int
from tritonize.adapter.instances import MAX_INSTANCES, parse_gpu_count, parse_gpus, parse_instances, parse_kind
from tritonize.adapter.models_spec import MODEL_NAME_RE as MODEL_ENTRY_NAME_RE
from tritonize.adapter.models_spec import check_cache_size, check_model_entry_name
from tritonize.adapter.spec_values import (
    DURATION_PATTERN,
    MODEL_NAME_RE,
    QUANTITY_PATTERN,
    check_env_value,
    check_model_name,
    check_path_text,
    check_quantity,
    parse_duration,
    parse_endpoint_path,
)
from tritonize.adapter.streaming import parse_stream_threads
from tritonize.adapter.tensor_spec import parse_dtype, parse_shape
from tritonize.errors import SpecError

# ---- field statuses ---------------------------------------------------------------------------


def used(description, versions="v0.12-v0.33", required=False):
    extra = {"x-tritonize": "used", "x-cortex": versions}
    return Field(... if required else None, description=description, json_schema_extra=extra)


def tritonize_only(description, required=False):
    return used(description, "-", required)


def mapped(to, versions, description=""):
    """An older Cortex spelling: read as `to` (a dotted path from the API's root; '.x' = a sibling key)."""
    text = f"Cortex {versions}: read as {to.lstrip('.')}. {description}".strip()
    extra = {"x-tritonize": "mapped", "x-tritonize-to": to, "x-cortex": versions}
    return Field(None, description=text, json_schema_extra=extra)


def ignored(why, versions):
    extra = {"x-tritonize": "ignored", "x-tritonize-why": why, "x-cortex": versions}
    return Field(None, description=f"Cortex {versions}; ignored by tritonize: {why}", json_schema_extra=extra)


def refused(why, versions):
    extra = {"x-tritonize": "refused", "x-tritonize-why": why, "x-cortex": versions}
    return Field(None, description=f"Cortex {versions}; refused by tritonize: {why}", json_schema_extra=extra)


# ---- value types: the parsers' own grammar, as pydantic validators + JSON Schema ---------------


def _grammar(check, json_schema, none_is_absent=True):
    """A value type checked by `check(value, where)` (raising SpecError), described by `json_schema`.

    none_is_absent: `key:` with no value reads as absent, as in Cortex (False for required values)."""

    def validate(value):
        if value is None and none_is_absent:
            return None
        try:
            check(value, "@")
        except SpecError as exc:
            raise ValueError(str(exc)) from None  # "@: ..." or "@.key: ...": validate_api puts the location
        return value

    return Annotated[Any, PlainValidator(validate), WithJsonSchema(json_schema)]


def _strict(kind, description_type):
    def check(value, where):
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise SpecError(f"{where}: expected {description_type}, got {value!r}")

    return check


def _number_check(minimum, integer=False):
    return lambda value, where: number_at_least(value, where, minimum, integer=integer)


_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
Str = _grammar(_strict(str, "a string"), {"type": "string"})
Bool = _grammar(_strict(bool, "true or false"), {"type": "boolean"})
Mapping = _grammar(_strict(dict, "a mapping"), {"type": "object"})
Duration = _grammar(
    parse_duration,
    {"anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"type": "number", "minimum": 0}]},
)
Quantity = _grammar(check_quantity, {"anyOf": [{"type": "string", "pattern": QUANTITY_PATTERN}, _NUMBER]})
GpuCount = _grammar(
    parse_gpu_count, {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d+$"}]}
)
Instances = _grammar(
    parse_instances,
    {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_INSTANCES}, {"type": "string", "pattern": r"^\d+$"}]},
)
Kind = _grammar(parse_kind, {"type": "string", "pattern": "^[cCgG][pP][uU]$"})  # any case, as parse_kind
Gpus = _grammar(
    parse_gpus,
    {
        "anyOf": [
            {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": r"^(all|\d+(\s*,\s*\d+)*)$"},
        ]
    },
)
Surge = _grammar(parse_surge, {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d+%?$"}]})
Endpoint = _grammar(parse_endpoint_path, {"type": "string"})
ApiName = _grammar(check_model_name, {"type": "string", "pattern": MODEL_NAME_RE.pattern}, none_is_absent=False)
Name = _grammar(_strict(str, "a string"), {"type": "string"}, none_is_absent=False)
WholeAtLeast1 = _grammar(_number_check(1, integer=True), {"type": "integer", "minimum": 1})
NumberAtLeast0 = _grammar(_number_check(0.0), {"type": "number", "minimum": 0})
NumberAtLeast1 = _grammar(_number_check(1.0), {"type": "number", "minimum": 1})
PositiveNumber = _grammar(_number_check(0.001), {"type": "number", "exclusiveMinimum": 0})
PositiveInt = _grammar(positive_int, {"type": "integer", "minimum": 1}, none_is_absent=False)
NonNegativeInt = _grammar(non_negative_int, {"type": "integer", "minimum": 0})
StreamThreads = _grammar(parse_stream_threads, {"type": "integer", "minimum": 1})
CacheSize = _grammar(check_cache_size, {"type": "integer", "minimum": 1})
ModelName = _grammar(check_model_entry_name, {"type": "string", "pattern": MODEL_ENTRY_NAME_RE.pattern})


def _check_location(value, where):
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise SpecError(f"{where}: expected an s3://bucket/prefix or a local folder, got {value!r}")


def _check_python_path(value, where):
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, str) or not item:
            raise SpecError(f"{where}: expected a folder (or a list of folders) relative to the project, got {value!r}")
        check_path_text(item, where)


def _check_env(value, where):
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping of names to values, got {value!r}")
    for key, item in value.items():
        check_env_value(key, item, f"{where}.{key}")


def _one_of(*values):
    def check(value, where):
        if value not in values:
            raise SpecError(f"{where}: expected {' or '.join(map(repr, values))}, got {value!r}")

    return _grammar(check, {"enum": list(values)})


ApiKind = _one_of("RealtimeAPI", "api")
PredictorType = _one_of("python")


def _refuse(why):
    def check(value, where):
        raise SpecError(f"{where}: {why}")

    return check


SignatureKey = _grammar(
    _refuse(
        "not supported by the python predictor type (a TensorFlow SavedModel signature; Python predictors have none)"
    ),
    {"not": {}, "description": "refused: a TensorFlow SavedModel signature"},
)
Path = _grammar(check_path_text, {"type": "string", "minLength": 1}, none_is_absent=False)
Location = _grammar(_check_location, {"type": "string", "minLength": 1})
PythonPath = _grammar(
    _check_python_path, {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
)
Env = _grammar(
    _check_env,
    {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
)
Dtype = _grammar(parse_dtype, {"type": "string"}, none_is_absent=False)
Shape = _grammar(parse_shape, {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "integer"}]})


# ---- the models --------------------------------------------------------------------------------


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Dependencies(Section):
    pip: Path = used(
        "requirements file installed by `tritonize docker build` (default requirements.txt)", "v0.30-v0.33"
    )
    conda: Path = used("conda packages file (default conda-packages.txt)", "v0.30-v0.33")
    shell: Path = used("shell script run in the image (default dependencies.sh)", "v0.30-v0.33")


class Batching(Section):
    max_batch_size: PositiveInt = used("requests per predict() call", "v0.19-v0.33", required=True)
    batch_interval: Duration = used("longest wait to fill a batch (Triton's max_queue_delay)", "v0.19-v0.33")
    max_queue_size: NonNegativeInt = tritonize_only("requests queued beyond this get 503 at once (0: no limit)")


class TensorInput(Section):
    name: Name = tritonize_only("tensor name", required=True)
    dtype: Dtype = tritonize_only("float32, int64, bool, bytes, FP32, ...", required=True)
    shape: Shape = tritonize_only("per-request shape; -1 for any size")
    ragged: Bool = tritonize_only("requests of different lengths batch together")


class TensorOutput(Section):
    name: Name = tritonize_only("tensor name", required=True)
    dtype: Dtype = tritonize_only("float32, int64, bool, bytes, FP32, ...", required=True)
    shape: Shape = tritonize_only("per-request shape; -1 for any size")


class Tensors(Section):
    inputs: list[TensorInput] | None = tritonize_only("the typed API's inputs")
    outputs: list[TensorOutput] | None = tritonize_only("the typed API's outputs")


class ModelPath(Section):
    name: ModelName = used("the model's name for python_client.get_model()", "v0.22-v0.33")
    path: Location = used("s3://bucket/prefix or a local folder of numbered versions", "v0.25-v0.33")
    model_path: Location = mapped(".path", "v0.22-v0.24")
    signature_key: SignatureKey = refused(
        "a TensorFlow SavedModel signature; Python predictors have none", "v0.22-v0.33"
    )


class Models(Section):
    path: Location = used("one model: s3://bucket/prefix or a local folder of numbered versions", "v0.25-v0.33")
    paths: list[ModelPath] | None = used("several named models", "v0.22-v0.33")
    dir: Location = used("a folder (or S3 prefix) of model folders", "v0.22-v0.33")
    cache_size: CacheSize = used("models kept in memory", "v0.22-v0.33")
    disk_cache_size: CacheSize = used("models kept on disk", "v0.22-v0.33")
    signature_key: SignatureKey = refused(
        "a TensorFlow SavedModel signature; Python predictors have none", "v0.22-v0.33"
    )


class Predictor(Section):
    type: PredictorType = used("'python' (tensorflow and onnx are refused with what to do instead)")
    path: Path = used("the predictor's .py file, relative to the project", required=True)
    config: Mapping = used("passed to the predictor's __init__")
    python_path: PythonPath = used("folder(s) put on sys.path")
    env: Env = used("environment variables of the predictor's process")
    server_side_batching: Batching | None = used(
        "predict() gets lists of requests (Triton's dynamic batching)", "v0.19-v0.33"
    )
    processes_per_replica: Instances = used("Triton instances of the model (processes)", "v0.18-v0.33")
    threads_per_process: StreamThreads = used(
        "streams one instance runs at once (streaming APIs); warned as not needed otherwise", "v0.18-v0.33"
    )
    dependencies: Dependencies | None = used("files `tritonize docker build` installs", "v0.30-v0.33")
    multi_model_reloading: Models | None = used("models for python_client (live reloading, caching)", "v0.25-v0.33")
    models: Models | None = used("the older name of multi_model_reloading", "v0.22-v0.24")
    model_path: Location = mapped("predictor.models.path", "v0.22-v0.24", "One model for python_client.")
    tensors: Tensors | None = tritonize_only("a typed tensor API: Triton inputs/outputs instead of a JSON body")
    image: Str = ignored("the image is built by `tritonize docker build`", "v0.16-v0.33")
    tensorflow_serving_image: Str = ignored("TensorFlow Serving is not used", "v0.16-v0.33")
    log_level: Str = ignored("`tritonize serve --verbose` and the predictor's own logging apply", "v0.26-v0.33")
    shm_size: Str = ignored(
        "set `tritonize serve --docker --shm-size` (Triton's Python backend uses /dev/shm)", "v0.26-v0.33"
    )
    signature_key: Str = ignored("a TensorFlow SavedModel signature; Python predictors have none", "v0.12-v0.24")
    model: Str = ignored(
        "the model file of TensorFlow/ONNX predictors; a Python predictor loads its own", "v0.12-v0.17"
    )
    protobuf_path: Str = ignored(
        "Cortex's own gRPC service; tritonize answers gRPC with Triton's KServe protocol", "v0.32-v0.33"
    )


class Networking(Section):
    endpoint: Endpoint = used("a second URL path the Cortex endpoint answers on", "v0.18-v0.33")
    api_gateway: Str = ignored("AWS API Gateway; put your own gateway or ingress in front", "v0.18-v0.25")
    local_port: Any = ignored("set the port with `tritonize serve --cortex-port`", "v0.18-v0.24")


class Compute(Section):
    cpu: Quantity = used("CPU request (`tritonize deploy`); 2+ cores on one instance is warned")
    gpu: GpuCount = used("GPUs: the API runs on GPUs 0..gpu-1")
    mem: Quantity = used("memory request (`tritonize deploy`)")
    inf: Any = ignored("AWS Inferentia chips; Triton here runs on CPUs and NVIDIA GPUs", "v0.18-v0.33")
    min_replicas: Any = mapped("autoscaling.min_replicas", "v0.12-v0.13")
    max_replicas: Any = mapped("autoscaling.max_replicas", "v0.12-v0.13")
    init_replicas: Any = mapped("autoscaling.init_replicas", "v0.12-v0.13")
    target_cpu_utilization: Any = ignored(
        "CPU-based scaling; `tritonize deploy` scales on in-flight requests, "
        "see autoscaling.target_replica_concurrency",
        "v0.12-v0.13",
    )
    max_surge: Any = mapped("update_strategy.max_surge", "v0.13")
    max_unavailable: Any = mapped("update_strategy.max_unavailable", "v0.13")


class Autoscaling(Section):
    min_replicas: WholeAtLeast1 = used("fewest replicas", "v0.14-v0.33")
    max_replicas: WholeAtLeast1 = used("most replicas", "v0.14-v0.33")
    init_replicas: WholeAtLeast1 = used("replicas at start", "v0.14-v0.33")
    target_replica_concurrency: PositiveNumber = used(
        "in-flight requests per replica the autoscaler aims at", "v0.14-v0.33"
    )
    max_replica_concurrency: WholeAtLeast1 = used(
        "accepted; not enforced (Triton queues instead), warned", "v0.14-v0.33"
    )
    window: Duration = used("averaging window of the autoscaler", "v0.14-v0.33")
    downscale_stabilization_period: Duration = used("HPA scale-down stabilization", "v0.14-v0.33")
    upscale_stabilization_period: Duration = used("HPA scale-up stabilization", "v0.14-v0.33")
    max_downscale_factor: NumberAtLeast0 = used("HPA scale-down rate", "v0.14-v0.33")
    max_upscale_factor: NumberAtLeast1 = used("HPA scale-up rate", "v0.14-v0.33")
    downscale_tolerance: NumberAtLeast0 = used("HPA tolerance (Kubernetes >= 1.33)", "v0.14-v0.33")
    upscale_tolerance: NumberAtLeast0 = used("HPA tolerance (Kubernetes >= 1.33)", "v0.14-v0.33")
    workers_per_replica: Any = mapped("predictor.processes_per_replica", "v0.14-v0.17", "Triton instances.")
    threads_per_worker: Any = mapped("predictor.threads_per_process", "v0.14-v0.17")


class UpdateStrategy(Section):
    max_surge: Surge = used("extra replicas during a rollout (number or percent)", "v0.14-v0.33")
    max_unavailable: Surge = used("replicas that may be down during a rollout", "v0.14-v0.33")


class TritonizeSettings(Section):
    kind: Kind = tritonize_only("'cpu' or 'gpu' instances")
    instances: Instances = tritonize_only("instances (processes): per GPU on GPU, in all on CPU")
    gpus: Gpus = tritonize_only("GPU ids like '0,1', a list, or 'all'")
    model_poll_interval: Duration = tritonize_only("how often python_client looks for new model versions (0: never)")
    stream: Bool = tritonize_only("stream the answer (default: when predict() yields)")
    request_timeout: Duration = tritonize_only("a request's time limit, e.g. 30s (0: none)")


class RealtimeApi(Section):
    """One API of cortex.yaml: a Triton model served by tritonize."""

    name: ApiName = used("the API's name: its Triton model name and POST /<name>", required=True)
    kind: ApiKind = used("RealtimeAPI (v0.19+); absent in v0.13-v0.18; `api` in v0.12")
    predictor: Predictor = used("the predictor", required=True)
    networking: Networking | None = used("the Cortex endpoint's extra path", "v0.18-v0.33")
    compute: Compute | None = used("resources: GPUs decide the instance group; cpu/mem `tritonize deploy`'s requests")
    autoscaling: Autoscaling | None = used("`tritonize deploy`'s autoscaler", "v0.14-v0.33")
    update_strategy: UpdateStrategy | None = used("`tritonize deploy`'s rollout", "v0.14-v0.33")
    tritonize: TritonizeSettings | None = tritonize_only("tritonize's own settings for this API")
    endpoint: Any = mapped("networking.endpoint", "v0.12-v0.17")
    tracker: Any = ignored("Cortex's prediction tracking (CloudWatch); see `tritonize status`", "v0.12-v0.16")
    monitoring: Any = ignored("Cortex's prediction monitoring (CloudWatch); see `tritonize status`", "v0.17-v0.24")
    local_port: Any = ignored("set the port with `tritonize serve --cortex-port`", "v0.16-v0.17")


class SplitTarget(Section):
    name: Name = used("an API of the same cortex.yaml", "v0.19-v0.33", required=True)
    weight: NonNegativeInt = used("percent of requests; non-shadow weights sum to 100", "v0.19-v0.33")
    shadow: Bool = used("gets a copy of every request; its answer is discarded", "v0.31-v0.33")


class SplitterNetworking(Section):
    endpoint: Endpoint = used("a second URL path the splitter answers on", "v0.19-v0.33")


class TrafficSplitter(Section):
    """A TrafficSplitter entry (Cortex v0.19+): requests to it go to its APIs by weight."""

    name: ApiName = used("the splitter's name: POST /<name>", "v0.19-v0.33", required=True)
    kind: Literal["TrafficSplitter"] = used("TrafficSplitter", "v0.19-v0.33", required=True)
    apis: list[SplitTarget] = used("the APIs it splits between", "v0.19-v0.33", required=True)
    networking: SplitterNetworking | None = used("the splitter's extra path", "v0.19-v0.33")


# ---- BatchAPI (Cortex v0.19-v0.33): the python predictor's fields, with Cortex's rules -------------

BATCH_VERSIONS = "v0.19-v0.33"
ONE_PER_WORKER = (
    "a BatchAPI runs one process with one thread per worker (Cortex's rule); a job's `workers` sets how many "
    "run at once"
)


def _only_one(value, where):
    if parse_instances(value, where) != 1:
        raise SpecError(f"{where}: must be 1: {ONE_PER_WORKER}")


OnePerWorker = _grammar(_only_one, {"anyOf": [{"const": 1}, {"const": "1"}]})


def _refused_section(why):
    return _grammar(_refuse(why), {"not": {}, "description": f"refused: {why}"})


BATCH_NO_BATCHING = (
    "a BatchAPI's predict() already gets a whole batch (the job's batch_size); Cortex had no "
    "server_side_batching for python BatchAPIs"
)
BATCH_NO_AUTOSCALING = "a BatchAPI has no autoscaling: each job runs `workers` workers (Cortex's rule)"
BATCH_NO_UPDATE_STRATEGY = "a BatchAPI has no rolling updates: each job loads the API's current build"
BATCH_NO_MODELS = (
    "Cortex's python BatchAPI had no models section: load the model in __init__ (config and job_spec say where)"
)
BATCH_NO_TENSORS = "a BatchAPI's requests are its job's batches (JSON lists), not typed tensors"
BATCH_NO_STREAM = "a BatchAPI's predict() writes its results; nothing streams back"
BATCH_NO_INSTANCES = "a BatchAPI's instances are the workers of each job (the job submission's `workers`)"
NoBatching = _refused_section(BATCH_NO_BATCHING)
NoModels = _refused_section(BATCH_NO_MODELS)
NoTensors = _refused_section(BATCH_NO_TENSORS)
NoInstances = _refused_section(BATCH_NO_INSTANCES)
NoStream = _refused_section(BATCH_NO_STREAM)
NoAutoscaling = _refused_section(BATCH_NO_AUTOSCALING)
NoUpdateStrategy = _refused_section(BATCH_NO_UPDATE_STRATEGY)


class BatchPredictor(Section):
    type: PredictorType = used("'python' (tensorflow and onnx are refused with what to do instead)", BATCH_VERSIONS)
    path: Path = used("the predictor's .py file, relative to the project", BATCH_VERSIONS, required=True)
    config: Mapping = used(
        "passed to __init__, merged with the job submission's config (the job's wins)", BATCH_VERSIONS
    )
    python_path: PythonPath = used("folder(s) put on sys.path", BATCH_VERSIONS)
    env: Env = used("environment variables of each worker's process", BATCH_VERSIONS)
    dependencies: Dependencies | None = used("files `tritonize docker build` installs", "v0.30-v0.33")
    image: Str = ignored("the image is built by `tritonize docker build`", BATCH_VERSIONS)
    log_level: Str = ignored("`tritonize serve --verbose` and the predictor's own logging apply", "v0.26-v0.33")
    shm_size: Str = ignored(
        "set `tritonize serve --docker --shm-size` (Triton's Python backend uses /dev/shm)", "v0.26-v0.33"
    )
    processes_per_replica: OnePerWorker = used(f"only 1: {ONE_PER_WORKER}", "-")
    threads_per_process: OnePerWorker = used(f"only 1: {ONE_PER_WORKER}", "-")
    server_side_batching: NoBatching = refused(BATCH_NO_BATCHING, BATCH_VERSIONS)
    multi_model_reloading: NoModels = refused(BATCH_NO_MODELS, "-")
    models: NoModels = refused(BATCH_NO_MODELS, "-")
    tensors: NoTensors = refused(BATCH_NO_TENSORS, "-")


class BatchNetworking(Section):
    endpoint: Endpoint = used("a second URL path the Cortex endpoint takes jobs on", BATCH_VERSIONS)
    api_gateway: Str = ignored("AWS API Gateway; put your own gateway or ingress in front", "v0.19-v0.25")


class BatchCompute(Section):
    cpu: Quantity = used("CPU request per worker (`tritonize deploy`)", BATCH_VERSIONS)
    gpu: GpuCount = used("GPUs 0..gpu-1: a job's workers are spread over them, one GPU per worker", BATCH_VERSIONS)
    mem: Quantity = used("memory request (`tritonize deploy`)", BATCH_VERSIONS)
    inf: Any = ignored("AWS Inferentia chips; Triton here runs on CPUs and NVIDIA GPUs", BATCH_VERSIONS)


class BatchTritonizeSettings(Section):
    kind: Kind = tritonize_only("'cpu' or 'gpu' workers")
    gpus: Gpus = tritonize_only("GPU ids like '0,1', a list, or 'all'")
    request_timeout: Duration = tritonize_only("one batch's time limit, e.g. 10m (default: none)")
    instances: NoInstances = refused(BATCH_NO_INSTANCES, "-")
    stream: NoStream = refused(BATCH_NO_STREAM, "-")


class BatchApi(Section):
    """A BatchAPI entry: a Triton model loaded for each job with the job's config (adapter/runtime/batch.py)."""

    name: ApiName = used("the API's name: its Triton model name and POST /<name> (jobs)", BATCH_VERSIONS, required=True)
    kind: Literal["BatchAPI"] = used("BatchAPI", BATCH_VERSIONS, required=True)
    predictor: BatchPredictor = used("the predictor", BATCH_VERSIONS, required=True)
    networking: BatchNetworking | None = used("the Cortex endpoint's extra path", BATCH_VERSIONS)
    compute: BatchCompute | None = used("resources per worker: GPUs decide the instance group", BATCH_VERSIONS)
    tritonize: BatchTritonizeSettings | None = tritonize_only("tritonize's own settings for this API")
    autoscaling: NoAutoscaling = refused(BATCH_NO_AUTOSCALING, BATCH_VERSIONS)
    update_strategy: NoUpdateStrategy = refused(BATCH_NO_UPDATE_STRATEGY, BATCH_VERSIONS)


# Every `kind:` Cortex had, with tritonize's answer (docs/migrating-from-cortex.md lists them).
KINDS = {
    "RealtimeAPI": ("used", "v0.19-v0.33", "one Triton model per API"),
    "api": ("mapped", "v0.12", "read as RealtimeAPI"),
    "TrafficSplitter": ("used", "v0.19-v0.33", "served by the Cortex endpoint (POST /<splitter>)"),
    "BatchAPI": ("used", "v0.19-v0.33", "one Triton model per API, loaded for each job with its workers and config"),
    "TaskAPI": ("refused", "v0.27-v0.33", "one-off jobs"),
    "AsyncAPI": ("refused", "v0.32-v0.33", "queued requests answered later"),
    "deployment": ("refused", "v0.11 and earlier", "the deployment entry Cortex v0.12 dropped"),
}


# ---- reading the models back: statuses, mappings, errors ---------------------------------------


def _section_model(annotation):
    """The Section model a field holds (directly, in a list, or Optional), or None."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    for arg in typing.get_args(annotation):
        inner = _section_model(arg)
        if inner is not None:
            return inner
    return None


def iter_fields(model=RealtimeApi, prefix=""):
    """(dotted path, status, extra) for every field of `model`, depth first; list items add no index."""
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra or {}
        path = f"{prefix}{name}"
        yield path, extra.get("x-tritonize"), extra
        inner = _section_model(info.annotation)
        if inner is not None:
            yield from iter_fields(inner, path + ".")


@functools.cache
def fields_with_status(status, model=RealtimeApi):
    return {path: extra for path, field_status, extra in iter_fields(model) if field_status == status}


def _model_at(model, loc):
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        model = _section_model(info.annotation) if info is not None else None
    return model


def _where_in_spec(key):
    """Sections that have a field called `key` ('predictor', 'autoscaling', '' for the top level)."""
    return sorted({path.rpartition(".")[0] for path, _, _ in iter_fields() if path.rpartition(".")[2] == key})


def _unknown_key_message(model, key):
    current = sorted(
        name for name, info in model.model_fields.items() if (info.json_schema_extra or {}).get("x-tritonize") == "used"
    )
    text = f"unknown key (known: {', '.join(current)})"
    close = difflib.get_close_matches(str(key), list(model.model_fields), n=1, cutoff=0.75)
    if close:
        return f"{text}; did you mean {close[0]!r}?"
    elsewhere = _where_in_spec(key)
    if elsewhere:
        places = [s or "the API itself" for s in elsewhere[:3]] + (["..."] if len(elsewhere) > 3 else [])
        return f"{text}; {key!r} belongs under {' or '.join(places)}"
    return text


_TYPE_WORDS = {
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "float_type": "a number",
}


def _message(error, model):
    kind, loc = error["type"], error["loc"]
    if kind == "extra_forbidden":
        return _unknown_key_message(_model_at(model, loc[:-1]) or model, loc[-1])
    if kind == "missing":
        return "required"
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {error['input']!r}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return error["msg"]


def format_location(loc):
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def validate_api(entry, where, model=RealtimeApi):
    """-> ["<where>.<location>: <message>", ...] for every schema error of one API entry ([] if none)."""
    try:
        model.model_validate(entry)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = _message(error, model)
            located = message[1:] if message.startswith("@") else f": {message}"
            lines.append(f"{where}{format_location(error['loc'])}{located}")
        return lines
    return []


def ignored_fields(entry, model=RealtimeApi):
    """(dotted path, why) of the ignored fields an entry sets, in the schema's order."""
    found = []
    for path, extra in fields_with_status("ignored", model).items():
        if _present(entry, path.split(".")):
            found.append((path, extra["x-tritonize-why"]))
    return found


def _present(value, parts):
    if isinstance(value, list):
        return any(_present(item, parts) for item in value)
    if not parts:
        return True
    return isinstance(value, dict) and parts[0] in value and _present(value[parts[0]], parts[1:])


def cortex_json_schema():
    """The JSON Schema of cortex.yaml: a list of APIs (or one), each a RealtimeAPI, a BatchAPI or a TrafficSplitter."""
    entry = RealtimeApi | BatchApi | TrafficSplitter
    schema = TypeAdapter(Annotated[list[entry], Field(min_length=1)] | entry).json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "cortex.yaml (tritonize)",
        "description": "Cortex v0.12-v0.33 API specs as tritonize reads them; each field says whether tritonize "
        "uses, maps, ignores or refuses it. Generated by `tritonize schema`; do not edit.",
        **schema,
    }


# The published copy (schema/cortex.schema.json, in the wheel as tritonize/schema/): a test keeps it equal
# to what the models generate.
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schema", "cortex.schema.json")


def cortex_json_schema_text():
    return json.dumps(cortex_json_schema(), indent=2, ensure_ascii=False) + "\n"
