"""A BatchAPI's runtime without Triton (adapter/runtime/batch.py), `tritonize test` on a BatchAPI, and
`tritonize build predictor.py` telling a batch predictor (issue 25). Real Triton: test_e2e_batch_runtime.py."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tritonize.adapter.build import build
from tritonize.adapter.runtime.batch import (
    BatchOutcome,
    BatchRequest,
    BatchWorker,
    batch_error,
    job_spec_from_model_config,
    read_batch_request,
    startup_failure,
)
from tritonize.adapter.runtime.errors import PredictorLoadError
from tritonize.adapter.runtime.predictor import LoadedPredictor, merge_config
from tritonize.adapter.runtime.repository_model import read_repository_settings
from tritonize.cli.main import cli
from tritonize.errors import SpecError
from tritonize.server.dry_run import dry_run


def test_the_job_config_is_merged_over_the_api_config_as_cortex_did():
    api = {"model": {"name": "base", "size": 1, "deep": {"a": 1}}, "threshold": 0.5, "labels": ["a"]}
    job = {"model": {"name": "tuned", "deep": {"b": 2}}, "labels": ["b"], "new": None}
    assert merge_config(api, job) == {
        "model": {"name": "tuned", "size": 1, "deep": {"a": 1, "b": 2}},
        "threshold": 0.5,
        "labels": ["b"],  # lists are replaced, not merged (Cortex's merge_dicts_in_place_overwrite)
        "new": None,
    }
    assert merge_config({"x": {"y": 1}}, {"x": 3}) == {"x": 3}
    assert merge_config({"x": 1}, None) == {"x": 1}


def test_the_job_spec_comes_from_the_model_config_and_its_absence_is_explained():
    spec = {"job_id": "j", "config": {}}
    config = {"name": "job", "parameters": {"tritonize_job_spec": {"string_value": json.dumps(spec)}}}
    assert job_spec_from_model_config(json.dumps(config), "job") == spec
    assert job_spec_from_model_config(config, "job") == spec
    for bare in ({"name": "job"}, "{}", "not json", None, {"parameters": {"tritonize_job_spec": {}}}):
        with pytest.raises(PredictorLoadError, match="BatchAPI 'job' was loaded without a job"):
            job_spec_from_model_config(bare, "job")
    broken = {"parameters": {"tritonize_job_spec": {"string_value": "[1]"}}}
    with pytest.raises(PredictorLoadError, match="is not a JSON object"):
        job_spec_from_model_config(broken, "job")


def _batch(text):
    return np.array([text], dtype=np.object_)


def test_reading_a_batch_request():
    assert read_batch_request('{"batch_id": "b1"}', _batch(b"[1]")) == BatchRequest(b"[1]", "b1", False)
    assert read_batch_request('{"tritonize_on_job_complete": true}', _batch(b"null")) == BatchRequest(b"null", "", True)
    assert read_batch_request('{"tritonize_on_job_complete": "true"}', None) == BatchRequest(None, "", True)
    assert read_batch_request("{}", None) == BatchOutcome(400, "expected one BATCH item: the batch as JSON text")
    assert read_batch_request("{}", np.array([b"[1]", b"[2]"], dtype=np.object_)).status == 400
    assert read_batch_request("{", _batch(b"[]")) == BatchOutcome(400, "request parameters are not valid JSON")
    assert read_batch_request('{"batch_id": 7}', _batch("[1]")) == BatchRequest(b"[1]", "7", False)


class Recorder:
    def __init__(self):
        self.calls, self.completed = [], 0

    def predict(self, batch_id, payload):
        if payload == ["boom"]:
            raise KeyError("x" * 1000)
        self.calls.append((batch_id, payload))
        return "ignored"

    def on_job_complete(self):
        self.completed += 1


def test_a_worker_runs_batches_and_one_failure_does_not_touch_the_next():
    predictor = Recorder()
    worker = BatchWorker(LoadedPredictor(predictor), "job", {"job_id": "j1"})
    assert worker.run(BatchRequest(b'[{"a": 1}]', "b1", False)) == BatchOutcome(200)
    failed = worker.run(BatchRequest(b'["boom"]', "b2", False))
    assert failed.status == 500
    assert failed.message == "predict() raised KeyError: " + repr("x" * 1000)[:500]
    assert worker.run(BatchRequest(b"[2]", "b3", False)).ok
    assert worker.run(BatchRequest(b"{not json", "b4", False)).status == 400
    assert worker.run(BatchRequest(b'{"a": 1}', "b5", False)) == BatchOutcome(
        400, "BATCH must be a JSON list of items, got dict"
    )
    assert predictor.calls == [("b1", [{"a": 1}]), ("b3", [2])]
    assert worker.run(BatchRequest(b"null", "", True)).ok and predictor.completed == 1
    refused = BatchOutcome(400, "bad")
    assert worker.run(refused) is refused


def test_on_job_complete_is_optional_and_its_failure_is_reported():
    class NoHook:
        def predict(self, payload):
            pass

    assert BatchWorker(LoadedPredictor(NoHook()), "job", {}).run(BatchRequest(None, "", True)).ok

    class Failing(NoHook):
        def on_job_complete(self):
            raise OSError("bucket gone")

    outcome = BatchWorker(LoadedPredictor(Failing()), "job", {}).run(BatchRequest(None, "", True))
    assert outcome == BatchOutcome(500, "on_job_complete() raised OSError: bucket gone")


def test_error_messages_are_one_line_and_bounded():
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError

    assert batch_error("predict", Unprintable()) == "predict() raised Unprintable: <str() of the exception failed>"
    text = "PythonPredictor.__init__ failed:\nTraceback (most recent call last):\n  File x\nValueError: no model\n"
    assert startup_failure(PredictorLoadError(text)) == (
        "worker did not start: PythonPredictor.__init__ failed: ValueError: no model"
    )


BATCH_PREDICTOR = """
import json


