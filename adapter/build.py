"""`tritonize build`: a predictor file or a cortex.yaml -> a model repository."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tritonize.adapter.batching import parse_batching
from tritonize.adapter.instances import apply_instance_settings, describe
from tritonize.adapter.repository import build_repository
from tritonize.adapter.runtime.constants import BATCH_API, REALTIME_API
from tritonize.adapter.signature import batch_markers
from tritonize.adapter.spec import ApiSpec, api_from_predictor_file, load_spec_file
from tritonize.adapter.streaming import describe_streaming
from tritonize.adapter.tensor_spec import parse_tensors
from tritonize.adapter.traffic_splitter import describe_splitter
from tritonize.errors import SpecError

SPEC_SUFFIXES = (".yaml", ".yml")
# `build predictor.py --api-kind`: "auto" builds a BatchAPI when the predictor names a batch-only argument.
API_KINDS = ("auto", REALTIME_API, BATCH_API)


@dataclass
class BuildResult:
    output_dir: str
    apis: list[ApiSpec]

    @property
    def warnings(self) -> list[str]:
        splitters = getattr(self.apis, "traffic_splitters", [])
        return [w for api in self.apis for w in api.warnings] + [w for s in splitters for w in s.warnings]

    def instance_summary(self) -> list[str]:
        lines = [f"  {api.name}: {_describe_api(api)}" for api in self.apis]
        return lines + [f"  {s.name}: {describe_splitter(s)}" for s in getattr(self.apis, "traffic_splitters", [])]


def _describe_api(api: ApiSpec) -> str:
    if not api.batch:
        return f"{describe(api)}{describe_streaming(api)}"
    why = f" ({api.batch_reason}; --api-kind RealtimeAPI builds a RealtimeAPI)" if api.batch_reason else ""
    where = "CPU" if api.kind == "cpu" else describe(api).partition(" on ")[2] or "GPU"
    return f"BatchAPI{why}: loaded for each job, one instance per worker ({where}); not loaded at start"


def _apply_api_kind(api: ApiSpec, api_kind: str, source_text: str) -> None:
    """`build predictor.py`: a BatchAPI when --api-kind says so, or (auto) when predict() takes batch_id or
    __init__ takes job_spec (without a default), as only Cortex's batch workers passed those."""
    if api_kind not in API_KINDS:
        raise SpecError(f"--api-kind: expected one of {', '.join(API_KINDS)}, got {api_kind!r}")
    if api_kind == "auto":
        try:
            reasons = batch_markers(source_text, api.class_name)
        except SyntaxError:
            reasons = []  # the build's source check reports it, located
        if reasons:
            api.api_kind, api.batch_reason = BATCH_API, " and ".join(reasons)
    else:
        api.api_kind = api_kind


def load_apis(
    source: str,
    name: str | None = None,
    class_name: str = "PythonPredictor",
    config: dict[str, Any] | None = None,
    batching: dict[str, Any] | None = None,
    tensors: dict[str, Any] | None = None,
    api_kind: str = "auto",
) -> list[ApiSpec]:
    """ApiSpecs from a .py predictor or a .yaml spec (settings from the command line apply to .py only).

    batching: server_side_batching as in a spec ({max_batch_size, batch_interval, max_queue_size});
    tensors: {inputs: [...], outputs: [...]} as in a spec; api_kind: one of API_KINDS (a .py only).
    """
    if source.endswith(SPEC_SUFFIXES):
        if name or config or batching or tensors or api_kind != "auto":
            raise SpecError(
                "--name, --config, --api-kind, batching and tensor options apply to a predictor file; "
                "set them in the spec file instead"
            )
        return load_spec_file(source, class_name=class_name)
    queue_size = (batching or {}).get("max_queue_size")
    section = {k: v for k, v in (batching or {}).items() if k != "max_queue_size"} or None
    api = api_from_predictor_file(
        source,
        name=name,
        class_name=class_name,
        config=config,
        batching=parse_batching(section, "--max-batch-size/--batch-interval", max_queue_size=queue_size),
        tensors=parse_tensors(tensors, "--input/--output"),
    )
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        text = ""  # the build's source check reports it
    _apply_api_kind(api, api_kind, text)
    if api.batch and (batching or tensors):
        raise SpecError(
            f"{api.name} is a BatchAPI{f' ({api.batch_reason})' if api.batch_reason else ''}: batching and tensor "
            "options apply to RealtimeAPIs (a BatchAPI's predict() gets the job's batches)"
        )
    return [api]


def apply_instance_overrides(
    apis: list[ApiSpec], kind: str | None = None, instances: int | None = None, gpus: list[int] | None = None
) -> list[ApiSpec]:
    """`build --kind/--instances/--gpus` (already parsed): override every API's instance group."""
    for api in apis:
        if api.batch and instances is not None:
            raise SpecError(
                f"--instances: {api.name} is a BatchAPI, whose instances are the workers of each job (set by the job)"
            )
        apply_instance_settings(api, kind=kind, instances=instances, gpus=gpus, where="--kind/--gpus")
    return apis


def build(
    source: str,
    output_dir: str = "model_repository",
    name: str | None = None,
    class_name: str = "PythonPredictor",
    config: dict[str, Any] | None = None,
    force: bool = False,
    batching: dict[str, Any] | None = None,
    tensors: dict[str, Any] | None = None,
    kind: str | None = None,
    instances: int | None = None,
    gpus: list[int] | None = None,
    api_kind: str = "auto",
) -> BuildResult:
    """Write a Triton model repository for `source` (predictor.py or cortex.yaml); nothing half-done on failure.

    api_kind (a predictor file only): "auto" (a BatchAPI if predict() takes batch_id or __init__ takes
    job_spec), "RealtimeAPI" or "BatchAPI"."""
    apis = load_apis(
        source,
        name=name,
        class_name=class_name,
        config=config,
        batching=batching,
        tensors=tensors,
        api_kind=api_kind,
    )
    apply_instance_overrides(apis, kind=kind, instances=instances, gpus=gpus)
    return BuildResult(build_repository(apis, os.path.abspath(output_dir), force=force), apis)
