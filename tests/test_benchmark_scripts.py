"""The benchmark scripts still import: they are not run in CI, so a renamed helper would go unnoticed."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(
    os.path.splitext(os.path.basename(path))[0] for path in glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))
)


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_imports(name):
    if name == "fastapi_app":
        pytest.importorskip("fastapi", reason="the FastAPI baseline needs the bench/dev extra")
    # As the scripts run: from the repository root (benchmarks.* imports) and from benchmarks/ (siblings).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "benchmarks")])}
    # fastapi_app.py is the app uvicorn loads: it serves the predictor the benchmark names.
    env["BENCH_PREDICTOR"] = os.path.join(ROOT, "benchmarks", "projects", "echo", "predictor.py")
    result = subprocess.run(
        [sys.executable, "-c", f"import benchmarks.{name}"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
