"""cortex.yaml's schema: every error with its location, older Cortex spellings, the published JSON Schema."""

import glob
import json
import os
import subprocess
import sys
import time

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from tritonize.adapter.build import build
from tritonize.adapter.spec import load_spec_document, load_spec_file, parse_traffic_splitter
from tritonize.adapter.spec_schema import SCHEMA_FILE, cortex_json_schema, cortex_json_schema_text, iter_fields
from tritonize.adapter.spec_yaml import MAX_EXPANDED_NODES
from tritonize.cli.main import cli
from tritonize.errors import SpecError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREDICTOR = "class PythonPredictor:\n    def predict(self, payload):\n        return payload\n"


def write(tmp_path, text):
    (tmp_path / "predictor.py").write_text(PREDICTOR)
    (tmp_path / "cortex.yaml").write_text(text)
    return str(tmp_path / "cortex.yaml")


def error_of(tmp_path, text):
    with pytest.raises(SpecError) as err:
        load_spec_file(write(tmp_path, text))
    prefix = str(tmp_path / "cortex.yaml") + ": "
    return [line.removeprefix(prefix) for line in str(err.value).splitlines()]


# ---- errors with their location ---------------------------------------------------------------


def test_a_wrong_type_is_an_error_with_its_location_not_a_traceback(tmp_path):
    assert error_of(tmp_path, "- name: iris\n  predictor: {path: predictor.py, python_path: 3}\n") == [
        "[0] (iris).predictor.python_path: expected a folder (or a list of folders) relative to the project, got 3"
    ]
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "cortex.yaml"), "-o", str(tmp_path / "repo")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "[0] (iris).predictor.python_path: expected" in result.output
    assert not os.path.exists(tmp_path / "repo")


def test_every_error_of_every_api_is_reported_at_once(tmp_path):
    lines = error_of(
        tmp_path,
        """
- name: a
  predictor: {path: predictor.py, config: [1], processes_per_replica: 0}
  autoscaling: {window: soon, min_replicas: x}
- name: b
  predictor: {path: predictor.py, env: {A: {nested: 1}}}
  networking: {endpoint: 'a b'}
- 7
""",
    )
    assert lines == [
        "[0] (a).predictor.config: expected a mapping, got [1]",
        "[0] (a).predictor.processes_per_replica: expected a whole number of instances from 1 to 64, got 0",
        "[0] (a).autoscaling.min_replicas: expected a whole number, got 'x'",
        "[0] (a).autoscaling.window: expected a duration like 50ms or 0.1s (Go's: 1m30s, 1.5h, 300ms), got 'soon'",
        "[1] (b).predictor.env.A: expected a string value, got {'nested': 1}",
        "[1] (b).networking.endpoint: 'a b' is not a URL path (letters, digits, '-', '_', '.', '/' between segments)",
        "[2]: expected a mapping with name, kind and predictor",
    ]


@pytest.mark.parametrize(
    "text, line",
    [
        ("- predictor: {path: predictor.py}\n", "[0].name: required"),
        ("- name: a\n  predictor: {}\n", "[0] (a).predictor.path: required"),
        (
            "- name: a\n  predictor: {path: predictor.py, tensors: {inputs: [{dtype: f32}]}}\n",
            "inputs[0].name: required",
        ),
        (
            "- name: a\n  predictor: {path: predictor.py, multi_model_reloading: {paths: [{name: 'a b', path: x}]}}\n",
            "[0] (a).predictor.multi_model_reloading.paths[0].name: required; letters, digits, '-' and '_' only",
        ),
        (
            "- name: a\n  predictor: {path: predictor.py}\n  tritonize: {stream: 'yes'}\n",
            "tritonize.stream: expected true",
        ),
        (
            "- name: a\n  predictor: {path: predictor.py}\n  compute: {cpu: lots}\n",
            "compute.cpu: expected a Kubernetes",
        ),
    ],
)
def test_schema_errors_name_the_key(tmp_path, text, line):
    assert any(line in got for got in error_of(tmp_path, text)), error_of(tmp_path, text)


