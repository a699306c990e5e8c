"""Instance groups: how many predictor processes Triton runs for an API, and on which devices.

Sources, later ones win: Cortex's `compute.gpu` / `compute.cpu`, Cortex's
`predictor.processes_per_replica`, the API's `tritonize:` mapping in the spec,
then `tritonize build --kind/--instances/--gpus`.
"""

from tritonize.adapter.runtime.constants import REQUEST_TIMEOUT_KEY
from tritonize.adapter.spec_values import check_keys
from tritonize.errors import SpecError

KINDS = ("cpu", "gpu")
MAX_INSTANCES = 64
MAX_GPUS = 64  # per replica: compute.gpu N means GPUs 0..N-1 of one machine
# Keys of the per-API `tritonize:` mapping in cortex.yaml.
# model_poll_interval: adapter/models_spec.py; stream: adapter/streaming.py
TRITONIZE_KEYS = {"kind", "instances", "gpus", "model_poll_interval", "stream", REQUEST_TIMEOUT_KEY}


def parse_kind(value, where):
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in KINDS:
        raise SpecError(f"{where}: expected 'cpu' or 'gpu', got {value!r}")
    return value.lower()


def parse_instances(value, where):
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INSTANCES:
        raise SpecError(f"{where}: expected a whole number of instances from 1 to {MAX_INSTANCES}, got {value!r}")
    return value


def parse_gpus(value, where):
    """'0,1' / [0, 1] / 0 -> [0, 1] / [0]; 'all' -> 'all' (every GPU Triton sees); None -> None."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
    gpus = []
    for item in items:
        if isinstance(item, str) and item.strip().isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise SpecError(f"{where}: expected GPU ids like '0,1' (or 'all'), got {value!r}")
        if item in gpus:
            raise SpecError(f"{where}: GPU {item} is listed twice")
        gpus.append(item)
    if not gpus:
        raise SpecError(f"{where}: expected at least one GPU id (or 'all')")
    return gpus


def parse_gpu_count(value, where):
    """compute.gpu: 0, 1, '2' -> a whole number of GPUs."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GPUS:
        raise SpecError(f"{where}: expected a whole number of GPUs (0 to {MAX_GPUS}), got {value!r}")
    return value


def apply_instance_settings(api, kind=None, instances=None, gpus=None, where="instances"):
    """Override api.kind/instances/gpus with the settings given (None = keep)."""
    if gpus is not None and kind == "cpu":
        raise SpecError(f"{where}: GPUs {gpus} were given for kind 'cpu'; drop the GPUs or use kind 'gpu'")
    new_kind = kind or ("gpu" if gpus is not None else api.kind)
    if new_kind == "gpu":
        if gpus is not None:
            api.gpus = None if gpus == "all" else list(gpus)
        elif api.kind != "gpu":
            api.gpus = None  # kind gpu alone: every GPU Triton sees
    else:
        api.gpus = None
    api.kind = new_kind
    if instances is not None:
        api.instances = instances
    return api


def _cpu_amount(value):
    """Cortex cpu quantities: 1, 0.5, '2', '200m' -> cores as float (None if unreadable)."""
    try:
        if isinstance(value, str) and value.endswith("m"):
            return float(value[:-1]) / 1000
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_api_instances(api, entry, predictor, where):
    """Set api.kind/instances/gpus from one cortex.yaml entry; return warnings."""
    warnings = []
    compute = entry.get("compute")
    cpu = None
    if compute is not None:
        if not isinstance(compute, dict):
            raise SpecError(f"{where}.compute: expected a mapping (cpu, gpu, mem, ...)")
        gpu = parse_gpu_count(compute.get("gpu") or 0, f"{where}.compute.gpu")
        if gpu:
            apply_instance_settings(api, kind="gpu", gpus=list(range(gpu)))
        cpu = _cpu_amount(compute.get("cpu"))
    if predictor.get("processes_per_replica") is not None:
        apply_instance_settings(
            api,
            instances=parse_instances(predictor["processes_per_replica"], f"{where}.predictor.processes_per_replica"),
        )
    settings = entry.get("tritonize")
    if settings is not None:
        if not isinstance(settings, dict):
            raise SpecError(f"{where}.tritonize: expected a mapping ({', '.join(sorted(TRITONIZE_KEYS))})")
        check_keys(settings, TRITONIZE_KEYS, f"{where}.tritonize")
        apply_instance_settings(
            api,
            kind=parse_kind(settings.get("kind"), f"{where}.tritonize.kind"),
            instances=parse_instances(settings.get("instances"), f"{where}.tritonize.instances"),
            gpus=parse_gpus(settings.get("gpus"), f"{where}.tritonize.gpus"),
            where=f"{where}.tritonize",
        )
    # (A BatchAPI's instances are its jobs' workers: compute.cpu is each worker's request, nothing to add.)
    if api.kind == "cpu" and api.instances == 1 and cpu is not None and cpu >= 2 and not api.batch:
        warnings.append(
            f"{api.name}: compute.cpu {compute.get('cpu')} reserves cores in Cortex; Triton runs one CPU "
            "instance (one process); set tritonize.instances for more"
        )
    return warnings


def instance_group_dicts(api):
    """protobuf-JSON `instance_group` entries for an API."""
    if api.kind == "gpu":
        group = {"kind": "KIND_GPU", "count": api.instances}
        if api.gpus is not None:
            group["gpus"] = list(api.gpus)
        return [group]
    return [{"kind": "KIND_CPU", "count": api.instances}]


def has_single_instance(api):
    """Exactly one instance process (a GPU API without a GPU list gets one per GPU the server has)."""
    if api.instances != 1:
        return False
    return api.kind == "cpu" or (api.gpus is not None and len(api.gpus) == 1)


def describe(api):
    """'2 CPU instances' / '1 instance on each of GPUs 0, 1' / '1 instance on every GPU'."""
    plural = "s" if api.instances != 1 else ""
    if api.kind == "cpu":
        return f"{api.instances} CPU instance{plural}"
    if api.gpus is None:
        return f"{api.instances} instance{plural} on every GPU"
    where = f"GPU {api.gpus[0]}" if len(api.gpus) == 1 else "each of GPUs " + ", ".join(map(str, api.gpus))
    return f"{api.instances} instance{plural} on {where}"
