"""Parsing Cortex's `autoscaling` and `update_strategy` sections (deploy/autoscalers.py turns
them into autoscaler settings)."""

import math
import re
from dataclasses import dataclass

from tritonize.adapter.spec_values import check_keys, parse_duration_s
from tritonize.errors import SpecError

# Cortex 0.3x defaults.
DEFAULTS = {
    "min_replicas": 1,
    "max_replicas": 100,
    "init_replicas": None,  # = min_replicas
    "target_replica_concurrency": None,  # = processes_per_replica (instances)
    "max_replica_concurrency": 1024,
    "window": "60s",
    "downscale_stabilization_period": "5m",
    "upscale_stabilization_period": "1m",
    "max_downscale_factor": 0.75,
    "max_upscale_factor": 1.5,
    "downscale_tolerance": 0.05,
    "upscale_tolerance": 0.05,
}
UPDATE_DEFAULTS = {"max_surge": "25%", "max_unavailable": "25%"}
_PERCENT_OR_INT = re.compile(r"^(\d+)%?$")


@dataclass
class Autoscaling:
    min_replicas: int = 1
    max_replicas: int = 100
    init_replicas: int = 1
    target_replica_concurrency: float = 1.0
    window_s: int = 60
    upscale_stabilization_s: int = 60
    downscale_stabilization_s: int = 300
    max_upscale_percent: int = 50  # max_upscale_factor 1.5 -> +50 % per period
    max_downscale_percent: int = 25  # max_downscale_factor 0.75 -> -25 % per period
    upscale_tolerance: float | None = None  # set only when the spec gives it (Kubernetes >= 1.33)
    downscale_tolerance: float | None = None
    max_replica_concurrency: int = 1024


@dataclass
class UpdateStrategy:
    max_surge: object = "25%"
    max_unavailable: object = "25%"


def number_at_least(value, where, minimum, integer=False):
    """A number (a whole one if `integer`) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise SpecError(f"{where}: expected {'a whole number' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        raise SpecError(f"{where}: expected a finite number, got {value!r}")
    if value < minimum:
        raise SpecError(f"{where}: must be at least {minimum}, got {value!r}")
    return int(value) if integer else float(value)


def parse_autoscaling(value, where, instances=1):
    """cortex.yaml `autoscaling` -> (Autoscaling, warnings)."""
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping")
    check_keys(value, DEFAULTS, where)
    a = Autoscaling()
    get = lambda key: value.get(key, DEFAULTS[key])  # noqa: E731
    a.min_replicas = number_at_least(get("min_replicas"), f"{where}.min_replicas", 1, integer=True)
    a.max_replicas = number_at_least(get("max_replicas"), f"{where}.max_replicas", 1, integer=True)
    if a.max_replicas < a.min_replicas:
        raise SpecError(f"{where}: max_replicas {a.max_replicas} is below min_replicas {a.min_replicas}")
    init = value.get("init_replicas")
    a.init_replicas = (
        a.min_replicas if init is None else number_at_least(init, f"{where}.init_replicas", 1, integer=True)
    )
    if not a.min_replicas <= a.init_replicas <= a.max_replicas:
        raise SpecError(f"{where}.init_replicas: {a.init_replicas} is not between min_replicas and max_replicas")
    target = value.get("target_replica_concurrency")
    a.target_replica_concurrency = (
        float(instances) if target is None else number_at_least(target, f"{where}.target_replica_concurrency", 0.001)
    )
    a.window_s = max(1, parse_duration_s(get("window"), f"{where}.window"))
    a.upscale_stabilization_s = parse_duration_s(
        get("upscale_stabilization_period"), f"{where}.upscale_stabilization_period"
    )
    a.downscale_stabilization_s = parse_duration_s(
        get("downscale_stabilization_period"), f"{where}.downscale_stabilization_period"
    )
    for key in ("upscale_stabilization_s", "downscale_stabilization_s"):
        if getattr(a, key) > 3600:
            raise SpecError(f"{where}: stabilization periods above 1h are not allowed by Kubernetes")
    up = number_at_least(get("max_upscale_factor"), f"{where}.max_upscale_factor", 1.0)
    down = number_at_least(get("max_downscale_factor"), f"{where}.max_downscale_factor", 0.0)
    if up <= 1 or down >= 1:
        raise SpecError(f"{where}: max_upscale_factor must be > 1 and max_downscale_factor < 1")
    a.max_upscale_percent = max(1, round((up - 1) * 100))
    a.max_downscale_percent = max(1, round((1 - down) * 100))
    for side in ("upscale", "downscale"):
        key = f"{side}_tolerance"
        if key in value:
            setattr(a, key, number_at_least(value[key], f"{where}.{key}", 0.0))
    a.max_replica_concurrency = number_at_least(
        get("max_replica_concurrency"), f"{where}.max_replica_concurrency", 1, integer=True
    )
    warnings = []
    if "max_replica_concurrency" in value:
        warnings.append(
            "autoscaling.max_replica_concurrency: not enforced (Cortex answered 503 beyond it); Triton queues "
            "instead: set predictor.server_side_batching.max_queue_size for a per-replica limit"
        )
    if "upscale_tolerance" in value or "downscale_tolerance" in value:
        warnings.append(
            "autoscaling.*_tolerance: written as the HPA's behavior.scaleUp/scaleDown.tolerance, which needs "
            "Kubernetes >= 1.33 with the HPAConfigurableTolerance feature gate (older clusters drop it and use "
            "the cluster-wide --horizontal-pod-autoscaler-tolerance, default 0.1)"
        )
    return a, warnings


def parse_surge(value, where):
    if isinstance(value, bool):
        raise SpecError(f"{where}: expected a number of replicas or a percentage like 25%, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and _PERCENT_OR_INT.match(value.strip()):
        text = value.strip()
        return text if text.endswith("%") else int(text)
    raise SpecError(f"{where}: expected a number of replicas or a percentage like 25%, got {value!r}")


def parse_update_strategy(value, where):
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping with max_surge and max_unavailable")
    check_keys(value, UPDATE_DEFAULTS, where)
    strategy = UpdateStrategy(
        max_surge=parse_surge(value.get("max_surge", UPDATE_DEFAULTS["max_surge"]), f"{where}.max_surge"),
        max_unavailable=parse_surge(
            value.get("max_unavailable", UPDATE_DEFAULTS["max_unavailable"]), f"{where}.max_unavailable"
        ),
    )
    if strategy.max_surge in (0, "0%") and strategy.max_unavailable in (0, "0%"):
        raise SpecError(f"{where}: max_surge and max_unavailable cannot both be 0")
    return strategy