def test_a_list_of_dicts_loads_as_the_same_yaml_would(tmp_path):
    """load_spec_document: the entry point for specs given as Python data (Cortex's Python client)."""
    text = "- name: a\n  endpoint: v1/a\n  predictor: {path: predictor.py, config: {k: 1}}\n  compute: {gpu: 1}\n"
    (from_yaml,) = load_spec_file(write(tmp_path, text))
    (from_data,) = load_spec_document(yaml.safe_load(text), str(tmp_path))
    assert from_data == from_yaml
    with pytest.raises(SpecError, match=r"^api_spec: \[0\] \(a\)\.compute\.gpus: unknown key"):
        load_spec_document({"name": "a", "predictor": {"path": "predictor.py"}, "compute": {"gpus": 1}}, str(tmp_path))


# ---- unknown keys: "did you mean" ---------------------------------------------------------------


def test_a_likely_typo_of_a_known_key_is_an_error_with_a_suggestion(tmp_path):
    (line,) = error_of(tmp_path, "- name: a\n  predictor: {path: predictor.py}\n  compute: {gpus: 1}\n")
    assert line == "[0] (a).compute.gpus: unknown key (known: cpu, gpu, mem); did you mean 'gpu'?"
    (line,) = error_of(tmp_path, "- name: a\n  predictor: {path: predictor.py, pythonpath: lib}\n")
    assert line.endswith("did you mean 'python_path'?")


def test_a_key_in_the_wrong_section_says_where_it_belongs(tmp_path):
    (line,) = error_of(tmp_path, "- name: a\n  predictor: {path: predictor.py}\n  processes_per_replica: 2\n")
    assert line.startswith("[0] (a).processes_per_replica: unknown key (known: ")
    assert line.endswith("'processes_per_replica' belongs under predictor")


def test_a_key_no_cortex_version_had_is_refused(tmp_path):
    (line,) = error_of(tmp_path, "- name: a\n  predictor: {path: predictor.py}\n  replicas: 3\n")
    assert line.startswith("[0] (a).replicas: unknown key (known: autoscaling, compute, kind, name, networking")


# ---- Cortex's older spellings and ignored fields -------------------------------------------------


def test_older_spellings_are_read_as_todays(tmp_path):
    (tmp_path / "model" / "1").mkdir(parents=True)
    (tmp_path / "model" / "1" / "weights").write_text("1")
    (api,) = load_spec_file(
        write(
            tmp_path,
            """
- name: old
  kind: api
  endpoint: /v1/old
  predictor: {type: python, path: predictor.py, model_path: model}
  compute: {min_replicas: 2, max_replicas: 5, max_surge: 1, max_unavailable: 0}
  autoscaling: {workers_per_replica: 3, threads_per_worker: 4}
""",
        )
    )
    assert api.endpoint == "/v1/old"
    assert (api.autoscaling.min_replicas, api.autoscaling.max_replicas) == (2, 5)
    assert (api.update_strategy.max_surge, api.update_strategy.max_unavailable) == (1, 0)
    assert (api.instances, api.stream_threads) == (3, 4)
    assert api.models["mode"] == "path" and api.models["models"][0]["project_path"] == "model"
    assert "old: endpoint read as networking.endpoint (Cortex v0.12-v0.17's spelling)" in api.warnings
    assert (
        "old: autoscaling.workers_per_replica read as predictor.processes_per_replica (Cortex v0.14-v0.17's spelling)"
        in api.warnings
    )


def test_models_paths_model_path_is_read_as_path(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "weights").write_text("1")
    text = "- name: a\n  predictor:\n    path: predictor.py\n    models: {paths: [{name: x, model_path: m}]}\n"
    (api,) = load_spec_file(write(tmp_path, text))
    assert api.models["models"][0]["name"] == "x" and api.models["models"][0]["project_path"] == "m"
    assert (
        "a: predictor.models.paths.model_path read as predictor.models.paths.path (Cortex v0.22-v0.24's spelling)"
        in (api.warnings)
    )


