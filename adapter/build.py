"""`tritonize build`: a predictor file or a cortex.yaml -> a model repository."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tritonize.adapter.batching import parse_batching
from tritonize.adapter.instances import apply_instance_settings, describe
from tritonize.adapter.repository import build_repository
from tritonize.adapter.spec import ApiSpec, api_from_predictor_file, load_spec_file
from tritonize.adapter.streaming import describe_streaming
from tritonize.adapter.tensor_spec import parse_tensors
from tritonize.adapter.traffic_splitter import describe_splitter
from tritonize.errors import SpecError

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass
class BuildResult:
    output_dir: str
    apis: list[ApiSpec]

    @property
    def warnings(self) -> list[str]:
        splitters = getattr(self.apis, "traffic_splitters", [])
        return [w for api in self.apis for w in api.warnings] + [w for s in splitters for w in s.warnings]

    def instance_summary(self) -> list[str]:
        lines = [f"  {api.name}: {describe(api)}{describe_streaming(api)}" for api in self.apis]
        return lines + [f"  {s.name}: {describe_splitter(s)}" for s in getattr(self.apis, "traffic_splitters", [])]


def load_apis(
    source: str,
    name: str | None = None,
    class_name: str = "PythonPredictor",
    config: dict[str, Any] | None = None,
    batching: dict[str, Any] | None = None,
    tensors: dict[str, Any] | None = None,
) -> list[ApiSpec]:
    """ApiSpecs from a .py predictor or a .yaml spec (settings from the command line apply to .py only).

    batching: server_side_batching as in a spec ({max_batch_size, batch_interval, max_queue_size});
    tensors: {inputs: [...], outputs: [...]} as in a spec.
    """
    if source.endswith(SPEC_SUFFIXES):
        if name or config or batching or tensors:
            raise SpecError(
                "--name, --config, batching and tensor options apply to a predictor file; "
                "set them in the spec file instead"
            )
        return load_spec_file(source, class_name=class_name)
    queue_size = (batching or {}).get("max_queue_size")
    section = {k: v for k, v in (batching or {}).items() if k != "max_queue_size"} or None
    return [
        api_from_predictor_file(
            source,
            name=name,
            class_name=class_name,
            config=config,
            batching=parse_batching(section, "--max-batch-size/--batch-interval", max_queue_size=queue_size),
            tensors=parse_tensors(tensors, "--input/--output"),
        )
    ]


def apply_instance_overrides(
    apis: list[ApiSpec], kind: str | None = None, instances: int | None = None, gpus: list[int] | None = None
) -> list[ApiSpec]:
    """`build --kind/--instances/--gpus` (already parsed): override every API's instance group."""
    for api in apis:
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
) -> BuildResult:
    """Write a Triton model repository for `source` (predictor.py or cortex.yaml); nothing half-done on failure."""
    apis = load_apis(source, name=name, class_name=class_name, config=config, batching=batching, tensors=tensors)
    apply_instance_overrides(apis, kind=kind, instances=instances, gpus=gpus)
    return BuildResult(build_repository(apis, os.path.abspath(output_dir), force=force), apis)