class PythonPredictor:
    def __init__(self, config, job_spec):
        self.out, self.job = config["out"], job_spec

    def predict(self, payload, batch_id):
        with open(self.out, "a") as f:
            f.write(json.dumps({"payload": payload, "batch_id": batch_id, "job_id": self.job["job_id"]}) + "\\n")

    def on_job_complete(self):
        with open(self.out, "a") as f:
            f.write("complete\\n")
"""


def test_tritonize_test_runs_one_batch_of_a_batch_api(tmp_path):
    (tmp_path / "batch.py").write_text(BATCH_PREDICTOR)
    out = tmp_path / "out.jsonl"
    (tmp_path / "cortex.yaml").write_text(
        f"- name: job\n  kind: BatchAPI\n  predictor: {{path: batch.py, config: {{out: {json.dumps(str(out))}}}}}\n"
    )
    reply, _ = dry_run(str(tmp_path / "cortex.yaml"), b'[{"x": 1}]')
    assert (reply.status, json.loads(reply.body)) == (200, {"ok": True})
    first, last = out.read_text().splitlines()
    assert json.loads(first) == {"payload": [{"x": 1}], "batch_id": "dry-run-batch", "job_id": "dry-run"}
    assert last == "complete"
    reply, _ = dry_run(str(tmp_path / "cortex.yaml"), b'{"x": 1}')
    assert reply.status == 400 and "a JSON list of items" in reply.message


def test_build_of_a_predictor_file_taking_batch_id_is_a_batch_api_and_says_so(tmp_path):
    (tmp_path / "batch.py").write_text(BATCH_PREDICTOR)
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "batch.py"), "-o", str(tmp_path / "repo")])
    assert result.exit_code == 0, result.output
    assert (
        "  batch: BatchAPI (__init__() takes job_spec and predict() takes batch_id; --api-kind RealtimeAPI builds "
        "a RealtimeAPI): loaded for each job" in result.output
    )
    assert read_repository_settings(str(tmp_path / "repo")).apis["batch"].batch
    # Told otherwise, the batch-only arguments are a located error.
    result = CliRunner().invoke(
        cli, ["build", str(tmp_path / "batch.py"), "-o", str(tmp_path / "rt"), "--api-kind", "RealtimeAPI"]
    )
    assert result.exit_code != 0 and "argument 'job_spec' is given to BatchAPI predictors only" in result.output
    assert not (tmp_path / "rt").exists()
    # A predictor that does not tell can be built as a BatchAPI on request.
    (tmp_path / "plain.py").write_text("class PythonPredictor:\n    def predict(self, payload):\n        pass\n")
    built = build(str(tmp_path / "plain.py"), str(tmp_path / "plain-repo"), api_kind="BatchAPI")
    assert built.apis[0].batch and built.apis[0].batch_reason is None
    with pytest.raises(SpecError, match="--instances: batch is a BatchAPI"):
        build(str(tmp_path / "batch.py"), str(tmp_path / "x"), instances=2)
    with pytest.raises(SpecError, match="batching and tensor options apply to RealtimeAPIs"):
        build(str(tmp_path / "batch.py"), str(tmp_path / "x"), batching={"max_batch_size": 4})
    with pytest.raises(SpecError, match="--api-kind"):
        build(str(tmp_path / "cortex.yaml"), str(tmp_path / "x"), api_kind="BatchAPI")


def test_tune_refuses_a_batch_api(tmp_path):
    from tritonize.tune.runner import select_api
    from tritonize.tune.search import TuneError

    (tmp_path / "batch.py").write_text(BATCH_PREDICTOR)
    with pytest.raises(TuneError, match="batch is a BatchAPI: tune measures realtime APIs"):
        select_api(str(tmp_path / "batch.py"), None, None)
