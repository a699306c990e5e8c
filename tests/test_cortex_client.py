# ruff: noqa: E501  (specs and messages are compared verbatim)
"""Cortex's Python client specs (tritonize.cortex_client): the same dicts build the same repository as the YAML."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

import tritonize.cortex_client as cortex
from tritonize.adapter.build import build
from tritonize.adapter.runtime.repository_model import read_marker
from tritonize.errors import SpecError

PREDICTOR = textwrap.dedent(
    """
    import os

    LABELS = ["a", "b"]


    class PythonPredictor:
        def __init__(self, config):
            self.config = config

        def predict(self, payload):
            return {"labels": LABELS, "config": self.config, "payload": payload}
    """
)
SPEC = textwrap.dedent(
    """
    - name: first
      kind: RealtimeAPI
      predictor:
        type: python
        path: predictor.py
        config: {k: 1}
        env: {A: spec}
      compute: {cpu: 1}
    - name: second
      kind: RealtimeAPI
      predictor:
        type: python
        path: src/second.py
        python_path: src
        server_side_batching: {max_batch_size: 4, batch_interval: 0.01}
      networking: {endpoint: my/second}
    - name: split
      kind: TrafficSplitter
      apis:
        - {name: first, weight: 70}
        - {name: second, weight: 30}
    """
)


def tree(root):
    """{relative path: bytes} of every file under root."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, root)] = open(path, "rb").read()
    return files


@pytest.fixture
def project(tmp_path):
    p = tmp_path / "proj"
    (p / "src").mkdir(parents=True)
    (p / "predictor.py").write_text(PREDICTOR)
    (p / "src" / "second.py").write_text(PREDICTOR.replace('["a", "b"]', '["c"]'))
    (p / "requirements.txt").write_text("six\n")
    (p / ".env").write_text("A=dotenv\nB=2\n")
    (p / ".cortexignore").write_text("*.log\n")
    (p / "debug.log").write_text("x")
    (p / "cortex.yaml").write_text(SPEC)
    return p


