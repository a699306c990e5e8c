"""What of a project goes into the repository: hidden files never, .env as environment, ignore files
with gitignore's rules (adapter/project_files.py, adapter/project_env.py)."""

import json
import os

import pytest

from tritonize.adapter.build import build
from tritonize.docker.build import dependency_steps
from tritonize.errors import BuildError

GOOD = (
    "class PythonPredictor:\n    def __init__(self, config):\n        pass\n"
    "    def predict(self, payload):\n        return payload\n"
)


def files_under(path):
    return sorted(os.path.relpath(os.path.join(r, f), path) for r, _, fs in os.walk(path) for f in fs)


def write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)


def build_project(tmp_path, files, spec=None):
    project = tmp_path / "proj"
    write(project, {"predictor.py": GOOD, **files})
    if spec is not None:
        (project / "cortex.yaml").write_text(spec)
        source = project / "cortex.yaml"
    else:
        source = project / "predictor.py"
    result = build(str(source), str(tmp_path / "repo"))
    api = result.apis[0].name
    version = tmp_path / "repo" / api / "1"
    return result, version


def test_hidden_files_and_folders_are_never_copied(tmp_path):
    _, version = build_project(
        tmp_path,
        {
            ".aws/credentials": "[default]\naws_secret_access_key=s3cr3t\n",
            ".git/HEAD": "ref",
            ".env": "FOO=bar\n",
            ".secret": "x",
            "data/.cache/blob": "x",
            "data/.hidden.txt": "x",
            "data/labels.txt": "a\n",
            "pkg/__pycache__/m.cpython-312.pyc": b"x",
            "pkg/m.py": "X = 1\n",
            "pkg/native.pyd": b"x",
        },
    )
    assert files_under(version / "project") == ["data/labels.txt", "pkg/m.py", "predictor.py"]
    everything = "".join(p.read_text(errors="replace") for p in version.rglob("*") if p.is_file())
    assert "s3cr3t" not in everything


def test_dotenv_travels_as_the_apis_environment_and_wins_over_predictor_env(tmp_path):
    dotenv = (
        "# comment\n"
        "export FOO=from-dotenv\n"
        'QUOTED="two words # not a comment"\n'
        "SINGLE='${FOO} stays'\n"
        "REF=${FOO}/x\n"
        "FROM_SPEC=${ONLY_IN_SPEC}-and-more\n"
        "DEFAULTED=${NOT_SET:-fallback}\n"
        'MULTI="line1\nline2"\n'
        "EMPTY=\n"
        "BARE\n"
    )
    spec = (
        "- name: api\n  kind: RealtimeAPI\n  predictor:\n    type: python\n    path: predictor.py\n"
        "    env: {FOO: from-spec, KEEP: spec-only, ONLY_IN_SPEC: s}\n"
    )
    result, version = build_project(tmp_path, {".env": dotenv}, spec)
    env = json.loads((version / "tritonize_api.json").read_text())["predictor"]["env"]
    assert env == {
        "FOO": "from-dotenv",  # .env wins, as `set -a; source .env` after the API's environment
        "KEEP": "spec-only",
        "ONLY_IN_SPEC": "s",
        "QUOTED": "two words # not a comment",
        "SINGLE": "${FOO} stays",
        "REF": "from-dotenv/x",
        "FROM_SPEC": "s-and-more",
        "DEFAULTED": "fallback",
        "MULTI": "line1\nline2",
        "EMPTY": "",
    }
    assert not (version / "project" / ".env").exists()
    assert not result.warnings


def test_dotenv_never_reads_the_build_machines_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BUILD_MACHINE_SECRET", "leak")
    result, version = build_project(tmp_path, {".env": "X=${BUILD_MACHINE_SECRET}\n"})
    env = json.loads((version / "tritonize_api.json").read_text())["predictor"]["env"]
    assert env == {"X": ""}
    assert any("${BUILD_MACHINE_SECRET} is defined neither" in w for w in result.warnings)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"GOOD=1\n'unterminated\n", r"\.env:2: cannot parse"),
        (b"\xff\xfeA=1\n", r"\.env: not UTF-8 text"),
        (b"BAD-NAME=1\n", r"\.env:1: .* is not a variable name|\.env:1: cannot parse"),
    ],
)
def test_a_bad_dotenv_is_a_clear_error_and_writes_nothing(tmp_path, content, message):
    with pytest.raises(BuildError, match=message):
        build_project(tmp_path, {".env": content})
    assert not (tmp_path / "repo").exists()


