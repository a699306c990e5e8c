"""Cortex's `kind: TrafficSplitter` (v0.19+): one endpoint routing each request to one of several
RealtimeAPIs by weight, plus at most one shadow API that gets a copy of every request.

Spec side only: parsed and checked here (Cortex's rules and messages, pkg/types/spec/validations.go
and pkg/operator/resources/validations.go in v0.33), recorded in the built repository's marker file
(adapter/repository.py); the Cortex endpoint routes (cortex_endpoint/traffic_splitter.py).
"""

from dataclasses import dataclass, field

from tritonize.adapter.runtime.repository_model import SplitterSettings, SplitterTarget
from tritonize.adapter.spec_values import check_keys, check_model_name, parse_endpoint_path
from tritonize.errors import SpecError

KIND = "TrafficSplitter"
KEYS = {"name", "kind", "apis", "networking"}
TARGET_KEYS = {"name", "weight", "shadow"}


@dataclass(frozen=True)
class TrafficSplitter(SplitterSettings):
    """A parsed `kind: TrafficSplitter`: what the repository records (SplitterSettings), and build's warnings."""

    warnings: list = field(default_factory=list)

    def to_settings(self):
        """What the repository's marker records (adapter/runtime/repository_model.py; the Cortex endpoint routes it)."""
        return SplitterSettings(name=self.name, apis=self.apis, endpoint=self.endpoint)


def describe_splitter(splitter):
    """One line for `tritonize build`'s summary: 'TrafficSplitter: a 70 %, b 30 %, shadow c'."""
    parts = [f"{t.name} {t.weight} %" for t in splitter.targets]
    if splitter.shadow:
        parts.append(f"shadow {splitter.shadow}")
    return "TrafficSplitter: " + ", ".join(parts)


def parse_traffic_splitter(entry: dict, location: str) -> TrafficSplitter:
    """One `kind: TrafficSplitter` entry of a spec; `location` names it in errors ('cortex.yaml: [2]')."""
    name = entry.get("name")
    where = f"{location} ({name})" if isinstance(name, str) else location
    check_model_name(name, f"{where}.name")
    check_keys(entry, KEYS, where)
    apis = entry.get("apis")
    if not isinstance(apis, list) or not apis:
        raise SpecError(f"{where}.apis: required: a list of RealtimeAPIs with name and weight (and shadow)")
    targets = [_parse_target(api, f"{where}.apis[{i}]") for i, api in enumerate(apis)]
    total = sum(t.weight for t in targets if not t.shadow)
    if total != 100:
        raise SpecError(f"{where}.apis: expected weights of all non-shadow apis to sum to 100 but found {total}")
    seen, repeated = set(), []
    for target in targets:
        if target.name in seen and target.name not in repeated:
            repeated.append(target.name)
        seen.add(target.name)
    if repeated:
        noun = "api" if len(repeated) == 1 else "apis"
        raise SpecError(f"{where}.apis: {noun} not unique: {', '.join(repeated)}")
    if sum(t.shadow for t in targets) > 1:
        raise SpecError(
            f"{where}.apis: multiple shadow apis detected; only one api is allowed to be marked as a shadow"
        )
    warnings: list = []
    endpoint = _parse_networking(entry.get("networking"), f"{where}.networking", warnings, name)
    # check_model_name: name is a str
    return TrafficSplitter(name=str(name), apis=tuple(targets), endpoint=endpoint, warnings=warnings)


def _parse_networking(networking, where, warnings, name):
    """networking.endpoint -> '/path' or None; the other networking keys are Cortex's load balancer's."""
    if networking is None:
        return None
    if not isinstance(networking, dict):
        raise SpecError(f"{where}: expected a mapping")
    for key in sorted(set(networking) - {"endpoint"}):
        warnings.append(f"{name}: ignored: networking.{key} (Cortex's load balancer; not needed here)")
    if networking.get("endpoint") is None:
        return None
    return parse_endpoint_path(networking["endpoint"], f"{where}.endpoint")


def _parse_target(api, where):
    if not isinstance(api, dict):
        raise SpecError(f"{where}: expected a mapping with name, weight and shadow")
    check_keys(api, TARGET_KEYS, where)
    name = api.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where}.name: required: the name of a RealtimeAPI")
    weight = api.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise SpecError(f"{where}.weight: required: an integer from 0 to 100, got {weight!r}")
    shadow = api.get("shadow", False)
    if not isinstance(shadow, bool):
        raise SpecError(f"{where}.shadow: expected true or false, got {shadow!r}")
    return SplitterTarget(name, weight, shadow)


def check_traffic_splitters(splitters, apis, where):
    """The splitters' APIs must be RealtimeAPIs of the same spec (tritonize has no cluster of running APIs)."""
    by_name = {api.name: api for api in apis}
    for splitter in splitters:
        missing = [t.name for t in splitter.apis if t.name not in by_name]
        if len(missing) == 1:
            raise SpecError(
                f"{where}: {splitter.name}: api {missing[0]} was either not found or is not a RealtimeAPI "
                "(a TrafficSplitter routes to APIs of the same spec)"
            )
        if missing:
            raise SpecError(
                f"{where}: {splitter.name}: apis {', '.join(missing)} were either not found or are not RealtimeAPIs "
                "(a TrafficSplitter routes to APIs of the same spec)"
            )
        for target in splitter.apis:
            if by_name[target.name].tensors:
                raise SpecError(
                    f"{where}: {splitter.name}: api {target.name} takes typed tensors (predictor.tensors); "
                    "a TrafficSplitter routes request bodies, as POST /<api> does"
                )
