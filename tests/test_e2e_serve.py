"""End to end: build the fixture project, serve it with real Triton, call it over HTTP and gRPC."""

import glob
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize import Client, PredictError

pytestmark = pytest.mark.e2e
PROTOCOLS = ["http", "grpc"]
# perf_analyzer reads the statistics API, which `serve` restricts to this token.
ADMIN_TOKEN = "e2e-admin-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    project = work / "project"
    shutil.copytree(os.path.join(FIXTURES, "project"), project)
    repo = work / "model_repository"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    serve = ServeProcess(str(repo), extra_args=["--admin-token", ADMIN_TOKEN])
    assert serve.wait_ready(), serve.output()
    yield serve
    assert serve.stop() == 0, serve.output()
    # Nothing left behind: no stub processes, no shared-memory regions.
    leftover = subprocess.run(["pgrep", "-f", str(repo)], capture_output=True, text=True).stdout.split()
    assert leftover == [], f"processes still running for {repo}: {leftover}"
    assert glob.glob(f"/dev/shm/tritonize{serve.process.pid}_*") == []


def client_for(server, protocol):
    return Client(server.http_url if protocol == "http" else server.grpc_url, protocol=protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_json_payload_query_params_and_headers(server, protocol):
    with client_for(server, protocol) as client:
        out = client.predict(
            "echo",
            {"x": [1, 2.5], "s": "héllo ✓"},
            query_params={"model": "small", "n": 3},
            headers={"X-Tenant": "acme", "Authorization": "Bearer secret", "Accept-Language": "fr"},
        )
    assert out["greeting"] == "hello from config"
    assert out["payload"] == {"x": [1, 2.5], "s": "héllo ✓"}
    assert out["payload_type"] == "dict"
    assert out["query_params"] == {"model": "small", "n": "3"}
    # Only headers matching the forward pattern (^x-) arrive; Authorization never does.
    assert out["headers"]["x-tenant"] == "acme"
    assert "authorization" not in out["headers"] and "accept-language" not in out["headers"]
    assert out["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_malformed_json_is_400_and_predictor_not_called(server, protocol):
    with client_for(server, protocol) as client:
        before = client.predict("behaviour", {}, query_params={"op": "info"})["calls"]
        with pytest.raises(PredictError) as err:
            client.predict_raw("behaviour", b'{"x": [1, 2', query_params={"op": "info"})
        after = client.predict("behaviour", {}, query_params={"op": "info"})["calls"]
    assert err.value.status == 400
    assert "malformed JSON" in err.value.message
    assert after == before + 1  # the bad request never reached predict()


def logged_reason(server, message, timeout=10):
    """The server log after the `[error id X]` that a 500's message names (Cortex: reasons go to the log)."""
    assert message.startswith("internal server error (error id "), message
    tag = f"[error id {message.split('error id ')[1].split(')')[0]}]"
    deadline = time.monotonic() + timeout
    while tag not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.output()
    assert tag in log, log[-3000:]
    return log[log.index(tag) :]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_predictor_exception_is_500_and_server_stays_up(server, protocol):
    with client_for(server, protocol) as client:
        with pytest.raises(PredictError) as err:
            client.predict("behaviour", {}, query_params={"op": "raise"})
        # Cortex's answer: no exception text for the client; the log has it under the same error id.
        assert err.value.status == 500 and "raised on purpose" not in err.value.message
        assert "ValueError: the predictor raised on purpose" in logged_reason(server, err.value.message)
        assert client.predict("behaviour", {}, query_params={"op": "info"})["labels"][0] == "setosa"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_json_response_and_http_exception_keep_their_status(server, protocol):
    with client_for(server, protocol) as client:
        with pytest.raises(PredictError) as err:
            client.predict("behaviour", {}, query_params={"op": "json400"})
        assert err.value.status == 400
        assert json.loads(err.value.message) == {"error": "bad field", "field": "x"}
        with pytest.raises(PredictError) as err:
            client.predict("behaviour", {}, query_params={"op": "http404"})
        assert (err.value.status, err.value.message) == (404, "no such thing")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unencodable_results_are_500(server, protocol):
    with client_for(server, protocol) as client:
        for op, words in (("set", "not JSON serializable"), ("nan", "Out of range float"), ("redirect", "302")):
            with pytest.raises(PredictError) as err:
                client.predict("behaviour", {}, query_params={"op": op})
            assert err.value.status == 500 and words in logged_reason(server, err.value.message), op


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_text_and_binary_bodies(server, protocol):
    with client_for(server, protocol) as client:
        # text/plain with a charset: the predictor gets str, returns str -> text back.
        body, ctype = client.predict_raw(
            "behaviour", "café".encode("latin-1"), "text/plain; charset=latin-1", query_params={"op": "text"}
        )
        assert (body.decode(), ctype) == ("plain text: café", "text/plain; charset=utf-8")
        # Any other content type: raw bytes in, bytes out (NUL and 0xff survive).
        raw = bytes(range(256)) + b"\x00tail"
        body, ctype = client.predict_raw("behaviour", raw, "application/octet-stream", query_params={"op": "bytes"})
        assert body == bytes(reversed(raw)) and ctype == "application/octet-stream"
        assert client.predict("behaviour", "just text", query_params={"op": "type"}) == {
            "type": "str",
            "value": "just text",
        }


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_python_path_env_relative_files_and_post_predict(server, protocol):
    with client_for(server, protocol) as client:
        client.predict("behaviour", {}, query_params={"op": "post_fail"})  # post_predict raises: answer unaffected
        assert client.predict("behaviour", {}, query_params={"op": "post_fail"}) == {"post": "will fail"}
        info = client.predict("behaviour", {}, query_params={"op": "info"})
        # post_predict runs in the background after the response (as in Cortex): give it a moment.
        deadline = time.monotonic() + 10
        while True:
            info2 = client.predict("behaviour", {}, query_params={"op": "info"})
            if info2["post_predicted"][-1:] == ["info"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert info["env"] == "set-by-spec"
    assert info["shout"] == "OK"
    assert info["cwd_has_data"] is True
    assert info["labels"] == info["module_labels"] == ["setosa", "versicolor", "virginica"]
    assert info2["post_predicted"][-1] == "info"  # post_predict ran for the previous request
    assert "post_fail" not in info2["post_predicted"]


def test_plain_http_request_without_tritonclient(server):
    """The README's curl example, sent with urllib: KServe v2 JSON, shape [1, 1], parameters."""
    request = {
        "parameters": {"op": "type", "content_type": "text/plain"},
        "inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": ["hi there"]}],
    }
    req = urllib.request.Request(
        f"http://{server.http_url}/v2/models/behaviour/infer", data=json.dumps(request).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        doc = json.load(response)
    outputs = {o["name"]: o["data"][0] for o in doc["outputs"]}
    assert json.loads(outputs["response"]) == {"type": "str", "value": "hi there"}
    assert outputs["content_type"] == "application/json"
    bad = dict(request, parameters={"op": "type"})  # "hi there" is not JSON -> 400
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(
            urllib.request.Request(
                f"http://{server.http_url}/v2/models/behaviour/infer", data=json.dumps(bad).encode(), method="POST"
            )
        )
    assert err.value.code == 400
    assert "malformed JSON" in json.load(err.value)["error"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_raw_tritonclient_without_tritonize(server, protocol):
    if protocol == "http":
        import tritonclient.http as tc

        client = tc.InferenceServerClient(server.http_url)
    else:
        import tritonclient.grpc as tc

        client = tc.InferenceServerClient(server.grpc_url)
    inp = tc.InferInput("payload", [1, 1], "BYTES")
    inp.set_data_from_numpy(np.array([[json.dumps({"raw": True}).encode()]], dtype=np.object_))
    result = client.infer("echo", [inp], parameters={"k": "v"}, headers={"x-team": "ml"})
    out = json.loads(result.as_numpy("response")[0, 0])
    assert out["payload"] == {"raw": True} and out["query_params"] == {"k": "v"}
    assert out["headers"]["x-team"] == "ml"
    assert result.as_numpy("content_type")[0, 0] == b"application/json"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_predict_command(server, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    ok = run_tritonize(
        "predict",
        "echo",
        "--data",
        '{"a": 1}',
        "--param",
        "q=7",
        "--header",
        "X-Id=9",
        "--protocol",
        protocol,
        "--url",
        url,
    )
    out = json.loads(ok.stdout)
    assert out["payload"] == {"a": 1} and out["query_params"] == {"q": "7"} and out["headers"]["x-id"] == "9"
    bad = run_tritonize("predict", "behaviour", "--data", "{nope", "--protocol", protocol, "--url", url, check=False)
    assert bad.returncode != 0
    assert "[400]" in bad.stderr and "malformed JSON" in bad.stderr


def test_unknown_api_is_404(server):
    with Client(server.http_url) as client:
        with pytest.raises(PredictError) as err:
            client.predict("nope", {})
    assert err.value.status in (400, 404)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_project_module_named_model_and_numpy_results(server, protocol):
    features = [5.1, 3.5, 1.4, 0.2]
    with client_for(server, protocol) as client:
        out = client.predict("iris", {"features": features})
    weights = np.random.default_rng(7).normal(size=(4, 3)).astype(np.float32)
    expected = np.asarray(features, dtype=np.float32) @ weights
    assert np.allclose(out["scores"], expected, atol=1e-5)
    assert out["label"] == ["setosa", "versicolor", "virginica"][int(np.argmax(expected))]
    assert out["best"] == pytest.approx(float(expected.max()), abs=1e-5)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_perf_analyzer_with_a_json_input_file(server, protocol, tmp_path):
    from tritonize.client.perf_analyzer import perf_analyzer_binary, perf_analyzer_environment

    data = tmp_path / "input.json"
    # perf_analyzer adds the batch dimension itself: the per-request shape is [1].
    data.write_text(
        json.dumps({"data": [{"payload": {"content": ['{"features": [5.1, 3.5, 1.4, 0.2]}'], "shape": [1]}}]})
    )
    url = server.http_url if protocol == "http" else server.grpc_url
    csv = tmp_path / "pa.csv"
    result = subprocess.run(
        [
            perf_analyzer_binary(),
            "-m",
            "iris",
            "-u",
            url,
            "-i",
            protocol,
            "--input-data",
            str(data),
            "--concurrency-range",
            "2",
            "--measurement-mode",
            "count_windows",
            "--measurement-request-count",
            "100",
            # Checks the wire contract, not speed: accept noisy windows on a busy 2-core machine.
            "--max-trials",
            "10",
            "--stability-percentage",
            "500",
            "-f",
            str(csv),
            "-H",
            f"{'triton-grpc-protocol-' if protocol == 'grpc' else ''}tritonize-admin-token:{ADMIN_TOKEN}",
        ],
        env=perf_analyzer_environment(str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    header, row = csv.read_text().splitlines()[:2]
    throughput = float(dict(zip(header.split(","), row.split(",")))["Inferences/Second"])
    assert throughput > 10


@pytest.mark.parametrize("protocol, engine", [("http", "builtin"), ("grpc", "builtin"), ("http", "perf_analyzer")])
def test_bench_command(server, protocol, engine):
    url = server.http_url if protocol == "http" else server.grpc_url
    result = run_tritonize(
        "bench",
        "echo",
        "--data",
        '{"x": 1}',
        "--concurrency",
        "1,4",
        "--duration",
        "1s",
        "--protocol",
        protocol,
        "--url",
        url,
        "--http-url",
        server.http_url,
        "--engine",
        engine,
        "--json",
        env=dict(os.environ, TRITONIZE_ADMIN_TOKEN=ADMIN_TOKEN),
    )
    report = json.loads(result.stdout)
    assert report["engine"] == engine
    assert [r["concurrency"] for r in report["results"]] == [1, 4]
    for row in report["results"]:
        assert row["errors"] == 0 and row["throughput"] > 20, row
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] < 1000, row


def test_bench_counts_errors_and_table_output(server):
    # op=raise makes every request fail: the builtin engine reports errors instead of crashing.
    result = run_tritonize(
        "bench",
        "behaviour",
        "--data",
        "{}",
        "--param",
        "op=raise",
        "--concurrency",
        "2",
        "--duration",
        "0.5s",
        "--url",
        server.http_url,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "engine: builtin"  # query params: perf_analyzer cannot send them
    assert lines[1].split() == ["concurrency", "req/s", "p50", "ms", "p90", "ms", "p99", "ms", "errors"]
    assert int(lines[2].split()[-1]) > 0
    assert "HTTP 500" in result.stdout and "internal server error (error id" in result.stdout
