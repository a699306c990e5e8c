"""An instance imports only the runtime modules its API uses (issue 28: many APIs on one server).

Every API instance is its own process; with 20 APIs on one server, each import the runtime does
at initialize() is paid 20 times in start time and memory. These tests pin which modules of
tritonize_runtime a model.py instance has loaded after initialize() and a request: in a fresh
subprocess with Triton's own triton_python_backend_utils (as tests/test_model_py.py: stand-ins only
for the classes the stub adds from C++), and once in the real stub under `tritonize serve`.
"""

import json
import os
import subprocess
import sys
import urllib.request

import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize.adapter.build import build
from tritonize.adapter.runtime.constants import REQUEST_TIMEOUT_ENV
from tritonize.host.triton_install import find_triton

# What a plain body API (no streaming, typed tensors, models, forms or request timeout) never imports.
ONLY_WHEN_USED = {
    "streaming": "a streaming API",
    "stream_errors": "a streaming API",
    "tensors": "a typed tensor API",
    "python_client": "an API with models (multi_model_reloading)",
    "multi_model": "an API with models",
    "model_storage": "an API with models",
    "model_tree": "an API with models",
    "model_errors": "an API with models",
    "model_metrics": "an API with models",
    "forms": "a form body (multipart/form-data, x-www-form-urlencoded)",
    "request_timeout": "a request timeout",
}

# Runs in a fresh interpreter: argv = version dir, python backend dir, requests (JSON list of
# [body, parameters]). Prints the tritonize_runtime modules loaded, and each response's error or None.
INSTANCE = r"""
import json, sys
version_dir, backend_dir, requests = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path[:0] = [version_dir, backend_dir]
import numpy as np
import triton_python_backend_utils as pb_utils

assert not hasattr(pb_utils, "Tensor")  # the real file: the stub adds these from C++


class Tensor:
    def __init__(self, name, array):
        self._name, self._array = name, array

    def name(self):
        return self._name

    def as_numpy(self):
        return self._array


class TritonError:
    UNKNOWN = INTERNAL = NOT_FOUND = INVALID_ARG = UNAVAILABLE = UNSUPPORTED = ALREADY_EXISTS = CANCELLED = 0

    def __init__(self, message, code=0):
        self._message = message

    def message(self):
        return self._message


class InferenceResponse:
    def __init__(self, output_tensors=None, error=None):
        self.error = error


class MetricFamily:
    COUNTER = GAUGE = HISTOGRAM = 0

    def __init__(self, name, description, kind):
        pass

    def Metric(self, labels):
        return type("Metric", (), {"increment": lambda self, value: None, "set": lambda self, value: None})()


class Request:
    def __init__(self, body, parameters):
        array = np.empty((1, 1), dtype=np.object_)
        array[0, 0] = body.encode()
        self._inputs, self._parameters = [Tensor("payload", array)], json.dumps(parameters)

    def inputs(self):
        return self._inputs

    def parameters(self):
        return self._parameters


pb_utils.Tensor, pb_utils.InferenceResponse, pb_utils.TritonError = Tensor, InferenceResponse, TritonError
pb_utils.MetricFamily, pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL = MetricFamily, 1
import model

instance = model.TritonPythonModel()
instance.initialize({"model_name": "api", "model_instance_name": "api_0_0", "model_config": "{}"})
errors = []
if requests:
    for response in instance.execute([Request(body, parameters) for body, parameters in requests]):
        errors.append(None if response.error is None else response.error.message())
loaded = sorted(name.split(".", 1)[1] for name in sys.modules if name.startswith("tritonize_runtime."))
print(json.dumps({"modules": loaded, "errors": errors}))
instance.finalize()
"""


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    out = tmp_path_factory.mktemp("imports")
    build(os.path.join(FIXTURES, "robust", "cortex.yaml"), str(out / "robust"))
    build(os.path.join(FIXTURES, "streaming", "cortex.yaml"), str(out / "streaming"))
    return out


def instance_modules(version_dir, requests=(), env=None):
    """-> (the tritonize_runtime modules one instance loaded, each request's error or None)."""
    backend_dir = find_triton().python_backend
    result = subprocess.run(
        [sys.executable, "-c", INSTANCE, str(version_dir), backend_dir, json.dumps(list(requests))],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=str(version_dir),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return set(answer["modules"]), answer["errors"]


JSON_REQUEST = ('{"a": 1}', {"content_type": "application/json"})


def test_a_plain_api_instance_imports_nothing_it_does_not_use(repository):
    modules, errors = instance_modules(repository / "robust" / "robust" / "1", [JSON_REQUEST])
    assert errors == [None]
    assert {"pipeline", "handler", "codec", "predictor", "params"} <= modules  # it did run the request
    unexpected = {name: why for name, why in ONLY_WHEN_USED.items() if name in modules}
    assert not unexpected, f"a plain JSON API's instance imported modules only needed by: {unexpected}"


def test_a_form_body_imports_the_form_parser_when_it_comes(repository):
    form = ("a=1&b=2", {"content_type": "application/x-www-form-urlencoded"})
    modules, errors = instance_modules(repository / "robust" / "robust" / "1", [JSON_REQUEST, form])
    assert errors == [None, None]
    assert "forms" in modules and "tensors" not in modules


def test_a_typed_api_imports_the_tensor_stages(repository):
    modules, _ = instance_modules(repository / "robust" / "typed" / "1")
    assert "tensors" in modules and "forms" not in modules and "streaming" not in modules


def test_a_streaming_api_imports_the_stream_executor(repository):
    modules, _ = instance_modules(repository / "streaming" / "stream" / "1")
    assert "streaming" in modules and "tensors" not in modules
    plain, _ = instance_modules(repository / "streaming" / "echo" / "1")
    assert "streaming" not in plain


def test_a_request_timeout_imports_its_watchdog(repository):
    modules, _ = instance_modules(repository / "robust" / "robust" / "1", env={REQUEST_TIMEOUT_ENV: "30"})
    assert "request_timeout" in modules


PREDICTOR = """
import sys


class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        return sorted(name for name in sys.modules if name.startswith("tritonize_runtime."))
"""


def test_the_real_stub_of_a_plain_api_loads_only_what_it_uses(tmp_path):
    """The same pin in Triton's own stub process under `tritonize serve`, the way users run it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "predictor.py").write_text(PREDICTOR)
    repo = tmp_path / "repo"
    run_tritonize("build", str(project / "predictor.py"), "-o", str(repo), "--name", "modules")
    server = ServeProcess(str(repo), ["--no-cortex"])
    try:
        assert server.wait_ready(timeout=180), server.output()
        body = json.dumps(
            {"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": ['{"x": 1}']}]}
        ).encode()
        request = urllib.request.Request(f"http://{server.http_url}/v2/models/modules/infer", data=body)
        with urllib.request.urlopen(request, timeout=60) as response:
            outputs = {o["name"]: o["data"][0] for o in json.load(response)["outputs"]}
        loaded = {name.split(".", 1)[1] for name in json.loads(outputs["response"])}
    finally:
        server.stop()
    assert {"pipeline", "predictor"} <= loaded
    unexpected = {name: why for name, why in ONLY_WHEN_USED.items() if name in loaded}
    assert not unexpected, f"a plain API's stub imported modules only needed by: {unexpected}"
