"""model.py's execute(), in this process, with Triton's own triton_python_backend_utils module.

The module comes from the nvidia-pytriton wheel (the file the python backend puts on the stub's
path). The classes the stub adds to it from C++ (Tensor, InferenceResponse, TritonError,
MetricFamily) are given here as small stand-ins; everything else is the real module, including
get_input_tensor_by_name, which model.py calls for every request.
"""

import importlib.util
import json
import logging
import os
import sys

import numpy as np
import pytest
from conftest import FIXTURES

from tritonize.adapter.build import build
from tritonize.host.triton_install import find_triton


class Tensor:
    def __init__(self, name, array):
        self._name, self._array = name, array

    def name(self):
        return self._name

    def as_numpy(self):
        return self._array


class InferenceResponse:
    def __init__(self, output_tensors=None, error=None):
        self.output_tensors, self._error = output_tensors or [], error

    def error(self):
        return self._error

    def output_tensors_by_name(self):
        return {t.name(): t.as_numpy() for t in self.output_tensors}


class TritonError:
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, CANCELLED = (
        "UNKNOWN",
        "INTERNAL",
        "NOT_FOUND",
        "INVALID_ARG",
        "UNAVAILABLE",
        "UNSUPPORTED",
        "ALREADY_EXISTS",
        "CANCELLED",
    )

    def __init__(self, message, code=INTERNAL):
        self._message, self._code = message, code

    def message(self):
        return self._message

    def code(self):
        return self._code


class MetricFamily:
    COUNTER, GAUGE = "counter", "gauge"
    families = {}

    def __init__(self, name, description, kind):
        self.name, self.metrics = name, {}
        MetricFamily.families[name] = self

    def Metric(self, labels):  # noqa: N802  (the stub's spelling)
        family = self

        class _Metric:
            def increment(self, value):
                key = tuple(sorted(labels.items()))
                family.metrics[key] = family.metrics.get(key, 0) + value

        return _Metric()


class Request:
    def __init__(self, inputs, parameters="{}"):
        self._inputs, self._parameters = inputs, parameters

    def inputs(self):
        return self._inputs

    def parameters(self):
        return self._parameters