def test_the_dicts_build_the_same_repository_as_the_yaml(project, tmp_path):
    from_yaml = build(str(project / "cortex.yaml"), str(tmp_path / "yaml_repo"))
    api_specs = yaml.safe_load(SPEC)  # what a deploy script passes to create_api, one dict per API
    cx = cortex.client(output_dir=str(tmp_path / "dict_repo"))
    for spec in api_specs:
        from_dicts = cx.create_api(spec, project_dir=str(project))
    assert [a.name for a in from_dicts.apis] == [a.name for a in from_yaml.apis] == ["first", "second"]
    yaml_files, dict_files = tree(tmp_path / "yaml_repo"), tree(tmp_path / "dict_repo")
    assert sorted(yaml_files) == sorted(dict_files)
    assert yaml_files == dict_files  # byte for byte, the .env-derived environment and the splitter included
    marker = json.loads(dict_files[".tritonize.json"])
    assert marker["traffic_splitters"][0]["apis"] == [
        {"name": "first", "weight": 70, "shadow": False},
        {"name": "second", "weight": 30, "shadow": False},
    ]
    # One call with the whole list, as cx.deploy did, is the same again.
    cortex.build_from_spec(api_specs, project_dir=str(project), output_dir=str(tmp_path / "list_repo"))
    assert tree(tmp_path / "list_repo") == yaml_files


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does (inspect finds a class's file through it)
    spec.loader.exec_module(module)
    return module


def test_a_predictor_class_from_a_module_is_written_with_its_requirements(tmp_path):
    (tmp_path / "mine.py").write_text(PREDICTOR.replace("PythonPredictor", "Mine"))
    cls = _import(tmp_path / "mine.py", "mine_for_test").Mine
    result = cortex.build_from_spec(
        {"name": "api", "kind": "RealtimeAPI", "predictor": {"config": {"k": 2}}},
        predictor=cls,
        requirements=["six==1.16.0", "numpy<2"],
        output_dir=str(tmp_path / "repo"),
    )
    version = tmp_path / "repo" / "api" / "1"
    assert (version / "project" / "predictor.py").read_text() == PREDICTOR.replace("PythonPredictor", "Mine")
    assert (version / "project" / "requirements.txt").read_text() == "six==1.16.0\nnumpy<2\n"
    settings = json.loads((version / "tritonize_api.json").read_text())
    assert settings["predictor"]["class_name"] == "Mine" and settings["predictor"]["config"] == {"k": 2}
    assert result.apis[0].dependencies["pip"] == "requirements.txt"


DEPLOY_SCRIPT = textwrap.dedent(
    """
    import sys

    import tritonize.cortex_client as cortex

    LABELS = ["x", "y"]


    def helper(n):
        return LABELS[n]


    class PythonPredictor:
        def __init__(self, config):
            self.n = config["n"]

        def predict(self, payload):
            return helper(self.n) + payload


    api_spec = {"name": "scripted", "kind": "RealtimeAPI", "predictor": {"config": {"n": 1}}}
    cx = cortex.client("aws", output_dir=sys.argv[1])
    cx.create_api(api_spec, predictor=PythonPredictor, requirements=["six"])
    print("deployed")
    """
)


def test_a_deploy_script_with_its_class_builds_a_predictor_that_does_not_deploy_again(tmp_path):
    (tmp_path / "deploy.py").write_text(DEPLOY_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(tmp_path / "deploy.py"), str(tmp_path / "repo")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    written = tmp_path / "repo" / "scripted" / "1" / "project" / "predictor.py"
    source = written.read_text()
    assert "create_api" not in source and "cortex" not in source
    module = _import(written, "scripted_predictor")  # importable where the API runs, and answers as in the script
    assert module.PythonPredictor({"n": 1}).predict("!") == "y!"


def test_a_traffic_splitter_may_name_apis_of_earlier_calls(project, tmp_path):
    cx = cortex.client(output_dir=str(tmp_path / "repo"))
    cx.create_api({"name": "first", "predictor": {"path": "predictor.py"}}, project_dir=str(project))
    with pytest.raises(SpecError, match="api second was either not found or is not a RealtimeAPI"):
        cx.create_api(
            {
                "name": "s",
                "kind": "TrafficSplitter",
                "apis": [{"name": "first", "weight": 50}, {"name": "second", "weight": 50}],
            }
        )
    cx.create_api({"name": "second", "predictor": {"path": "src/second.py"}}, project_dir=str(project))
    cx.create_api(
        {
            "name": "s",
            "kind": "TrafficSplitter",
            "apis": [{"name": "first", "weight": 50}, {"name": "second", "weight": 50}],
        }
    )
    marker = read_marker(str(tmp_path / "repo"))
    assert marker.apis == ["first", "second"] and [s.name for s in marker.traffic_splitters] == ["s"]
    cx.delete_api("s")
    assert read_marker(str(tmp_path / "repo")).traffic_splitters == ()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"predictor": object, "project_dir": "."}, "cannot be specified at the same time"),
        ({"task": object}, "TaskAPIs are not supported"),
        ({}, "`predictor` parameter must be specified for RealtimeAPI"),
        ({"predictor": 3}, "must be a class definition"),
        ({"project_dir": "/nonexistent/x"}, "is not a directory"),
    ],
)
def test_misuse_is_a_clear_error(tmp_path, kwargs, message):
    with pytest.raises(SpecError, match=message):
        cortex.client(output_dir=str(tmp_path / "repo")).create_api({"name": "api"}, **kwargs)
    assert not (tmp_path / "repo").exists()


def test_build_from_spec_is_on_the_package(project, tmp_path):
    import tritonize

    result = tritonize.build_from_spec(
        {"name": "first", "predictor": {"path": "predictor.py"}},
        project_dir=str(project),
        output_dir=str(tmp_path / "r"),
    )
    assert [a.name for a in result.apis] == ["first"] and (tmp_path / "r" / "first" / "config.pbtxt").is_file()


BATCH_CLASS = """
class BatchPredictor:
    def __init__(self, config, job_spec):
        self.config = config

    def predict(self, payload, batch_id):
        pass

    def on_job_complete(self):
        pass
"""


def test_create_api_with_a_batch_predictor_class_builds_a_batch_api(tmp_path):
    """Cortex v0.25-v0.33's create_api took a predictor class for a BatchAPI as for a RealtimeAPI."""
    (tmp_path / "batchmod.py").write_text(BATCH_CLASS)
    cls = _import(tmp_path / "batchmod.py", "batchmod_for_test").BatchPredictor
    cortex.build_from_spec(
        {"name": "offline", "kind": "BatchAPI", "predictor": {"type": "python", "config": {"k": 1}}},
        predictor=cls,
        output_dir=str(tmp_path / "repo"),
    )
    settings = json.loads((tmp_path / "repo" / "offline" / "1" / "tritonize_api.json").read_text())
    assert settings["kind"] == "BatchAPI" and settings["predictor"]["class_name"] == "BatchPredictor"
    assert (tmp_path / "repo" / "offline" / "tritonize_batch_config.json").is_file()
