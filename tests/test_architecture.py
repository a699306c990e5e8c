"""docs/architecture.md says what the tree is, that imports go down, and what is defined once: checked here."""

import ast
import os
import re
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "architecture.md")


def _doc():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def package_dirs():
    """The package's folders (relative to the repository root, "" for the root) from pyproject.toml."""
    return sorted(
        name.replace("tritonize", "", 1).lstrip(".").replace(".", "/")
        for name in _pyproject()["tool"]["setuptools"]["packages"]
    )


def product_files():
    """Every .py file of the package (tests, benchmarks and examples are not part of it)."""
    return sorted(
        os.path.join(folder, name) if folder else name
        for folder in package_dirs()
        for name in os.listdir(os.path.join(ROOT, folder))
        if name.endswith(".py")
    )


def drawn_tree():
    """The entries of the doc's ```text tree, as paths relative to the repository root (folders end with /)."""
    block = re.search(r"## The tree.*?```text\n(.*?)```", _doc(), re.S).group(1)
    entries, stack = [], []
    for line in block.splitlines():
        match = re.search(r"[A-Za-z0-9_.]", line)
        if not match:
            continue
        depth = match.start() // 4
        name = line[match.start() :].split()[0]
        stack[depth:] = [name]
        if depth:  # depth 0 is the package itself: the repository root
            entries.append("".join(stack[1:]))
    return entries


def test_the_drawn_tree_is_the_package_every_module_listed_no_stale_entry():
    drawn = drawn_tree()
    assert len(drawn) == len(set(drawn)), "an entry is drawn twice"
    stale = [entry for entry in drawn if not os.path.exists(os.path.join(ROOT, entry))]
    assert not stale, f"docs/architecture.md draws what does not exist: {stale}"
    modules = [path for path in product_files() if os.path.basename(path) != "__init__.py"]
    folders = [folder + "/" for folder in package_dirs() if folder]
    missing = sorted(set(modules + folders) - set(drawn))
    assert not missing, f"docs/architecture.md's tree lacks (add one line each): {missing}"
    drawn_folders = sorted(entry for entry in drawn if entry.endswith("/"))
    assert drawn_folders == sorted(folders), "a drawn folder is not a package in pyproject.toml"


def test_the_documented_layers_are_the_enforced_ones_and_hold():
    doc = _doc()
    listed = re.findall(r"^\d+\. `([^`]+)`$", doc.split("<!-- layers:", 1)[1].split("\n\n", 1)[0], re.M)
    contracts = _pyproject()["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    assert listed == layers
    lint_imports = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts)} kept, 0 broken" in result.stdout


def _code_mentions(path):
    """(kind, text) for each identifier and non-docstring string constant of a module."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield "name", node.id
        elif isinstance(node, ast.Attribute):
            yield "name", node.attr
        elif isinstance(node, ast.alias):
            yield "name", node.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield "string", node.value


def _modules_mentioning(predicate):
    return sorted({path for path in product_files() for kind, text in _code_mentions(path) if predicate(kind, text)})


def test_the_repository_format_is_read_and_written_in_one_module():
    names = {"SETTINGS_FILE", "MARKER_FILE"}
    files = ("tritonize_api.json", ".tritonize.json")
    users = _modules_mentioning(
        lambda kind, text: (kind == "name" and text in names) or (kind == "string" and any(f in text for f in files))
    )
    assert users == ["adapter/runtime/constants.py", "adapter/runtime/repository_model.py"]


def test_config_pbtxt_is_parsed_in_one_module_and_never_searched_as_text():
    parsers = _modules_mentioning(lambda kind, text: kind == "name" and text in ("parse_pbtxt", "Parse"))
    assert parsers == ["adapter/built_repository.py", "adapter/model_config.py"]  # the reader, and the definition
    searched = _modules_mentioning(
        lambda kind, text: kind == "string" and re.search(r"decoupled\s*:|decoupled\\s", text)
    )
    assert searched == [], "config.pbtxt text searched by hand: ask adapter/built_repository.py"


def test_the_job_store_is_read_and_written_in_one_module():
    files = ("job.json", "progress.jsonl", "batches.jsonl", "submission.json", "job.log")
    users = _modules_mentioning(lambda kind, text: kind == "string" and any(name in text for name in files))
    assert users == ["batch/store.py"], "the job store's files are batch/store.py's: ask JobStore or JobManager"
