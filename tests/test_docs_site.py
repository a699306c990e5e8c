"""The MkDocs site: nav entries of pages other branches add appear once the page exists, a missing page
of our own still fails the strict build, and the CLI reference is generated from the commands."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MKDOCS = [sys.executable, "-m", "mkdocs"]


def site_copy(tmp_path):
    """mkdocs.yml and docs/ in a scratch folder (the build may change neither the checkout)."""
    shutil.copy(os.path.join(ROOT, "mkdocs.yml"), tmp_path / "mkdocs.yml")
    shutil.copytree(os.path.join(ROOT, "docs"), tmp_path / "docs")
    return tmp_path


def build(folder):
    return subprocess.run(
        [*MKDOCS, "build", "--strict", "-d", str(folder / "site")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


@pytest.fixture(scope="module")
def mkdocs_available():
    if subprocess.run([*MKDOCS, "--version"], capture_output=True).returncode != 0:
        pytest.skip("mkdocs is not installed (the dev extra has it)")


def test_optional_pages_join_the_nav_once_they_exist(tmp_path, mkdocs_available):
    folder = site_copy(tmp_path)
    (folder / "docs" / "security.md").unlink(missing_ok=True)
    result = build(folder)
    assert result.returncode == 0, result.stderr
    assert not (folder / "site" / "security").exists()
    (folder / "docs" / "security.md").write_text("# Security\n\nThe edge.\n")
    result = build(folder)
    assert result.returncode == 0, result.stderr
    index = (folder / "site" / "index.html").read_text()
    assert 'href="security/"' in index, "security.md is not in the nav"


def test_a_missing_page_of_ours_fails_the_strict_build(tmp_path, mkdocs_available):
    folder = site_copy(tmp_path)
    (folder / "docs" / "batching.md").unlink()
    result = build(folder)
    assert result.returncode != 0
    assert "batching.md" in result.stderr


def test_the_cli_reference_is_generated_from_the_commands(tmp_path, mkdocs_available):
    folder = site_copy(tmp_path)
    assert build(folder).returncode == 0
    page = (folder / "site" / "cli" / "index.html").read_text()
    # Options of every command, as click declares them (none is written by hand in docs/cli.md).
    for option in ("--output-tensor", "--watch", "--cortex-port", "--autoscaler", "--engine", "--token"):
        assert option in page, option
