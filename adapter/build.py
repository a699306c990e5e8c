"""`tritonize build`: a predictor file or a cortex.yaml -> a model repository."""

import os
from dataclasses import dataclass

from .instances import apply_instance_settings, describe
from .repository import build_repository
from .spec import api_from_predictor_file, load_spec_file

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass
class BuildResult:
    output_dir: str
    apis: list

    @property
    def warnings(self):
        return [w for api in self.apis for w in api.warnings]

    def instance_summary(self):
        return [f"  {api.name}: {describe(api)}" for api in self.apis]


def load_apis(source, name=None, class_name="PythonPredictor", config=None):
    """ApiSpecs from a .py predictor or a .yaml spec (settings from the command line apply to .py only)."""
    if source.endswith(SPEC_SUFFIXES):
        if name or config:
            from .errors import SpecError

            raise SpecError("--name and --config apply to a predictor file; set them in the spec file instead")
        return load_spec_file(source, class_name=class_name)
    return [api_from_predictor_file(source, name=name, class_name=class_name, config=config)]


def apply_instance_overrides(apis, kind=None, instances=None, gpus=None):
    """`build --kind/--instances/--gpus` (already parsed): override every API's instance group."""
    for api in apis:
        apply_instance_settings(api, kind=kind, instances=instances, gpus=gpus, where="--kind/--gpus")
    return apis


def build(source, output_dir="model_repository", name=None, class_name="PythonPredictor", config=None, force=False,
          kind=None, instances=None, gpus=None):
    apis = load_apis(source, name=name, class_name=class_name, config=config)
    apply_instance_overrides(apis, kind=kind, instances=instances, gpus=gpus)
    return BuildResult(build_repository(apis, os.path.abspath(output_dir), force=force), apis)