def test_both_spellings_with_different_values_are_refused(tmp_path):
    (line,) = error_of(
        tmp_path, "- name: a\n  endpoint: x\n  networking: {endpoint: y}\n  predictor: {path: predictor.py}\n"
    )
    assert line == "[0] (a).endpoint: the older spelling of networking.endpoint, which is also given ('y'); keep one"


def test_ignored_fields_are_warned_once_with_why(tmp_path):
    (api,) = load_spec_file(
        write(
            tmp_path,
            """
- name: a
  predictor: {path: predictor.py, image: my/image, log_level: debug}
  tracker: {model_type: classification}
  monitoring: {key: label, model_type: classification}
  networking: {api_gateway: public}
""",
        )
    )
    assert api.warnings == [
        "a: ignored: predictor.image (the image is built by `tritonize docker build`)",
        "a: ignored: predictor.log_level (`tritonize serve --verbose` and the predictor's own logging apply)",
        "a: ignored: networking.api_gateway (AWS API Gateway; put your own gateway or ingress in front)",
        "a: ignored: tracker (Cortex's prediction tracking (CloudWatch); see `tritonize status`)",
        "a: ignored: monitoring (Cortex's prediction monitoring (CloudWatch); see `tritonize status`)",
    ]


# ---- refused kinds and predictor types -----------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [
        (
            "- name: j\n  kind: BatchAPI\n  predictor: {path: predictor.py, processes_per_replica: 2}\n",
            "[0] (j).predictor.processes_per_replica: must be 1: a BatchAPI runs one process with one thread",
        ),
        ("- name: t\n  kind: TaskAPI\n  definition: {path: task.py}\n", "[0] (t).kind: TaskAPI is not supported: a "),
        ("- name: q\n  kind: AsyncAPI\n  predictor: {path: p.py}\n", "[0] (q).kind: AsyncAPI is not supported: deploy"),
        ("- kind: deployment\n  name: d\n", "[0] (d).kind: deployment is the deployment entry of Cortex v0.11"),
        ("- name: x\n  kind: RealtimeApi\n  predictor: {path: p.py}\n", "did you mean 'RealtimeAPI'?"),
        (
            "- name: tf\n  predictor: {type: tensorflow, path: p.py, models: {path: s3://b/m}}\n",
            "[0] (tf).predictor.type: 'tensorflow' predictors are not supported (only 'python'): write a Python",
        ),
        (
            "- name: o\n  predictor: {type: onnx, path: p.py}\n",
            "[0] (o).predictor.type: 'onnx' predictors are not supported (only 'python'): use the python predictor",
        ),
    ],
)
def test_refusals_name_the_entry_and_say_what_to_do(tmp_path, text, words):
    lines = error_of(tmp_path, text)
    assert len(lines) == 1 and words in lines[0], lines


@pytest.mark.skipif(
    parse_traffic_splitter is not None, reason="TrafficSplitter is served (adapter/traffic_splitter.py)"
)
def test_traffic_splitter_is_refused_cleanly_until_its_parser_lands(tmp_path):
    text = "- name: s\n  kind: TrafficSplitter\n  apis: [{name: a, weight: 100}]\n"
    assert error_of(tmp_path, text) == [
        "[0] (s).kind: TrafficSplitter is not supported by this build of tritonize: call the APIs it splits between "
        "directly"
    ]


# ---- YAML bounds -------------------------------------------------------------------------------

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    text = f"- name: bomb\n  predictor:\n    path: predictor.py\n    config:\n{_indent(ALIAS_BOMB, 6)}"
    assert len(text.encode()) < 700  # ~580 bytes standing for 9^9 (387 million) strings
    started = time.monotonic()
    (line,) = error_of(tmp_path, text)
    assert time.monotonic() - started < 10  # generous: the machine is shared; the walk is linear in the file
    assert line == (
        f"the spec expands to more than {MAX_EXPANDED_NODES:,} values (YAML aliases repeat what they name); "
        "write the values out or make them smaller"
    )
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "cortex.yaml"), "-o", str(tmp_path / "repo")])
    assert result.exit_code == 2 and "expands to more than" in result.output and not os.path.exists(tmp_path / "repo")


