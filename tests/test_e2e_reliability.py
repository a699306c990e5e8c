"""End to end on real Triton: admin APIs need the token, crashed instances come back,
a predictor that fails to load does not take the others down."""

import glob
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize import Client, PredictError

pytestmark = pytest.mark.e2e
from tritonize.adapter.runtime.constants import ADMIN_TOKEN_HEADER as TOKEN_HEADER
from tritonize.adapter.runtime.constants import GRPC_ADMIN_TOKEN_HEADER


def build_robust(work, names=None):
    shutil.copytree(os.path.join(FIXTURES, "robust"), work / "project")
    spec = work / "project" / "cortex.yaml"
    if names is not None:  # a spec with only some of the APIs (and maybe the broken one)
        entries = {"robust": "robust_predictor.py", "broken": "broken_predictor.py"}
        spec.write_text(
            "".join(f"- name: {n}\n  predictor:\n    type: python\n    path: {entries[n]}\n" for n in names)
        )
    repo = work / "model_repository"
    run_tritonize("build", str(spec), "-o", str(repo))
    return repo


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = build_robust(tmp_path_factory.mktemp("reliability"))
    serve = ServeProcess(str(repo))
    try:
        assert serve.wait_ready(), serve.output()
        serve.token = re.search(r"TRITONIZE_ADMIN_TOKEN=(\S+)", wait_banner(serve)).group(1)
    except BaseException:
        serve.stop()
        raise
    yield serve
    assert serve.stop() == 0, serve.output()


def wait_banner(serve, timeout=90):
    """Until serve printed its ready banner (health can say ready a moment before)."""
    deadline = time.monotonic() + timeout
    while "Press Ctrl-C to stop." not in serve.output():
        assert serve.process.poll() is None and time.monotonic() < deadline, serve.output()
        time.sleep(0.1)
    return serve.output()


