"""predictor.multi_model_reloading / predictor.models: Cortex v0.33's rules, each a SpecError naming the key."""

import os

import pytest
import yaml

from tritonize.adapter.spec import load_spec_file
from tritonize.errors import SpecError


@pytest.fixture
def project(tmp_path):
    for rel in (
        "models/versioned/1/m.bin",
        "models/versioned/2/m.bin",
        "models/plain/m.bin",
        "models/dir/a/m.bin",
        "models/dir/b/3/m.bin",
        "models/mixed/1/m.bin",
        "models/mixed/notes.txt",
    ):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (tmp_path / "models" / "empty").mkdir()
    (tmp_path / "predictor.py").write_text("class PythonPredictor:\n    pass\n")
    return tmp_path


def load(project, models, key="multi_model_reloading", **extra):
    api = {"name": "api", "kind": "RealtimeAPI", "predictor": {"type": "python", "path": "predictor.py", key: models}}
    for dotted, value in extra.items():
        section, _, name = dotted.partition("__")
        api.setdefault(section, {})[name] = value
    (project / "cortex.yaml").write_text(yaml.safe_dump([api]))
    return load_spec_file(str(project / "cortex.yaml"))[0]


def test_path_paths_and_dir_become_runtime_settings(project):
    api = load(project, {"path": "models/versioned"})
    assert api.models["mode"] == "path" and api.models["poll_interval"] == 10.0
    assert api.models["models"] == [
        {"name": "_cortex_default", "path": str(project / "models" / "versioned"), "project_path": "models/versioned"}
    ]
    api = load(
        project,
        {
            "paths": [{"name": "a", "path": "models/plain"}, {"name": "s", "path": "s3://bkt/x/"}],
            "cache_size": 1,
            "disk_cache_size": 2,
        },
        key="models",
    )
    assert [m["name"] for m in api.models["models"]] == ["a", "s"]
    assert api.models["models"][1] == {"name": "s", "path": "s3://bkt/x/", "project_path": None}
    assert (api.models["cache_size"], api.models["disk_cache_size"]) == (1, 2)
    api = load(project, {"dir": "models/dir"}, tritonize__model_poll_interval="500ms")
    assert api.models["dir"]["project_path"] == "models/dir" and api.models["poll_interval"] == 0.5
    assert (
        load(project, {"path": str(project / "models" / "plain")}).models["models"][0]["project_path"] == "models/plain"
    )
    assert load(project, None).models is None
    api = load(project, None, tritonize__model_poll_interval="1s")
    assert "api: ignored: tritonize.model_poll_interval (no predictor.multi_model_reloading)" in api.warnings


@pytest.mark.parametrize(
    "models, words",
    [
        ({}, "multi_model_reloading: specify exactly one of path, paths or dir"),
        (
            {"path": "models/plain", "dir": "models/dir"},
            "specify exactly one of path, paths or dir (path and dir are both given)",
        ),
        ({"path": "models/plain", "paths": [{"name": "a", "path": "models/plain"}]}, "(path and paths are both given)"),
        ({"path": "models/plain", "extra": 1}, "multi_model_reloading.extra: unknown key"),
        (
            {"path": "models/plain", "signature_key": "x"},
            "multi_model_reloading.signature_key: not supported by the python predictor type",
        ),
        ({"path": "gs://bkt/m"}, "multi_model_reloading.path: gs://bkt/m: path must be an S3 path"),
        ({"path": "s3:///m"}, "names no bucket"),
        ({"path": "../outside"}, "points outside the project directory"),
        ({"path": "models/missing"}, "multi_model_reloading.path: 'models/missing' is not a folder"),
        ({"path": "models/mixed"}, "invalid python model path: it mixes version folders (1) with other files"),
        ({"path": "models/empty"}, "invalid python model path: the folder is empty"),
        ({"dir": "models/empty"}, "multi_model_reloading.dir: "),
        ({"paths": [{"name": "a b", "path": "models/plain"}]}, "paths[0].name: required; letters, digits"),
        ({"paths": [{"path": "models/plain"}]}, "paths[0].name: required"),
        ({"paths": [{"name": "_cortex_default", "path": "models/plain"}]}, "_cortex_default is a reserved name"),
        (
            {"paths": [{"name": "a", "path": "models/plain"}, {"name": "a", "path": "models/versioned"}]},
            "paths[1].name: cannot have multiple models with the same name (a)",
        ),
        ({"paths": [{"name": "a"}]}, "paths[0].path: required"),
        (
            {"paths": [{"name": "a", "path": "models/plain", "signature_key": "s"}]},
            "paths[0].signature_key: not supported",
        ),
        ({"paths": "models/plain"}, "paths: expected a list"),
        (
            {"path": "models/plain", "cache_size": 1},
            "please specify both cache_size and disk_cache_size or neither of them",
        ),
        (
            {"path": "models/plain", "cache_size": 0, "disk_cache_size": 1},
            "cache_size: expected a whole number greater than 0",
        ),
        ({"path": "models/plain", "cache_size": True, "disk_cache_size": 1}, "cache_size: expected a whole number"),
        (
            {"path": "models/plain", "cache_size": 3, "disk_cache_size": 2},
            "cache_size (3) cannot be greater than disk_cache_size (2)",
        ),
        ("models/plain", "multi_model_reloading: expected a mapping"),
    ],
)
def test_cortex_rules_are_build_errors_naming_the_key(project, models, words):
    with pytest.raises(SpecError) as err:
        load(project, models)
    assert words in str(err.value)


def test_both_section_names_and_caching_with_several_processes_are_refused(project):
    api = {
        "name": "api",
        "predictor": {
            "path": "predictor.py",
            "models": {"path": "models/plain"},
            "multi_model_reloading": {"path": "models/plain"},
        },
    }
    (project / "cortex.yaml").write_text(yaml.safe_dump([api]))
    with pytest.raises(SpecError, match="give either multi_model_reloading or models"):
        load_spec_file(str(project / "cortex.yaml"))
    api = {
        "name": "api",
        "predictor": {
            "path": "predictor.py",
            "processes_per_replica": 2,
            "multi_model_reloading": {"dir": "models/dir", "cache_size": 1, "disk_cache_size": 1},
        },
    }
    (project / "cortex.yaml").write_text(yaml.safe_dump([api]))
    with pytest.raises(SpecError, match="processes_per_replica can be at most 1"):
        load_spec_file(str(project / "cortex.yaml"))
    with pytest.raises(SpecError, match="tritonize.model_poll_interval: expected a duration"):
        load(project, {"path": "models/plain"}, tritonize__model_poll_interval="soon")


def test_dir_models_are_checked_and_reserved_names_refused(project):
    os.makedirs(project / "models" / "dir" / "_cortex_default")
    (project / "models" / "dir" / "_cortex_default" / "m.bin").write_text("x")
    with pytest.raises(SpecError, match="_cortex_default: is a reserved name"):
        load(project, {"dir": "models/dir"})
