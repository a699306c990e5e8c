"""A built repository as the host sees it: the runtime's typed settings plus each model's Triton config.

adapter/runtime/repository_model.py reads what tritonize wrote (standard library only, so the
runtime and the Cortex endpoint's zipapp read it too); this adds what config.pbtxt says, parsed
with Triton's own ModelConfig protobuf. Every host-side reader (serve, docker build, deploy,
the GPU checks) asks this model; none reads the files itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, text_format
from tritonclient.grpc.model_config_pb2 import ModelConfig, ModelInstanceGroup

from tritonize.adapter.model_config import parse_pbtxt
from tritonize.adapter.runtime.repository_model import (
    CONFIG_FILE,
    NOT_BUILT,
    REBUILD,
    ApiSettings,
    RepositoryFormatError,
    RepositoryMarker,
    read_repository_settings,
)
from tritonize.errors import RepositoryError


def config_from_triton_json(data: dict[str, Any]) -> ModelConfig:
    """A model's config as Triton's /v2/models/<name>/config answers it -> ModelConfig."""
    return json_format.ParseDict(data, ModelConfig(), ignore_unknown_fields=True)


def is_streaming(config: ModelConfig) -> bool:
    """A streaming API is a decoupled model: any number of responses per request."""
    return bool(config.model_transaction_policy.decoupled)


def gpu_ids(config: ModelConfig) -> tuple[int, ...] | None:
    """The GPUs a model's KIND_GPU instances list (sorted), or None for "every GPU"; () if it has none."""
    ids: set[int] = set()
    for group in config.instance_group:
        if group.kind == ModelInstanceGroup.KIND_GPU:
            if not group.gpus:
                return None
            ids.update(group.gpus)
    return tuple(sorted(ids))


def instance_count(config: ModelConfig) -> int:
    """Instance processes the model runs: a group's count, per listed GPU for KIND_GPU groups."""
    return sum(
        max(group.count, 1) * (len(group.gpus) if group.kind == ModelInstanceGroup.KIND_GPU and group.gpus else 1)
        for group in config.instance_group
    )


@dataclass(frozen=True)
class BuiltModel:
    """One model of the repository: its Triton config, and its tritonize settings (None: added by hand)."""

    name: str
    config: ModelConfig
    settings: ApiSettings | None

    @property
    def streaming(self) -> bool:
        return is_streaming(self.config)

    @property
    def typed(self) -> bool:
        return self.settings is not None and self.settings.typed

    @property
    def uses_gpus(self) -> bool:
        return any(group.kind == ModelInstanceGroup.KIND_GPU for group in self.config.instance_group)

    @property
    def gpu_ids(self) -> tuple[int, ...] | None:
        return gpu_ids(self.config)


@dataclass(frozen=True)
class BuiltRepository:
    path: str
    marker: RepositoryMarker | None
    models: tuple[BuiltModel, ...]

    @property
    def names(self) -> list[str]:
        return [model.name for model in self.models]

    @property
    def apis(self) -> list[BuiltModel]:
        """The models tritonize wrote (with settings)."""
        return [model for model in self.models if model.settings is not None]

    @property
    def batch_names(self) -> list[str]:
        """The BatchAPIs: not loaded at start, each job loads its own workers."""
        return [model.name for model in self.models if model.settings is not None and model.settings.batch]

    @property
    def streaming_names(self) -> list[str]:
        return [model.name for model in self.models if model.streaming]

    def gpu_needs(self) -> dict[str, list[int] | None]:
        """{model: sorted GPU ids it lists, or None for "every GPU"} for the models with KIND_GPU instances."""
        return {
            model.name: None if model.gpu_ids is None else list(model.gpu_ids)
            for model in self.models
            if model.uses_gpus
        }

    def require_tritonize(self) -> BuiltRepository:
        """This repository, if `tritonize build` wrote it; else RepositoryError."""
        if self.marker is None or not self.apis:
            raise RepositoryError(f"{self.path}: {NOT_BUILT}")
        return self


def read_model_config(repository: str, name: str) -> ModelConfig:
    path = os.path.join(repository, name, CONFIG_FILE)
    with open(path, encoding="utf-8") as f:
        try:
            return parse_pbtxt(f.read())
        except text_format.ParseError as exc:
            raise RepositoryError(f"{path}: not a valid Triton model config: {exc}") from None


def read_built_repository(repository: str) -> BuiltRepository:
    """The repository's models, settings and configs; RepositoryError if tritonize cannot read it."""
    try:
        written = read_repository_settings(repository)
    except RepositoryFormatError as exc:
        raise RepositoryError(str(exc)) from None
    models = []
    for name in written.names:
        model = BuiltModel(name, read_model_config(repository, name), written.apis.get(name))
        if model.settings is not None and model.settings.streaming != model.streaming:
            raise RepositoryError(
                f"{os.path.join(repository, name, CONFIG_FILE)}: decoupled is {model.streaming} but the API's "
                f"settings say stream: {model.settings.streaming} (edited by hand?); {REBUILD}"
            )
        models.append(model)
    return BuiltRepository(repository, written.marker, tuple(models))
