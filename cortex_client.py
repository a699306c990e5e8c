"""Cortex's Python client, for projects that deployed with it instead of a cortex.yaml.

    import tritonize.cortex_client as cortex

    cx = cortex.client(output_dir="model_repository")  # Cortex's client(env) named a cluster
    cx.create_api(api_spec, predictor=PythonPredictor, requirements=["scikit-learn"])
    cx.create_api(api_spec, project_dir=".")           # v0.25-v0.33
    cx.deploy(api_spec, project_dir=".")               # v0.23-v0.24's name

Each call builds the model repository holding every API this client created so far (Cortex's
cluster kept them running; a TrafficSplitter may name APIs created by earlier calls). The dicts
go through the same loader as a cortex.yaml after `yaml.safe_load` (adapter/spec.py's
load_spec_entries), so the repository is the one `tritonize build cortex.yaml` writes.
"""

from __future__ import annotations

import ast
import copy
import inspect
import os
import shutil
import tempfile
import weakref
from typing import Any

from tritonize.adapter.build import BuildResult
from tritonize.adapter.repository import build_repository
from tritonize.adapter.spec import load_spec_entries
from tritonize.adapter.traffic_splitter import KIND as TRAFFIC_SPLITTER
from tritonize.errors import SpecError

PREDICTOR_FILE = "predictor.py"
WHERE = "cortex_client"
# Modules a deploy script imports to deploy, never present where the predictor runs.
_DEPLOY_MODULES = {"cortex", "tritonize"}


def client(env: str | None = None, output_dir: str = "model_repository") -> Client:
    """Cortex's `cortex.client(env)`: here the environment is the model repository the APIs are built into."""
    return Client(output_dir)


def build_from_spec(
    api_spec: dict | list,
    project_dir: str | None = None,
    predictor: type | None = None,
    requirements: list | tuple = (),
    conda_packages: list | tuple = (),
    output_dir: str = "model_repository",
    force: bool = True,
) -> BuildResult:
    """One call, one repository: the API dict (or a list of them, as a cortex.yaml holds) -> a model repository."""
    return Client(output_dir).create_api(
        api_spec,
        predictor=predictor,
        requirements=requirements,
        conda_packages=conda_packages,
        project_dir=project_dir,
        force=force,
    )


