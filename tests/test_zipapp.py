"""The Cortex endpoint's zipapp: its contents are the real import closure, and it runs.

The e2e test runs it as images do (`python -I tritonize_cortex_endpoint.pyz ...`) against a built
repository served by a real tritonserver, and checks with `-v` that every tritonize module came
from the zip (the editable install on this machine would otherwise hide a module the zip lacks).
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile

import pytest
import requests
from conftest import FIXTURES, ServeProcess, free_ports, run_tritonize

from tritonize.cortex_endpoint.zipapp import (
    ENTRY_MODULES,
    ZIPAPP_NAME,
    check_closure,
    image_modules,
    import_closure,
    write_zipapp,
)
from tritonize.errors import BuildError


def test_the_closure_is_what_the_endpoint_imports_and_only_stdlib_beyond_the_image():
    modules, others = import_closure()
    check_closure(others)  # raises if the image would lack a module
    assert set(others) <= image_modules()
    assert set(others) >= {"httptools", "uvloop"}
    # What the endpoint reads the repository with, and what it used to miss (request_timeout's successor).
    for name in (*ENTRY_MODULES, "tritonize.cortex_endpoint.routes", "tritonize.adapter.runtime.repository_model"):
        assert name in modules
    # Parents are packages that run on import; nothing host-only (protobuf, the CLI, the client) rides along.
    assert {"tritonize", "tritonize.adapter", "tritonize.adapter.runtime", "tritonize.cortex_endpoint"} <= set(modules)
    assert not [m for m in modules if m.startswith(("tritonize.client", "tritonize.cli"))]
    # The image's supervisor (server/container.py) and what it runs, nothing of serve's host side.
    host_side = ("serve", "local_launcher", "docker_launcher", "dry_run", "watch", "gpus")
    assert not [m for m in modules if m.startswith("tritonize.server.") and m.rsplit(".", 1)[1] in host_side]
    assert "tritonize.cortex_endpoint.zipapp" not in modules


def _tree(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


def test_the_closure_follows_lazy_and_relative_imports_and_refuses_what_the_image_lacks(tmp_path):
    root = _tree(
        tmp_path / "tritonize",
        {
            "__init__.py": "def __getattr__(name):\n    from tritonize.heavy import Client\n",
            "heavy.py": "import numpy\n",
            "pkg/__init__.py": "",
            "pkg/main.py": "from . import helper\n\ndef main():\n    from tritonize.pkg.lazy import x\n",
            "pkg/helper.py": "import json\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n",
            "pkg/lazy.py": "import uvloop\nimport pandas\n",
        },
    )
    modules, others = import_closure(["tritonize.pkg.main"], root)
    # Lazy imports of reached modules are followed; a parent package's are not (tritonize.Client's).
    assert sorted(modules) == [
        "tritonize",
        "tritonize.pkg",
        "tritonize.pkg.helper",
        "tritonize.pkg.lazy",
        "tritonize.pkg.main",
    ]
    assert others == {"uvloop": ["pkg/lazy.py:1"], "pandas": ["pkg/lazy.py:2"]}
    with pytest.raises(BuildError, match=r"pandas \(from pkg/lazy.py:2\)"):
        check_closure(others)


def test_the_zipapp_holds_exactly_the_closure_and_is_deterministic(tmp_path):
    first = write_zipapp(str(tmp_path))
    with zipfile.ZipFile(first) as archive:
        names = sorted(archive.namelist())
        content = {name: archive.read(name) for name in names}
    modules, _ = import_closure()
    expected = sorted(
        [
            name.replace(".", "/") + ("/__init__.py" if path.endswith("__init__.py") else ".py")
            for name, path in modules.items()
        ]
        + ["__main__.py"]
    )
    assert names == expected
    assert b"tritonize.cortex_endpoint.__main__ import main" in content["__main__.py"]
    os.rename(first, tmp_path / "first.pyz")
    with open(tmp_path / "first.pyz", "rb") as a, open(write_zipapp(str(tmp_path)), "rb") as b:
        assert a.read() == b.read()


def _wait_listening(port, process, log, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the zipapp exited with {process.returncode}:\n{log()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the zipapp did not listen in {timeout}s:\n{log()}")


@pytest.mark.e2e
def test_the_zipapp_runs_isolated_and_answers_post_api_from_real_triton(tmp_path):
    repo = tmp_path / "repo"
    run_tritonize("build", os.path.join(FIXTURES, "streaming", "cortex.yaml"), "-o", str(repo))
    zipapp = write_zipapp(str(repo))
    assert os.path.basename(zipapp) == ZIPAPP_NAME
    serve = ServeProcess(str(repo), extra_args=["--no-cortex"])
    try:
        assert serve.wait_ready(timeout=300), serve.output()
        (port,) = free_ports(1)
        log_path = tmp_path / "zipapp.log"
        with open(log_path, "w") as log:
            front = subprocess.Popen(
                # -I: no PYTHONPATH, no user site, not the current folder; -v: where each import came from.
                [sys.executable, "-I", "-v", zipapp, "--repository", str(repo), "--port", str(port)]
                + ["--triton-http-port", str(serve.http_port), "--triton-grpc-port", str(serve.grpc_port)]
                + ["--workers", "1"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        try:
            _wait_listening(port, front, log_path.read_text)
            r = requests.post(f"http://127.0.0.1:{port}/echo", json={"x": 1}, timeout=60)
            assert (r.status_code, r.json()) == (200, {"echo": {"x": 1}}), r.text
            r = requests.post(f"http://127.0.0.1:{port}/stream", json={"n": 3, "kind": "text"}, timeout=60)
            assert (r.status_code, r.text) == (200, "tok0 tok1 tok2 "), r.text
            assert requests.post(f"http://127.0.0.1:{port}/nope", json={}, timeout=60).status_code == 404
        finally:
            front.send_signal(signal.SIGTERM)
            front.wait(timeout=30)
        imports = re.findall(r"^import '(tritonize[\w.]*)' # (.*)$", log_path.read_text(), re.M)
        assert {name for name, _ in imports} >= {"tritonize.cortex_endpoint.routes", "tritonize.cortex_endpoint.app"}
        outside = [(name, where) for name, where in imports if "zipimporter" not in where]
        assert not outside, f"tritonize modules loaded from outside the zipapp: {outside}"
    finally:
        serve.stop()