def test_dotenv_applies_while_dependencies_install_in_the_image(tmp_path):
    spec = "- name: api\n  predictor:\n    path: predictor.py\n    env: {PIP_EXTRA: spec, FOO: spec}\n"
    build_project(
        tmp_path, {".env": "FOO=dotenv\n", "requirements.txt": "six\n", "dependencies.sh": "echo $FOO\n"}, spec
    )
    steps = [line for line in dependency_steps(str(tmp_path / "repo")) if line.startswith("RUN ")]
    assert len(steps) == 2
    for step in steps:
        argv = json.loads(step[4:])
        assert argv[:4] == ["env", "FOO=dotenv", "PIP_EXTRA=spec", argv[3]]
    assert json.loads(steps[0][4:])[3] == "bash" and "pip" in json.loads(steps[1][4:])


IGNORE_CASES = [
    # (ignore file, project files, expected copy)
    ("*.bin\n!keep.bin\n", ["a.bin", "keep.bin", "sub/b.bin"], ["keep.bin"]),
    ("**/cache\n", ["cache/x", "a/cache/y", "a/b/cache/z", "cachex/w"], ["cachex/w"]),
    ("/top.txt\n", ["top.txt", "sub/top.txt"], ["sub/top.txt"]),
    ("logs/\n", ["logs/a.log", "sub/logs/b.log", "logs.txt"], ["logs.txt"]),
    ("data/**/*.csv\n", ["data/a.csv", "data/x/y/b.csv", "data/c.txt", "other/d.csv"], ["data/c.txt", "other/d.csv"]),
    ("models/*\n!models/small/\n", ["models/big/w", "models/small/w", "models/f"], ["models/small/w"]),
    ("\\#hash\n# a comment\n  \n", ["#hash", "plain"], ["plain"]),
]


@pytest.mark.parametrize("ignore_name", [".tritonizeignore", ".cortexignore"])
@pytest.mark.parametrize("rules, present, kept", IGNORE_CASES)
def test_ignore_files_follow_gitignore(tmp_path, ignore_name, rules, present, kept):
    _, version = build_project(tmp_path, {ignore_name: rules, **{p: "x" for p in present}})
    assert files_under(version / "project") == sorted(kept + ["predictor.py"])


def test_both_ignore_files_apply(tmp_path):
    _, version = build_project(
        tmp_path, {".tritonizeignore": "a.txt\n", ".cortexignore": "b.txt\n", "a.txt": "", "b.txt": "", "c.txt": ""}
    )
    assert files_under(version / "project") == ["c.txt", "predictor.py"]


@pytest.mark.parametrize("content", [b"\xff\xfe*\x00.\x00b\x00i\x00n\x00", b"ok.txt\n\xe9t\xe9\n"])
def test_a_non_utf8_ignore_file_is_a_clear_error(tmp_path, content):
    with pytest.raises(BuildError, match=r"\.cortexignore: not UTF-8 text"):
        build_project(tmp_path, {".cortexignore": content})
    assert not (tmp_path / "repo").exists()


def test_an_unreadable_ignore_file_is_a_clear_error(tmp_path):
    project = tmp_path / "proj"
    (project / ".tritonizeignore").mkdir(parents=True)  # a folder where the file should be: unreadable
    with pytest.raises(BuildError, match=r"\.tritonizeignore: cannot read the ignore file"):
        build_project(tmp_path, {})


@pytest.mark.parametrize(
    "rules, predictor",
    [("*.py\n", "predictor.py"), ("src/\n", "src/predictor.py"), ("**/pred*\n", "src/predictor.py")],
)
def test_ignoring_the_predictor_itself_is_warned(tmp_path, rules, predictor):
    spec = f"- name: api\n  predictor:\n    path: {predictor}\n"
    result, _ = build_project(tmp_path, {".cortexignore": rules, predictor: GOOD}, spec)
    assert any(f"the predictor {predictor} is excluded" in w and ".cortexignore" in w for w in result.warnings)


def test_the_cli_prints_an_ignore_file_error_without_a_traceback(tmp_path):
    from conftest import run_tritonize

    project = tmp_path / "proj"
    write(project, {"predictor.py": GOOD, ".cortexignore": b"\xe9\n"})
    result = run_tritonize("build", str(project / "predictor.py"), "-o", str(tmp_path / "repo"), check=False)
    assert result.returncode != 0
    assert ".cortexignore: not UTF-8 text" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_tritonize_test_sees_the_dotenv_too(tmp_path):
    from conftest import run_tritonize

    project = tmp_path / "proj"
    predictor = (
        "import os\nAT_IMPORT = os.environ.get('FOO')\n\nclass PythonPredictor:\n"
        "    def predict(self, payload):\n        return {'import': AT_IMPORT, 'now': os.environ.get('FOO')}\n"
    )
    write(project, {"predictor.py": predictor, ".env": "FOO=from-dotenv\n"})
    result = run_tritonize("test", str(project / "predictor.py"), "-d", "{}")
    assert json.loads(result.stdout) == {"import": "from-dotenv", "now": "from-dotenv"}