def http(serve, path, body=None, token=None):
    request = urllib.request.Request(
        f"http://{serve.http_url}{path}", data=body, method="GET" if body is None else "POST"
    )
    if token:
        request.add_header(TOKEN_HEADER, token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


ADMIN_HTTP = [
    ("model-repository", "/v2/repository/index", b"{}"),
    ("statistics", "/v2/models/stats", None),
    ("shared-memory", "/v2/systemsharedmemory/status", None),
    ("trace", "/v2/trace/setting", None),
    ("logging", "/v2/logging", None),
]


@pytest.mark.parametrize("api,path,body", ADMIN_HTTP, ids=[a[0] for a in ADMIN_HTTP])
def test_http_admin_api_needs_the_token(server, api, path, body):
    status, text = http(server, path, body)
    assert status == 403 and f"expecting header '{TOKEN_HEADER}'" in text, (status, text)
    assert http(server, path, body, token="wrong")[0] == 403
    assert http(server, path, body, token=server.token)[0] == 200


def test_grpc_admin_apis_need_the_token_inference_and_health_do_not(server):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(server.grpc_url)
    calls = {
        "model-repository": lambda h: client.get_model_repository_index(headers=h),
        "statistics": lambda h: client.get_inference_statistics(headers=h),
        "shared-memory": lambda h: client.get_system_shared_memory_status(headers=h),
        "trace": lambda h: client.get_trace_settings(headers=h),
        "logging": lambda h: client.get_log_settings(headers=h),
    }
    try:
        for name, call in calls.items():
            with pytest.raises(InferenceServerException) as err:
                call(None)
            assert "restricted" in str(err.value), (name, err.value)
            with pytest.raises(InferenceServerException):
                call({TOKEN_HEADER: server.token})  # gRPC metadata needs Triton's prefix
            call({GRPC_ADMIN_TOKEN_HEADER: server.token})
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("robust")
        assert client.get_model_metadata("robust").name == "robust"
    finally:
        client.close()
    # Inference, health and metadata stay open over HTTP too.
    assert http(server, "/v2/health/ready")[0] == 200
    assert http(server, "/v2/models/robust")[0] == 200
    with Client(server.http_url) as c:
        assert c.predict("robust", {"a": 1})["payload"] == {"a": 1}


def test_the_token_header_never_reaches_predictors(server):
    from tritonize.adapter.runtime.params import ParameterRules, split_parameters

    grpc_key = GRPC_ADMIN_TOKEN_HEADER
    _, headers, _ = split_parameters(json.dumps({TOKEN_HEADER: "t", grpc_key: "t", "x-a": "1"}), ParameterRules(".*"))
    assert TOKEN_HEADER not in headers and grpc_key not in headers and headers["x-a"] == "1"


def _shm_regions(serve):
    return glob.glob(f"/dev/shm/tritonize{serve.process.pid}_*")


@pytest.mark.parametrize("how", ["exit", "segfault", "oom-kill"])
def test_crashed_instance_is_reloaded(server, how):
    with Client(server.http_url) as client:
        pid_before = client.predict("robust", {})["pid"]
        regions_before = len(_shm_regions(server))
        sent = time.monotonic()
        with pytest.raises(PredictError) as err:
            client.predict("robust", {}, query_params={"op": how})
        failed_after = time.monotonic() - sent
        assert err.value.status == 500 and "is not healthy" in err.value.message, err.value
        died = sent
        while True:
            try:
                out = client.predict("robust", {"again": True})
                break
            except PredictError as exc:
                assert time.monotonic() - died < 15, f"not recovered after 15 s: {exc}\n{server.output()}"
                time.sleep(0.1)
        recovered = time.monotonic() - died
    assert out["payload"] == {"again": True} and out["pid"] != pid_before
    print(
        f"{how}: crash request answered after {failed_after:.2f} s; requests succeed again "
        f"{recovered:.2f} s after it was sent"
    )
    output = server.output()
    assert f"API 'robust': instance process robust_0_0 (pid {pid_before}) died" in output, output
    assert "API 'robust': reloaded in" in output
    deadline = time.monotonic() + 5
    while len(_shm_regions(server)) != regions_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_shm_regions(server)) == regions_before  # the dead stub's region was removed
    with Client(server.grpc_url, protocol="grpc") as client:  # gRPC too
        assert client.predict("robust", {"g": 1})["payload"] == {"g": 1}


def test_failing_init_does_not_stop_the_other_apis(tmp_path):
    repo = build_robust(tmp_path, names=["robust", "broken"])
    serve = ServeProcess(str(repo))
    try:
        output = wait_banner(serve)
        assert "warning: API 'broken' failed to load; serving the others" in output
        assert "RuntimeError: cannot open weights at /nonexistent/robust.pth" in output
        assert "broken_predictor.py" in output and "line 3" in output  # the user's own frame
        with Client(serve.http_url) as client:
            assert client.predict("robust", {"a": 1})["payload"] == {"a": 1}
        assert http(serve, "/v2/health/ready")[0] == 400  # strict readiness: not every API is up
        assert http(serve, "/v2/models/robust/ready")[0] == 200
        assert http(serve, "/v2/models/broken/ready")[0] == 400
    finally:
        assert serve.stop() == 0, serve.output()


def test_exit_on_error_stops_when_any_api_fails(tmp_path):
    repo = build_robust(tmp_path, names=["robust", "broken"])
    serve = ServeProcess(str(repo), extra_args=["--exit-on-error"])
    assert serve.wait_ready(timeout=90) is False
    serve.process.wait(timeout=60)
    output = serve.output()
    assert serve.process.returncode != 0
    assert "An API failed to load (serve --exit-on-error)" in output
    assert "RuntimeError: cannot open weights at /nonexistent/robust.pth" in output
    leftover = subprocess.run(["pgrep", "-f", str(repo)], capture_output=True, text=True).stdout.split()
    assert leftover == []
