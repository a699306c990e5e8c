"""The wheel, as users install it: every package in it, and build -> serve -> predict from a fresh venv."""

import glob
import os
import re
import subprocess
import sys
import time

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib
from conftest import free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_SHIPPED = ("tests", "benchmarks", "examples", ".venv", "node_modules", "build", "dist")


def source_packages():
    """tritonize.* for every folder of the repository that is a Python package."""
    found = ["tritonize"]
    for init in glob.glob(os.path.join(ROOT, "**", "__init__.py"), recursive=True):
        relative = os.path.relpath(os.path.dirname(init), ROOT)
        if relative == "." or relative.split(os.sep)[0] in NOT_SHIPPED or "egg-info" in relative:
            continue
        found.append("tritonize." + relative.replace(os.sep, "."))
    return sorted(found)


def test_pyproject_lists_every_package():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        listed = tomllib.load(f)["tool"]["setuptools"]["packages"]
    assert sorted(listed) == source_packages()


@pytest.mark.e2e
def test_wheel_in_a_fresh_venv_builds_serves_and_predicts(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), ROOT],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = glob.glob(str(dist / "tritonize-*.whl"))
    names = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", wheel], capture_output=True, text=True, check=True
    ).stdout
    for package in source_packages():
        assert package.replace(".", "/") + "/__init__.py" in names, package
    assert "tritonize/docker/Dockerfile.template" in names and "tritonize/tests/" not in names
    assert "tritonize/schema/cortex.schema.json" in names  # tritonize schema's published copy

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[server]"], check=True, capture_output=True, timeout=900
    )
    tritonize = str(venv / "bin" / "tritonize")
    work = tmp_path / "work"  # not the checkout: nothing may come from the source tree
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import tritonize; print(tritonize.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where
    subprocess.run(
        [tritonize, "build", os.path.join(ROOT, "examples", "echo", "cortex.yaml"), "-o", "repo"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    http, grpc, metrics = free_ports(3)
    log = open(work / "serve.log", "w")
    serve = subprocess.Popen(
        [
            tritonize,
            "serve",
            "repo",
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
        ],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while "Ready in" not in (work / "serve.log").read_text():
            assert serve.poll() is None and time.monotonic() < deadline, (work / "serve.log").read_text()
            time.sleep(0.2)
        for protocol, port in (("http", http), ("grpc", grpc)):
            out = subprocess.run(
                [
                    tritonize,
                    "predict",
                    "echo",
                    "--data",
                    '{"text": "hi"}',
                    "--protocol",
                    protocol,
                    "--url",
                    f"127.0.0.1:{port}",
                ],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert re.search(r'"greeting": "hello from cortex.yaml"', out.stdout), out.stdout
    finally:
        serve.terminate()
        serve.wait(timeout=60)
        log.close()
