"""Every bash, sh, console and python block of README.md and docs/*.md runs (against a real server where
it talks to one), unless marked `<!-- not-run: reason -->`: see tests/doc_blocks.py for the convention.

Each page's blocks run in order in one shell, inside a network namespace of their own where the
machine allows one (so the documented default ports 8000-8002 and 8080 are free), in a folder with a
copy of examples/."""

import os
import shutil
import subprocess
import sys

import pytest
from doc_blocks import ROOT, blocks, doc_files, page_script, stray_markers

pytestmark = pytest.mark.e2e

PAGES = {path: blocks(path) for path in doc_files()}
RUNNABLE = [path for path, page in PAGES.items() if any(block.runs for block in page)]


def _namespace_prefix():
    """`unshare --net` with loopback up, where this user may (root in CI); else None."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    probe = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"], capture_output=True)
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec bash "$0"'] if probe.returncode == 0 else None


def _ports_free():
    import socket

    for port in (8000, 8001, 8002, 8080):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def run_page(page_blocks, work, timeout=900):
    """Run the page's blocks in `work` (a copy of examples/ in it); returns the CompletedProcess."""
    shutil.copytree(
        os.path.join(ROOT, "examples"),
        os.path.join(work, "examples"),
        ignore=shutil.ignore_patterns("__pycache__", "*.pkl", "model_repository"),
    )
    script = os.path.join(work, "doc-page.sh")
    with open(script, "w") as f:
        f.write(page_script(page_blocks, sys.executable))
    prefix = _namespace_prefix()
    if prefix is None:
        if not _ports_free():
            pytest.skip("no network namespace here, and the documented ports 8000-8002/8080 are taken")
        prefix = ["bash"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITONIZE_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [*prefix, script], cwd=work, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def failed_block(result):
    markers = [line for line in result.stdout.splitlines() if line.startswith("### ")]
    return markers[-1][4:] if markers else "(before the first block)"


def test_the_docs_have_runnable_blocks():
    assert len(RUNNABLE) >= 3, RUNNABLE


def test_not_run_markers_give_a_reason_and_mark_a_block():
    for path, page in PAGES.items():
        for block in page:
            assert block.not_run != "", f"{block.where}: `not-run:` needs a reason"
        assert stray_markers(path) == [], f"{path}: not-run markers not right before a fence"


@pytest.mark.parametrize("path", RUNNABLE, ids=[os.path.relpath(p, ROOT) for p in RUNNABLE])
def test_page_blocks_run(path, tmp_path):
    result = run_page(PAGES[path], str(tmp_path))
    assert result.returncode == 0, (
        f"block {failed_block(result)} failed (exit {result.returncode}):\n"
        f"{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    )
    assert "### all blocks ran" in result.stdout


WRONG_CURL_PAGE = """\
```bash
python examples/iris/train.py
tritonize build examples/iris/cortex.yaml -o model_repository
```

```bash
tritonize serve model_repository
```

```bash
curl -X POST http://127.0.0.1:8080/iris-classifier -d @examples/iris/sample.json
```
"""


def test_a_wrong_command_fails(tmp_path):
    """The quick start's old curl (no JSON content type: the predictor gets a form and answers 500)."""
    page = os.path.join(str(tmp_path), "page.md")
    result = run_page(blocks(page, WRONG_CURL_PAGE), str(tmp_path))
    assert result.returncode != 0, result.stdout
    assert failed_block(result).endswith("page.md:10"), result.stdout  # the curl block's fence
    assert "500" in result.stdout + result.stderr, result.stdout + result.stderr
