"""End to end on real Triton: the rest of Cortex's predictor contract.

metrics_client on Triton's /metrics, post_predict in the background (per request, own
item with batching, typed tensors too), multi-valued query params and headers,
form payloads, --forward-sensitive-headers alone, --debug-errors.
"""

import http.client
import json
import os
import re
import shutil
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize import Client, PredictError

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("contract")
    shutil.copytree(os.path.join(FIXTURES, "contract"), work / "project")
    post_log = work / "post"
    post_log.mkdir()
    spec = work / "project" / "cortex.yaml"
    spec.write_text(spec.read_text().replace("POST_PREDICT_LOG", str(post_log)))
    repo = work / "model_repository"
    run_tritonize("build", str(spec), "-o", str(repo))
    serve = ServeProcess(str(repo), extra_args=["--forward-sensitive-headers", "--debug-errors"])
    assert serve.wait_ready(), serve.output()
    serve.post_log = post_log
    yield serve
    assert serve.stop() == 0, serve.output()


def url(server, protocol):
    return server.http_url if protocol == "http" else server.grpc_url


def metric_samples(server, name):
    """{frozenset of labels: value} of one metric on Triton's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    samples = {}
    for labels, value in re.findall(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
        samples[frozenset(re.findall(r'(\w+)="([^"]*)"', labels))] = float(value)
    return samples


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    return condition()


def test_metrics_client_counter_gauge_and_histogram_on_triton_metrics(server):
    for i, protocol in enumerate(["http"] * 5 + ["grpc"] * 3):
        with Client(url(server, protocol), protocol=protocol) as client:
            assert client.predict("contract", {}, query_params={"op": "metrics", "n": i}) == {"ok": True}
    labels = frozenset({("api", "contract"), ("route", "metrics")})
    assert wait_for(lambda: metric_samples(server, "contract_requests").get(labels) == 8), metric_samples(
        server, "contract_requests"
    )
    assert metric_samples(server, "contract_last_n")[labels] == 7
    assert metric_samples(server, "contract_latency_ms_count")[frozenset({("api", "contract")})] == 8
    buckets = metric_samples(server, "contract_latency_ms_bucket")
    assert buckets[frozenset({("api", "contract"), ("le", "10")})] == 0
    assert buckets[frozenset({("api", "contract"), ("le", "25")})] == 8


def test_a_reserved_metric_name_is_a_clear_error(server):
    with Client(server.http_url) as client, pytest.raises(PredictError) as err:
        client.predict("contract", {}, query_params={"op": "bad-metric"})
    assert err.value.status == 500 and "reserved prefix" in err.value.message  # --debug-errors shows the text
    with Client(server.http_url) as client:
        assert client.predict("contract", {"still": "up"})["payload"] == {"still": "up"}


def read_post(server, tag, timeout=10.0):
    path = server.post_log / f"{tag}.json"
    assert wait_for(path.exists, timeout), f"post_predict never wrote {path}"
    return json.loads(path.read_text())


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_post_predict_sleeping_1s_does_not_slow_the_response(server, protocol):
    with Client(url(server, protocol), protocol=protocol) as client:
        started = time.time()
        out = client.predict("contract", {"a": 1}, query_params={"post": "sleep", "tag": f"slow-{protocol}"})
        elapsed = time.time() - started
        assert out["payload"] == {"a": 1} and elapsed < 0.8, elapsed
        record = read_post(server, f"slow-{protocol}")
        assert record["response"] == out and record["payload"] == {"a": 1} and record["time"] >= started + 1.0
        # post_predict raising SystemExit: logged, the worker and the server go on.
        client.predict("contract", {}, query_params={"post": "raise"})
        client.predict("contract", {"b": 2}, query_params={"tag": f"after-{protocol}"})
        assert read_post(server, f"after-{protocol}")["payload"] == {"b": 2}


def test_post_predict_with_batching_receives_each_requests_own_item(server):
    def send(i):
        with Client(server.grpc_url, protocol="grpc") as client:
            return client.predict("contract-batched", {"k": i}, query_params={"tag": f"batched-{i}"})

    with ThreadPoolExecutor(6) as pool:
        outs = list(pool.map(send, range(6)))
    assert max(out["batch_size"] for out in outs) > 1  # they did share predict() calls
    for i, out in enumerate(outs):
        record = read_post(server, f"batched-{i}")
        assert record["payload"] == {"k": i} and record["response"] == out and out["payload"] == {"k": i}


def test_post_predict_on_a_typed_api_gets_its_own_tensors(server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    tensor = httpclient.InferInput("x", [1, 2], "FP32")
    tensor.set_data_from_numpy(np.array([[1.5, 2.0]], np.float32))
    result = client.infer("contract-typed", [tensor], parameters={"tritonize_query": "tag=t1"})
    client.close()
    assert result.as_numpy("y").tolist() == [[3.5]]
    assert read_post(server, "typed-t1") == {"y": [[3.5]], "x": [[1.5, 2.0]]}


QUERY = [
    ("q", "1"),
    ("q", "2"),
    ("timeout", "5"),
    ("priority", "x"),
    ("sequence_id", "abc"),
    ("sequence_start", "maybe"),
    ("binary_data_output", "y"),
    ("x-looks-like-a-header", "v"),
]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_repeated_and_reserved_query_params_reach_query_params(server, protocol):
    with Client(url(server, protocol), protocol=protocol) as client:
        out = client.predict("contract", {}, query_params=QUERY, headers={"Authorization": "Bearer s"})
    assert [tuple(pair) for pair in out["query"]] == QUERY and out["q_all"] == ["1", "2"]
    assert out["auth"] == "Bearer s"  # --forward-sensitive-headers alone (default pattern ^x-) forwards it


def kserve_document(body=b"{}"):
    return json.dumps(
        {
            "inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": [body.decode()]}],
            "outputs": [{"name": "response", "parameters": {"binary_data": False}}],
        }
    ).encode()


def test_repeated_header_lines_reach_getlist_over_http(server):
    connection = http.client.HTTPConnection(server.http_url, timeout=30)
    connection.putrequest("POST", "/v2/models/contract/infer")
    document = kserve_document()
    for value in ("10.0.0.1", "10.0.0.2"):
        connection.putheader("X-Forwarded-For", value)
    connection.putheader("Content-Length", str(len(document)))
    connection.endheaders(document)
    response = connection.getresponse()
    reply = json.loads(response.read())
    connection.close()
    assert response.status == 200, reply
    out = json.loads(reply["outputs"][0]["data"][0])
    assert out["xff"] == ["10.0.0.1", "10.0.0.2"] and out["x_first"] == "10.0.0.1"


def test_repeated_metadata_reaches_getlist_over_grpc(server):
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc_url)
    request = service_pb2.ModelInferRequest(model_name="contract")
    tensor = request.inputs.add(name="payload", datatype="BYTES", shape=[1, 1])
    tensor.contents.bytes_contents.append(b"{}")
    metadata = [("x-tag", "a"), ("x-tag", "b"), ("x-forwarded-for", "10.0.0.1"), ("x-forwarded-for", "10.0.0.2")]
    reply = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, metadata=metadata, timeout=30)
    channel.close()
    out = json.loads(reply.raw_output_contents[0][4:])
    assert out["x_tag"] == ["a", "b"]
    # gRPC core itself keeps only the last x-forwarded-for (a singleton header to it): nothing to forward.
    assert out["xff"] == ["10.0.0.2"]


BOUNDARY = "tritonizeBoundary7"
MULTIPART = (
    (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="label"\r\n\r\ncat\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="cat.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    + b"\x00\xffbinary\r\n"
    + f"--{BOUNDARY}--\r\n".encode()
)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_form_payloads(server, protocol):
    with Client(url(server, protocol), protocol=protocol) as client:
        body, _ = client.predict_raw("contract", MULTIPART, f"multipart/form-data; boundary={BOUNDARY}")
        form = json.loads(body)["payload"]
        assert form == {
            "label": "cat",
            "image": {"filename": "cat.bin", "data": "\x00\xffbinary", "content_type": "application/octet-stream"},
        }
        body, _ = client.predict_raw("contract", b"a=1&b=%C3%A9", "application/x-www-form-urlencoded")
        assert json.loads(body)["payload"] == {"a": "1", "b": "é"}
        with pytest.raises(PredictError) as err:
            client.predict_raw("contract", MULTIPART[:-10], f"multipart/form-data; boundary={BOUNDARY}")
        assert err.value.status == 400 and "closing boundary is missing" in err.value.message


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_predict_sends_repeated_params_and_headers(server, protocol):
    result = run_tritonize(
        "predict", "contract", "--protocol", protocol, "--url", url(server, protocol), "--data", "{}",
        "--param", "q=1", "--param", "q=2", "--header", "X-Tag=a", "--header", "X-Tag=b",
    )  # fmt: skip
    out = json.loads(result.stdout)
    assert out["q_all"] == ["1", "2"]
    # gRPC metadata repeats a name; tritonclient's HTTP client sends one line per name: joined.
    assert out["x_tag"] == (["a", "b"] if protocol == "grpc" else ["a, b"])