class Client:
    def __init__(self, output_dir: str = "model_repository") -> None:
        self.output_dir = os.path.abspath(output_dir)
        # name -> (spec entry, project dir, class name), in creation order.
        self._apis: dict[str, tuple[dict, str, str]] = {}
        self._temporary: list[str] = []  # projects written for predictor classes, removed with the client
        self._cleanup = weakref.finalize(self, _remove_all, self._temporary)

    def create_api(
        self,
        api_spec: dict | list,
        predictor: type | None = None,
        task: Any = None,
        requirements: list | tuple = (),
        conda_packages: list | tuple = (),
        project_dir: str | None = None,
        force: bool = True,
        wait: bool = False,
    ) -> BuildResult:
        """Cortex v0.25-v0.33's create_api: add (or replace) the API(s) and build the repository."""
        entries = copy.deepcopy(api_spec if isinstance(api_spec, list) else [api_spec])
        if not entries or not all(isinstance(e, dict) for e in entries):
            raise SpecError(f"{WHERE}: api_spec: expected a dict defining one Cortex API (or a list of them)")
        if task is not None:
            raise SpecError(f"{WHERE}: task: TaskAPIs are not supported; tritonize serves RealtimeAPIs")
        if project_dir is not None and predictor is not None:
            raise SpecError(
                f"{WHERE}: `predictor` and `project_dir` parameters cannot be specified at the same time, "
                "please choose one"
            )
        class_name = "PythonPredictor"
        if predictor is not None:
            if len(entries) != 1 or entries[0].get("kind", "RealtimeAPI") not in ("RealtimeAPI", "BatchAPI"):
                raise SpecError(f"{WHERE}: `predictor` is given with one RealtimeAPI or BatchAPI spec")
            project_dir, class_name = self._write_predictor_project(entries[0], predictor, requirements, conda_packages)
        elif project_dir is None:
            needs = [e.get("name") for e in entries if e.get("kind", "RealtimeAPI") != TRAFFIC_SPLITTER]
            if needs:
                raise SpecError(
                    f"{WHERE}: {needs[0]}: `predictor` parameter must be specified for RealtimeAPI and BatchAPI "
                    "(or project_dir, the folder its predictor.path is relative to)"
                )
            project_dir = os.getcwd()
        elif requirements or conda_packages:
            raise SpecError(f"{WHERE}: requirements and conda_packages go with `predictor`; project_dir has its own")
        if not os.path.isdir(project_dir):
            raise SpecError(f"{WHERE}: project_dir {project_dir!r} is not a directory")
        project_dir = os.path.realpath(project_dir)
        known = dict(self._apis)
        for entry in entries:
            known[str(entry.get("name"))] = (entry, project_dir, class_name)  # the loader checks the name
        result = self._build(known, force)
        self._apis = known
        return result

    def deploy(
        self,
        api_spec: dict | list,
        predictor: type | None = None,
        pip_dependencies: list | tuple = (),
        conda_dependencies: list | tuple = (),
        project_dir: str | None = None,
        force: bool = False,
        wait: bool = False,
    ) -> BuildResult:
        """Cortex v0.23-v0.24's name for create_api."""
        if isinstance(api_spec, str):
            raise SpecError(f"{WHERE}: deploy({api_spec!r}): for a cortex.yaml, run `tritonize build {api_spec}`")
        return self.create_api(
            api_spec,
            predictor=predictor,
            requirements=pip_dependencies,
            conda_packages=conda_dependencies,
            project_dir=project_dir,
            force=True,
        )

    def delete_api(self, api_name: str, keep_cache: bool = False) -> BuildResult | None:
        """Remove an API this client created and rebuild the repository without it."""
        if api_name not in self._apis:
            raise SpecError(f"{WHERE}: {api_name} is not deployed")
        known = {name: value for name, value in self._apis.items() if name != api_name}
        result = self._build(known, True) if known else None
        if not known and os.path.isdir(self.output_dir):
            shutil.rmtree(self.output_dir)
        self._apis = known
        return result

    def list_apis(self) -> list[str]:
        return list(self._apis)

    def _build(self, known, force):
        entries = [
            (entry, project_dir, f"{WHERE}: [{i}]", class_name)
            for i, (entry, project_dir, class_name) in enumerate(known.values())
        ]
        apis = load_spec_entries(entries, WHERE)
        return BuildResult(build_repository(apis, self.output_dir, force=force), apis)

    def _write_predictor_project(self, entry, predictor, requirements, conda_packages):
        if not inspect.isclass(predictor):
            raise SpecError(f"{WHERE}: `predictor` parameter must be a class definition")
        project = tempfile.mkdtemp(prefix=f"tritonize-{entry.get('name', 'api')}-")
        self._temporary.append(project)
        with open(os.path.join(project, PREDICTOR_FILE), "w", encoding="utf-8") as f:
            f.write(predictor_source(predictor))
        for name, lines in (("requirements.txt", requirements), ("conda-packages.txt", conda_packages)):
            if lines:
                with open(os.path.join(project, name), "w", encoding="utf-8") as f:
                    f.write("\n".join(lines) + "\n")
        predictor_section = entry.setdefault("predictor", {})
        if not isinstance(predictor_section, dict):
            raise SpecError(f"{WHERE}: {entry.get('name')}.predictor: expected a mapping")
        predictor_section["path"] = PREDICTOR_FILE
        predictor_section.setdefault("type", "python")
        return project, predictor.__name__


def predictor_source(predictor: type) -> str:
    """The source of the module that defines `predictor`, as a file the predictor can be imported from.

    A class from an imported module: that module's file, unchanged. A class defined in the deploy
    script itself (__main__): the script's imports, functions, classes and constant assignments, without
    the statements that deploy (calls, the cortex client), which must not run again where the API is served.
    """
    try:
        path = inspect.getsourcefile(predictor)
    except TypeError:
        path = None
    if not path or not os.path.isfile(path):
        raise SpecError(
            f"{WHERE}: the source of {predictor.__name__} cannot be found (defined in a notebook or a REPL?): "
            "move the class into a .py file and pass project_dir"
        )
    with open(path, encoding="utf-8") as f:
        source = f.read()
    if predictor.__module__ != "__main__":
        return source
    tree = ast.parse(source, filename=path)
    kept = [node for node in tree.body if _kept_from_script(node)]
    lines = source.splitlines(keepends=True)
    parts = []
    for node in kept:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        parts.append("".join(lines[start - 1 : node.end_lineno]))
    return "\n".join(parts)


def _kept_from_script(node):
    if isinstance(node, ast.Import):
        return not any(alias.name.split(".")[0] in _DEPLOY_MODULES for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] not in _DEPLOY_MODULES
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return node.value is not None and not any(isinstance(n, ast.Call) for n in ast.walk(node.value))
    return False


def _remove_all(paths):
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


__all__ = ["Client", "build_from_spec", "client", "predictor_source"]