def test_a_recursive_alias_is_refused(tmp_path):
    (line,) = error_of(tmp_path, "- name: a\n  predictor:\n    path: predictor.py\n    config: &c {self: *c}\n")
    assert "a YAML alias refers to itself" in line


def test_small_aliases_and_large_plain_configs_still_load(tmp_path):
    labels = ", ".join(f"l{i}" for i in range(50_000))
    text = (
        "- name: a\n  predictor: &p {path: predictor.py, config: {labels: [" + labels + "]}}\n"
        "- name: b\n  predictor: *p\n"
    )
    a, b = load_spec_file(write(tmp_path, text))
    assert len(a.config["labels"]) == 50_000 and b.config == a.config


def _indent(text, spaces):
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


# ---- the published JSON Schema -------------------------------------------------------------------


def test_the_committed_json_schema_is_the_generated_one():
    with open(SCHEMA_FILE, encoding="utf-8") as f:
        committed = f.read()
    assert committed == cortex_json_schema_text(), "regenerate it: tritonize schema -o schema/cortex.schema.json"


def test_tritonize_schema_prints_it():
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0 and json.loads(result.output) == cortex_json_schema()


def _repository_specs():
    found = sorted(glob.glob(os.path.join(ROOT, "**", "cortex.yaml"), recursive=True))
    return [path for path in found if f"{os.sep}.venv{os.sep}" not in path and "node_modules" not in path]


def test_the_repository_has_specs_to_check():
    relative = {os.path.relpath(path, ROOT) for path in _repository_specs()}
    assert {"examples/iris/cortex.yaml", "tests/data/cortex_versions/v0.33/cortex.yaml"} <= relative


@pytest.mark.parametrize("path", _repository_specs(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_cortex_yaml_in_the_repository_agrees_with_the_json_schema(path):
    """Specs tritonize builds are valid; specs it refuses (kinds, predictor types) are invalid."""
    with open(path, encoding="utf-8") as f:
        document = yaml.safe_load(f)
    errors = list(jsonschema.Draft202012Validator(cortex_json_schema()).iter_errors(document))
    try:
        load_spec_file(path)
        builds = True
    except SpecError as exc:
        builds = False
        reason = str(exc)
    if builds or "TrafficSplitter is not supported by this build" in reason:
        assert errors == [], [e.message for e in errors]
    elif "is not supported" in reason or "kind: deployment" in reason:
        assert errors, f"{path}: refused by build ({reason}) but valid for the JSON Schema"


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "a", "predictor": {"path": "p.py", "python_path": 3}},
        {"name": "a", "predictor": {"path": "p.py"}, "compute": {"gpus": 1}},
        {"name": "a", "predictor": {"path": "p.py"}, "autoscaling": {"window": "1 m"}},
        {"name": "a", "predictor": {"path": "p.py", "server_side_batching": {"batch_interval": "1s"}}},
        {"name": "a b", "predictor": {"path": "p.py"}},
        {"name": "a", "predictor": {"type": "onnx", "path": "p.py"}},
        {"name": "a", "kind": "BatchAPI", "predictor": {"path": "p.py", "threads_per_process": 4}},
        {"name": "a", "kind": "BatchAPI", "predictor": {"path": "p.py"}, "autoscaling": {"min_replicas": 1}},
        {"name": "a", "kind": "BatchAPI", "predictor": {"path": "p.py", "multi_model_reloading": {"path": "s3://b"}}},
        {"name": "a", "kind": "BatchAPI", "predictor": {"path": "p.py"}, "tritonize": {"instances": 2}},
        {
            "name": "a",
            "predictor": {"path": "p.py", "multi_model_reloading": {"path": "s3://b/m", "signature_key": "x"}},
        },
        {"name": "a", "predictor": {"path": "p.py"}, "compute": {"gpu": 1.5}},
        {"name": "a", "predictor": {"path": "p.py"}, "update_strategy": {"max_surge": "lots"}},
    ],
)
def test_the_json_schema_refuses_what_build_refuses(tmp_path, entry):
    (tmp_path / "p.py").write_text(PREDICTOR)
    with pytest.raises(SpecError):
        load_spec_document([entry], str(tmp_path))
    assert list(jsonschema.Draft202012Validator(cortex_json_schema()).iter_errors([entry]))