@pytest.fixture(scope="module")
def pb_utils():
    path = os.path.join(find_triton().python_backend, "triton_python_backend_utils.py")
    spec = importlib.util.spec_from_file_location("triton_python_backend_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert hasattr(module, "get_input_tensor_by_name") and not hasattr(module, "Tensor")  # the real file
    module.Tensor, module.InferenceResponse, module.TritonError = Tensor, InferenceResponse, TritonError
    module.MetricFamily = MetricFamily
    sys.modules["triton_python_backend_utils"] = module
    yield module
    del sys.modules["triton_python_backend_utils"]


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    out = tmp_path_factory.mktemp("unit") / "repo"
    build(os.path.join(FIXTURES, "robust", "cortex.yaml"), str(out))
    return out


def load_model(pb_utils, repository, api, model_config="{}"):
    version_dir = str(repository / api / "1")
    spec = importlib.util.spec_from_file_location(f"model_{api}", os.path.join(version_dir, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    saved = (os.getcwd(), list(sys.path), dict(os.environ))
    logger = logging.getLogger("tritonize")
    saved_logger = (list(logger.handlers), logger.propagate, logger.level)
    sys.path.insert(0, version_dir)  # Triton puts the version folder on the stub's path
    try:
        model = module.TritonPythonModel()
        model.initialize(
            {
                "model_name": api,
                "model_instance_kind": "CPU",
                "model_instance_device_id": "0",
                "model_instance_name": f"{api}_0_0",
                "model_config": model_config,
            }
        )
    finally:
        os.chdir(saved[0])
        os.environ.clear()
        os.environ.update(saved[2])
        # initialize() gave tritonize's logger its own handler and cut it from the root logger (as in
        # the stub): undone, so that later tests' caplog still sees tritonize's records.
        logger.handlers[:], logger.propagate = saved_logger[0], saved_logger[1]
        logger.setLevel(saved_logger[2])
    return model


def body_request(body, parameters=None):
    array = np.empty((1, 1), dtype=np.object_)
    array[0, 0] = body
    return Request([Tensor("payload", array)], json.dumps(parameters or {}))


def test_execute_answers_each_request_of_a_batch_on_its_own(pb_utils, repository):
    model = load_model(pb_utils, repository, "robust")
    good = body_request(b'{"a": 1}', {"x-tenant": "acme", "content_type": "application/json"})
    bad_json = body_request(b'{"a": ', {"content_type": "application/json"})
    missing = Request([])
    responses = model.execute([good, bad_json, missing])
    assert len(responses) == 3
    assert responses[0].error() is None
    outputs = responses[0].output_tensors_by_name()
    answer = json.loads(outputs["response"].reshape(-1)[0])
    assert answer["payload"] == {"a": 1} and answer["headers"] == {
        "x-tenant": "acme",
        "content-type": "application/json",
    }
    assert outputs["content_type"].reshape(-1)[0] == b"application/json"
    assert responses[1].error().code() == TritonError.INVALID_ARG
    assert responses[2].error().code() == TritonError.INVALID_ARG
    assert "missing input tensor 'payload'" in responses[2].error().message()


def test_error_responses_are_counted_by_status(pb_utils, repository):
    MetricFamily.families.clear()
    model = load_model(pb_utils, repository, "robust")
    model.execute([Request([]), Request([])])
    family = MetricFamily.families["tritonize_request_errors"]
    assert family.metrics == {(("model", "robust"), ("status", "400")): 2}


def test_batching_api_gets_one_predict_call_with_lists(pb_utils, repository):
    model = load_model(pb_utils, repository, "batchy")
    responses = model.execute([body_request(json.dumps({"i": i}).encode()) for i in range(3)])
    answers = [json.loads(r.output_tensors_by_name()["response"].reshape(-1)[0]) for r in responses]
    assert answers == [{"i": i, "n": 3} for i in range(3)]


def test_typed_api_splits_the_batch_back(pb_utils, repository):
    model = load_model(pb_utils, repository, "typed")
    requests = [Request([Tensor("x", np.full((1, 4), i, dtype=np.float32))]) for i in range(2)]
    requests.append(Request([]))  # no input: its own 400, the others still answered
    responses = model.execute(requests)
    assert [r.error() is None for r in responses] == [True, True, False]
    ys = [r.output_tensors_by_name()["y"] for r in responses[:2]]
    assert [y.shape for y in ys] == [(1, 1), (1, 1)] and ys[0][0, 0] != ys[1][0, 0]


def test_execute_marks_its_start_for_the_request_timeout(pb_utils, repository, monkeypatch):
    from tritonize.adapter.runtime.constants import REQUEST_TIMEOUT_ENV

    assert load_model(pb_utils, repository, "robust").request_timeout is None  # none by default
    monkeypatch.setenv(REQUEST_TIMEOUT_ENV, "30")  # serve --request-timeout 30s
    model = load_model(pb_utils, repository, "robust")
    try:
        assert model.request_timeout.timeout_s == 30.0 and model.request_timeout.instance == "robust_0_0"
        seen, execute = [], model._execute
        model._execute = lambda requests: seen.append(model.busy_since) or execute(requests)
        assert model.execute([body_request(b"{}")])[0].error() is None
        assert seen[0] is not None and model.busy_since is None
        model._execute = lambda requests: 1 / 0  # even when execute fails, the mark is cleared
        model.execute([body_request(b"{}")])
        assert model.busy_since is None
    finally:
        model.finalize()


BATCH_PREDICTOR = """
import os


class PythonPredictor:
    def __init__(self, config, job_spec):
        self.seen, self.config, self.job_spec, self.completed = [], config, job_spec, 0

    def predict(self, payload, batch_id):
        if payload == ["boom"]:
            raise ValueError("item boom")
        self.seen.append((batch_id, payload))

    def on_job_complete(self):
        self.completed += 1
"""


def batch_request(text, parameters):
    array = np.empty((1,), dtype=np.object_)
    array[0] = text
    return Request([Tensor("BATCH", array)], json.dumps(parameters))


def test_a_batch_api_answers_each_batch_of_one_execute_on_its_own(pb_utils, tmp_path):
    from tritonize.adapter.runtime.repository_model import batch_load_config

    (tmp_path / "batch.py").write_text(BATCH_PREDICTOR)
    (tmp_path / "cortex.yaml").write_text(
        "- name: job\n  kind: BatchAPI\n  predictor: {path: batch.py, config: {a: {b: 1, c: 2}}}\n"
    )
    repo = tmp_path / "repo"
    build(str(tmp_path / "cortex.yaml"), str(repo))
    spec = {"job_id": "j1", "config": {"a": {"c": 3}}}
    model = load_model(pb_utils, repo, "job", json.dumps(batch_load_config(str(repo), "job", 1, spec)))
    predictor = model.batch.predictor.instance
    assert predictor.job_spec == spec and predictor.config == {"a": {"b": 1, "c": 3}, "device": "cpu"}
    responses = model.execute(
        [
            batch_request(b"[1, 2]", {"batch_id": "b1"}),
            batch_request(b'["boom"]', {"batch_id": "b2"}),
            batch_request(b"[oops", {"batch_id": "b3"}),
            Request([], json.dumps({"batch_id": "b4"})),
            batch_request(b"[3]", {"batch_id": "b5"}),
            batch_request(b"null", {"tritonize_on_job_complete": True}),
        ]
    )
    assert [r.error() is None for r in responses] == [True, False, False, False, True, True]
    assert json.loads(responses[0].output_tensors_by_name()["RESULT"][0]) == {"ok": True}
    assert (responses[1].error().code(), responses[1].error().message()) == (
        TritonError.INTERNAL,
        "predict() raised ValueError: item boom",
    )
    assert responses[2].error().code() == TritonError.INVALID_ARG
    assert responses[3].error().code() == TritonError.INVALID_ARG
    assert predictor.seen == [("b1", [1, 2]), ("b5", [3])] and predictor.completed == 1
    # Loaded without a job (by hand): the instance loads, and says why it cannot run batches.
    bare = load_model(pb_utils, repo, "job")
    (response,) = bare.execute([batch_request(b"[1]", {"batch_id": "b1"})])
    assert response.error().code() == TritonError.UNAVAILABLE
    assert response.error().message().startswith("worker did not start: BatchAPI 'job' was loaded without a job")
