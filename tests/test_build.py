# ruff: noqa: E501  (predictor sources and messages are compared verbatim)
import ast
import json
import os
import sys

import pytest

from tritonize.adapter.build import build
from tritonize.errors import BuildError, PredictorSourceError

GOOD = "class PythonPredictor:\n    def __init__(self, config):\n        pass\n    def predict(self, payload):\n        return payload\n"


@pytest.fixture
def project(tmp_path):
    p = tmp_path / "proj"
    (p / "data").mkdir(parents=True)
    (p / "predictor.py").write_text(GOOD)
    (p / "data" / "labels.txt").write_text("a\nb\n")
    (p / "__pycache__").mkdir()
    (p / "__pycache__" / "x.pyc").write_bytes(b"x")
    (p / ".git").mkdir()
    (p / ".git" / "HEAD").write_text("ref")
    (p / "venv_here").mkdir()
    (p / "venv_here" / "pyvenv.cfg").write_text("home = /usr")
    (p / "big.bin").write_bytes(b"0" * 10)
    (p / "notes").mkdir()
    (p / "notes" / "a.md").write_text("x")
    (p / ".tritonizeignore").write_text("# comment\n*.bin\nnotes/\n")
    return p


def files_under(path):
    return sorted(os.path.relpath(os.path.join(r, f), path) for r, _, fs in os.walk(path) for f in fs)


def test_repository_layout(project, tmp_path):
    result = build(str(project / "predictor.py"), str(tmp_path / "repo"), config={"k": 1})
    model = tmp_path / "repo" / "proj"
    assert [a.name for a in result.apis] == ["proj"]
    assert (model / "config.pbtxt").read_text().startswith('name: "proj"')
    assert (model / "1" / "model.py").read_text() == open(
        os.path.join(os.path.dirname(__file__), "..", "model_repository_template", "model.py")
    ).read()
    settings = json.loads((model / "1" / "tritonize_api.json").read_text())
    assert settings["predictor"] == {
        "path": "predictor.py",
        "class_name": "PythonPredictor",
        "config": {"k": 1},
        "python_path": [],
        "env": {},
    }
    assert files_under(model / "1" / "project") == ["data/labels.txt", "predictor.py"]  # hidden files never copied
    assert "handler.py" in os.listdir(model / "1" / "tritonize_runtime")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tritonize-build-")]


def test_existing_output_needs_force_and_failed_build_keeps_old(project, tmp_path):
    repo = str(tmp_path / "repo")
    build(str(project / "predictor.py"), repo)
    with pytest.raises(BuildError, match="already exists; use --force"):
        build(str(project / "predictor.py"), repo)
    (project / "predictor.py").write_text("class PythonPredictor:\n    def predict(self, oops):\n        pass\n")
    with pytest.raises(PredictorSourceError, match="unsupported argument 'oops'"):
        build(str(project / "predictor.py"), repo, force=True)
    assert "def predict(self, payload)" in open(os.path.join(repo, "proj", "1", "project", "predictor.py")).read()
    (project / "predictor.py").write_text(GOOD.replace("return payload", "return 2"))
    build(str(project / "predictor.py"), repo, force=True)
    assert "return 2" in open(os.path.join(repo, "proj", "1", "project", "predictor.py")).read()
    assert sorted(os.listdir(tmp_path)) == ["proj", "repo"]


def test_force_refuses_a_directory_tritonize_did_not_write(project, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(BuildError, match="not written by tritonize"):
        build(str(project / "predictor.py"), str(precious), force=True)
    assert (precious / "thesis.tex").exists()


def test_output_inside_the_project_is_not_copied_into_itself(project):
    repo = project / "model_repository"
    build(str(project / "predictor.py"), str(repo))
    build(str(project / "predictor.py"), str(repo), force=True)
    assert not (repo / "proj" / "1" / "project" / "model_repository").exists()


def test_symlink_outside_the_project_is_refused(project, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    os.symlink(secret, project / "data" / "link.txt")
    with pytest.raises(BuildError, match="links outside the project"):
        build(str(project / "predictor.py"), str(tmp_path / "repo"))
    assert not (tmp_path / "repo").exists()


def test_symlink_inside_the_project_is_copied_as_a_file(project, tmp_path):
    os.symlink(project / "data" / "labels.txt", project / "labels-link.txt")
    build(str(project / "predictor.py"), str(tmp_path / "repo"))
    copied = tmp_path / "repo" / "proj" / "1" / "project" / "labels-link.txt"
    assert copied.read_text() == "a\nb\n" and not copied.is_symlink()


def test_code_copied_into_triton_imports_only_stdlib_numpy_and_pb_utils():
    root = os.path.join(os.path.dirname(__file__), "..")
    files = [os.path.join(root, "model_repository_template", "model.py")]
    runtime = os.path.join(root, "adapter", "runtime")
    files += [os.path.join(runtime, f) for f in os.listdir(runtime) if f.endswith(".py")]
    allowed = set(sys.stdlib_module_names) | {"numpy", "triton_python_backend_utils", "tritonize_runtime"}
    for path in files:
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative, inside the runtime package
                    continue
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path} imports {name}"


def test_a_directory_link_inside_the_project_is_copied_as_a_folder(project, tmp_path):
    (project / "lib_real").mkdir()
    (project / "lib_real" / "helpers.py").write_text("X = 1\n")
    os.symlink("lib_real", project / "lib")  # the predictor imports lib.helpers
    build(str(project / "predictor.py"), str(tmp_path / "repo"))
    copied = tmp_path / "repo" / "proj" / "1" / "project" / "lib" / "helpers.py"
    assert copied.read_text() == "X = 1\n" and not copied.parent.is_symlink()


@pytest.mark.parametrize("target", ["..", ".", "../a"])
def test_a_directory_link_loop_is_a_clear_error(project, tmp_path, target):
    (project / "a").mkdir()
    os.symlink(target, project / "a" / "loop")
    with pytest.raises(BuildError, match="a/loop links to a folder it is inside of"):
        build(str(project / "predictor.py"), str(tmp_path / "repo"))


def test_force_does_not_delete_models_added_by_hand(project, tmp_path):
    repo = tmp_path / "repo"
    build(str(project / "predictor.py"), str(repo))
    (repo / "handmade").mkdir()
    (repo / "handmade" / "config.pbtxt").write_text('name: "handmade"\n')
    with pytest.raises(BuildError, match="holds handmade, which an earlier build did not write"):
        build(str(project / "predictor.py"), str(repo), force=True)
    assert (repo / "handmade" / "config.pbtxt").exists()


def test_an_interrupted_builds_leftovers_are_not_copied(tmp_path):
    """Output inside the project: a killed build leaves .tritonize-build-* and <out>.old-* there."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "predictor.py").write_text("class PythonPredictor:\n    def __init__(self, config):\n        pass\n\n"
                                          "    def predict(self, payload):\n        return payload\n")  # fmt: skip
    (project / ".tritonize-build-abc123" / "x").mkdir(parents=True)
    (project / "model_repository.old-.tritonize-build-def456" / "y").mkdir(parents=True)
    build(str(project / "predictor.py"), str(project / "model_repository"))
    copied = os.listdir(project / "model_repository" / "proj" / "1" / "project")
    assert copied == ["predictor.py"], copied