def test_the_json_schema_takes_go_durations_and_older_fields():
    entry = {
        "name": "a",
        "endpoint": "/x",
        "tracker": {"model_type": "classification"},
        "predictor": {"path": "p.py", "server_side_batching": {"max_batch_size": 2, "batch_interval": "1m30s"}},
        "autoscaling": {"workers_per_replica": 2, "window": "1.5h", "upscale_stabilization_period": "300ms"},
    }
    assert not list(jsonschema.Draft202012Validator(cortex_json_schema()).iter_errors([entry]))
    assert list(jsonschema.Draft202012Validator(cortex_json_schema()).iter_errors([]))  # build: no APIs


def test_every_field_has_a_status_and_the_cortex_versions_that_had_it():
    for path, status, extra in iter_fields():
        assert status in ("used", "mapped", "ignored", "refused"), path
        assert extra.get("x-cortex"), path
        if status == "mapped":
            assert extra.get("x-tritonize-to"), path
        if status in ("ignored", "refused"):
            assert extra.get("x-tritonize-why"), path


def test_build_with_a_schema_error_writes_nothing(tmp_path):
    write(tmp_path, "- name: a\n  predictor: {path: predictor.py}\n  compute: {gpus: 1}\n")
    with pytest.raises(SpecError):
        build(str(tmp_path / "cortex.yaml"), str(tmp_path / "repo"))
    assert not os.path.exists(tmp_path / "repo")


def test_the_runtime_never_imports_pydantic(tmp_path):
    """The schema is build-side only: what is copied into repositories stays stdlib + numpy."""
    code = (
        "import importlib, pkgutil, sys, tritonize.adapter.runtime as r\n"
        "for m in pkgutil.iter_modules(r.__path__): importlib.import_module(r.__name__ + '.' + m.name)\n"
        "print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ---- never a traceback ---------------------------------------------------------------------------

ODD_VALUES = [None, 0, -1, 2**70, 1.5, float("nan"), float("inf"), True, "", "x", "../x", "/abs", "a\0b", [], [1],
              {}, {"a": 1}, {1: 2}, [{}], "s3://", "0,1", "all", "25%", "1m30s"]  # fmt: skip


def _paths(value, prefix=()):
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, prefix + (key,))


def test_mutated_specs_give_spec_errors_never_a_crash():
    """Every value of the repository's version specs replaced by odd ones (fixed seed): a SpecError or a build."""
    import copy
    import random

    rng = random.Random(20261204)
    projects = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "cortex_versions", "*")))
    originals = [(p, yaml.safe_load(open(os.path.join(p, "cortex.yaml"), encoding="utf-8"))) for p in projects]
    outcomes = {"error": 0, "built": 0}
    for _ in range(1500):
        project, document = rng.choice(originals)
        document = copy.deepcopy(document)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(list(_paths(document)))
            if not path:
                document = copy.deepcopy(rng.choice(ODD_VALUES))
                continue
            holder = document
            for key in path[:-1]:
                holder = holder[key]
            if isinstance(path[-1], str) and rng.random() < 0.2:
                holder[rng.choice(["gpus", 1, None, path[-1] + "s", "kind"])] = holder.pop(path[-1])
            else:
                holder[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
        try:
            load_spec_document(document, project)
            outcomes["built"] += 1
        except SpecError:
            outcomes["error"] += 1
    assert outcomes["error"] > 1000 and outcomes["built"] > 10, outcomes
