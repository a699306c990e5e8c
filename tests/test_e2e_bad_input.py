"""End to end on real Triton: a table of bad requests, over HTTP and gRPC, to a plain and a streaming API.

Each row must get the expected status and a message a user can act on, and the
server must keep answering good requests afterwards. Every row that a streaming API can
be sent also runs against one (robust-stream: the same predictor, yielding its answer);
a stream must always end (an answer and the final flag), never hang.
"""

import json
import os
import queue
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize import Client, PredictError
from tritonize.adapter.runtime.stream_errors import stream_error_status
from tritonize.client.client import _status_of

pytestmark = pytest.mark.e2e
MAX_BODY = 64 * 1024
# A stream that has not ended by then hangs (the bug this table guards against).
STREAM_TIMEOUT_S = 30
STREAMING_APIS = """
- name: robust-stream
  predictor:
    type: python
    path: stream_predictor.py
- name: batchy-stream
  predictor:
    type: python
    path: batch_stream_predictor.py
    server_side_batching:
      max_batch_size: 16
      batch_interval: 2ms
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("bad_input")
    shutil.copytree(os.path.join(FIXTURES, "robust"), work / "project")
    with open(work / "project" / "cortex.yaml", "a") as spec:
        spec.write(STREAMING_APIS)
    repo = work / "model_repository"
    run_tritonize("build", str(work / "project" / "cortex.yaml"), "-o", str(repo))
    assert "decoupled: true" in (repo / "robust-stream" / "config.pbtxt").read_text()
    serve = ServeProcess(str(repo), extra_args=["--max-body-size", "64k"])
    assert serve.wait_ready(), serve.output()
    yield serve
    assert serve.stop() == 0, serve.output()


class Call(NamedTuple):
    """How a row is sent: to the plain API, and to its streaming twin (None: a stream cannot carry it)."""

    plain: Callable[[Any, str], tuple]
    stream: Callable[[Any, str], tuple] | None = None
    stream_protocols: tuple = ("http", "grpc")


def _stream_api(api):
    return {"robust": "robust-stream", "batchy": "batchy-stream"}.get(api, api)


def predict(body, content_type=None, params=None, headers=None, api="robust"):
    """A row that goes through tritonize.Client (the wire contract)."""

    def call(server, protocol):
        url = server.http_url if protocol == "http" else server.grpc_url
        with Client(url, protocol=protocol) as client:
            try:
                return 200, client.predict_raw(api, body, content_type, params, headers)[0].decode("utf-8", "replace")
            except PredictError as exc:
                return exc.status, exc.message

    def stream(server, protocol):
        url = server.http_url if protocol == "http" else server.grpc_url
        with Client(url, protocol=protocol, timeout_s=STREAM_TIMEOUT_S) as client:
            try:
                chunks = client.stream_raw(_stream_api(api), body, content_type, params, headers)
                return 200, b"".join(chunk for chunk, _ in chunks).decode("utf-8", "replace")
            except PredictError as exc:
                return exc.status, exc.message

    try:
        body.decode("utf-8")
        text = True
    except UnicodeDecodeError:
        text = False
    # Triton's generate_stream (HTTP) carries text bodies only and forwards no headers.
    return Call(call, stream, ("http", "grpc") if text and not headers else ("grpc",))


def _grpc_stream_infer(server, model, inputs, version="", params=None, headers=None):
    """One request on a gRPC stream -> (status, message): 200 once the final flag came, else the error."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.grpc_url)
    answers = queue.SimpleQueue()
    client.start_stream(lambda result, error: answers.put((result, error)), headers=headers)
    try:
        client.async_stream_infer(
            model, inputs, model_version=version, parameters=params, enable_empty_final_response=True
        )
        while True:
            try:
                result, error = answers.get(timeout=STREAM_TIMEOUT_S)
            except queue.Empty:
                return 504, f"the stream did not end within {STREAM_TIMEOUT_S} s (no answer, no final flag)"
            if error is not None:
                return stream_error_status(error.message())
            final = result.get_response().parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                return 200, ""
    finally:
        client.stop_stream(cancel_requests=True)
        client.close()


def tensors(*specs, model="robust", version="", params=None, headers=None):
    """A row that sends raw tensors: specs are (name, datatype, numpy array)."""

    def build_inputs(module):
        inputs = []
        for name, datatype, array in specs:
            tensor = module.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        return inputs

    def call(server, protocol):
        import tritonclient.grpc as grpcclient
        import tritonclient.http as httpclient

        module = httpclient if protocol == "http" else grpcclient
        client = module.InferenceServerClient(server.http_url if protocol == "http" else server.grpc_url)
        try:
            client.infer(model, build_inputs(module), model_version=version, parameters=params, headers=headers)
            return 200, ""
        except module.InferenceServerException as exc:
            return _status_of(exc), exc.message()
        finally:
            client.close()

    def stream(server, protocol):
        import tritonclient.grpc as grpcclient

        return _grpc_stream_infer(server, _stream_api(model), build_inputs(grpcclient), version, params, headers)

    # Typed APIs do not stream; Triton streams decoupled models over gRPC only (generate_stream takes no tensors).
    return Call(call, None if model == "typed" else stream, ("grpc",))


def _http_post(url, document, headers):
    request = urllib.request.Request(url, data=document, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=STREAM_TIMEOUT_S) as response:
            return response.status, response.read().decode(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:  # generate_stream may answer an error status with events
        return exc.code, exc.read().decode(), exc.headers.get("Content-Type", "")


def raw_http(document, headers=None, stream_document=None):
    """An HTTP-only row: a KServe request body as bytes (gRPC cannot express it), headers as raw bytes;
    stream_document: the same request as a generate_stream body."""

    def call(server, protocol):
        status, text, _ = _http_post(f"http://{server.http_url}/v2/models/robust/infer", document, headers)
        return status, (json.loads(text)["error"] if status >= 400 else text)

    def stream(server, protocol):
        url = f"http://{server.http_url}/v2/models/robust-stream/generate_stream"
        status, text, content_type = _http_post(url, stream_document, headers)
        if "event-stream" not in content_type:
            return status, (json.loads(text)["error"] if status >= 400 else text)
        for line in text.splitlines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if "error" in event:
                    return stream_error_status(event["error"])
        return status, text

    return Call(call, None if stream_document is None else stream, ("http",))


def body_tensor(body=b"{}"):
    array = np.empty((1, 1), dtype=np.object_)
    array[0, 0] = body
    return array


PAYLOAD = ("payload", "BYTES", body_tensor())
GOOD_KSERVE = {"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": ["{}"]}

INTERNAL = ["internal server error", "error id"]
GOOD_DOCUMENT = json.dumps({"inputs": [GOOD_KSERVE]}).encode()

# id, protocols, request, expected status, words the message must contain
ROWS = [
    ("malformed-json", "both", predict(b'{"x": [1, 2'), 400, ["malformed JSON", "line 1 column"]),
    ("empty-body", "both", predict(b""), 400, ["empty request body", "content_type"]),
    ("unknown-charset", "both", predict(b"hi", "text/plain; charset=klingon"), 400, ["unknown charset 'klingon'"]),
    ("binary-declared-json", "both", predict(b"\xff\x00\xfe", "application/json"), 400, ["JSON"]),
    ("non-utf8-text", "both", predict(b"caf\xe9", "text/plain"), 400, ["not valid utf-8 text"]),
    (
        "body-over-limit",
        "both",
        predict(b'"' + b"x" * (MAX_BODY + 10) + b'"'),
        400,
        ["request body too large", f"at most {MAX_BODY}", "--max-body-size"],
    ),
    ("no-input-tensor", "both", tensors(), 400, ["expected 1 inputs but got 0"]),
    (
        "unknown-input-tensor",
        "both",
        tensors(("wrong", "BYTES", body_tensor())),
        400,
        ["unexpected inference input 'wrong'"],
    ),
    (
        "extra-input-tensor",
        "both",
        tensors(PAYLOAD, ("extra", "BYTES", body_tensor())),
        400,
        ["expected 1 inputs but got 2", "'extra'"],
    ),
    (
        "payload-not-bytes",
        "both",
        tensors(("payload", "INT32", np.ones((1, 1), np.int32))),
        400,
        ["data-type is 'INT32'", "expects 'BYTES'"],
    ),
    (
        "typed-wrong-dtype",
        "both",
        tensors(("x", "INT32", np.ones((1, 4), np.int32)), model="typed"),
        400,
        ["data-type is 'INT32'", "expects 'FP32'"],
    ),
    (
        "typed-wrong-shape",
        "both",
        tensors(("x", "FP32", np.ones((1, 3), np.float32)), model="typed"),
        400,
        ["Expected [-1,4], got [1,3]"],
    ),
    ("unknown-api", "both", predict(b"{}", api="nope"), 404, ["unknown model: 'nope'"]),
    ("unknown-version", "both", tensors(PAYLOAD, version="7"), 404, ["'robust' version 7 is not found"]),
    (
        "nested-parameter",
        "http",
        raw_http(
            json.dumps({"inputs": [GOOD_KSERVE], "parameters": {"a": {"b": 1}}}).encode(),
            stream_document=json.dumps({"payload": "{}", "parameters": {"a": {"b": 1}}}).encode(),
        ),
        400,
        ["parameter 'a' has invalid type"],
    ),
    (
        "too-many-parameters",
        "both",
        predict(b"{}", params={f"p{i}": "v" for i in range(3000)}),
        400,
        ["too many query parameters", "at most 1000"],
    ),
    ("deep-json", "both", predict(b"[" * 5000 + b"]" * 5000), 400, ["nested too deeply"]),
    ("charset-undefined", "both", predict(b"hi", "text/plain; charset=undefined"), 400, ["cannot decode"]),
    ("non-utf8-header", "http", raw_http(GOOD_DOCUMENT, {"X-Bad": b"caf\xe9"}), 400, ["not valid UTF-8"]),
    (
        "lone-surrogate-parameter",  # Triton hands it over as invalid UTF-8
        "http",
        raw_http(
            json.dumps({"inputs": [GOOD_KSERVE], "parameters": {"a": "\udcff"}}).encode(),
            stream_document=json.dumps({"payload": "{}", "parameters": {"a": "\udcff"}}).encode(),
        ),
        400,
        ["not valid UTF-8"],
    ),
    (
        "non-utf8-binary-metadata",
        "grpc",
        tensors(PAYLOAD, headers={"x-bad-bin": b"\xff\xfe"}),
        400,
        ["not valid UTF-8"],
    ),
    (
        "malformed-multipart",
        "both",
        predict(b"--B\r\nno end", "multipart/form-data; boundary=B"),
        400,
        ["malformed multipart form"],
    ),
    # Failures of predictor code: Cortex's plain 500, an error id, nothing of the exception (see the log test).
    ("returns-a-set", "both", predict(b"{}", params={"op": "set"}), 500, INTERNAL),
    ("returns-nan", "both", predict(b"{}", params={"op": "nan"}), 500, INTERNAL),
    ("response-3xx", "both", predict(b"{}", params={"op": "status", "code": "302"}), 500, INTERNAL),
    ("response-1xx", "both", predict(b"{}", params={"op": "status", "code": "101"}), 500, INTERNAL),
    ("predictor-raises", "both", predict(b"{}", params={"op": "nope"}), 500, INTERNAL),
    ("returns-lone-surrogate", "both", predict(b"{}", params={"op": "surrogate-text"}), 500, INTERNAL),
    ("raises-with-surrogate", "both", predict(b"{}", params={"op": "surrogate-raise"}), 500, INTERNAL),
    ("system-exit", "both", predict(b"{}", params={"op": "system-exit"}), 500, INTERNAL),
    ("keyboard-interrupt", "both", predict(b"{}", params={"op": "keyboard-interrupt"}), 500, INTERNAL),
    ("base-exception", "both", predict(b"{}", params={"op": "base-exception"}), 500, INTERNAL),
    # Triton itself parses the KServe envelope, and answers 500 for a broken one (2.51).
    (
        "broken-kserve-envelope",
        "http",
        raw_http(b'{"inputs": [}', stream_document=b'{"payload": }'),
        500,
        ["failed to parse the request JSON"],
    ),
]
CASES = [
    pytest.param(protocol, *row[2:], id=f"{row[0]}-{protocol}")
    for row in ROWS
    for protocol in ("http", "grpc")
    if row[1] in ("both", protocol)
]
STREAM_CASES = [
    pytest.param(protocol, *row[2:], id=f"{row[0]}-{protocol}-stream")
    for row in ROWS
    for protocol in ("http", "grpc")
    if row[1] in ("both", protocol) and row[2].stream is not None and protocol in row[2].stream_protocols
]


def check_answer(server, protocol, got_status, message, status, words, api):
    assert got_status == status, message
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    assert "Traceback" not in message and ".py" not in message and "secret" not in message, message
    url = server.http_url if protocol == "http" else server.grpc_url
    with Client(url, protocol=protocol, timeout_s=STREAM_TIMEOUT_S) as client:
        if api == "robust":
            assert client.predict("robust", {"still": "up"})["payload"] == {"still": "up"}
        else:
            assert [chunk["payload"] for chunk in client.stream(api, {"still": "up"})] == [{"still": "up"}]


@pytest.mark.parametrize("protocol,request_call,status,words", CASES)
def test_bad_request_gets_a_clear_answer_and_the_server_stays_up(server, protocol, request_call, status, words):
    got_status, message = request_call.plain(server, protocol)
    check_answer(server, protocol, got_status, message, status, words, "robust")


@pytest.mark.parametrize("protocol,request_call,status,words", STREAM_CASES)
def test_bad_request_to_a_streaming_api_ends_its_stream_with_a_clear_answer(
    server, protocol, request_call, status, words
):
    got_status, message = request_call.stream(server, protocol)
    # Triton's own messages name the model the request was for.
    words = [word.replace("'robust'", "'robust-stream'") for word in words]
    check_answer(server, protocol, got_status, message, status, words, "robust-stream")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_non_string_parameters_arrive_as_strings(server, protocol):
    params = {"n": 3, "flag": True} if protocol == "grpc" else {"n": 3, "flag": True, "ratio": 0.5}
    if protocol == "http":
        document = json.dumps({"inputs": [GOOD_KSERVE], "parameters": params}).encode()
        status, text = raw_http(document).plain(server, protocol)
        out = json.loads(json.loads(text)["outputs"][0]["data"][0])
    else:
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(server.grpc_url)
        result = client.infer(
            "robust",
            [grpcclient.InferInput("payload", [1, 1], "BYTES").set_data_from_numpy(body_tensor())],
            parameters=params,
        )
        client.close()
        out = json.loads(result.as_numpy("response").reshape(-1)[0])
    expected = {"n": "3", "flag": "true"} | ({"ratio": "0.5"} if protocol == "http" else {})
    assert out["query_params"] == expected


def test_the_table_is_big_enough():
    assert len([r for r in ROWS if r[1] == "both"]) >= 15 and len(CASES) >= 30 and len(STREAM_CASES) >= 30


def test_a_500_names_an_error_id_that_the_log_has_with_the_traceback(server):
    import time

    status, message = predict(b"{}", params={"op": "nope"}).plain(server, "http")
    assert status == 500 and message.startswith("internal server error (error id ")
    error_id = message.split("error id ")[1].split(")")[0]
    deadline = time.monotonic() + 10
    while f"[error id {error_id}]" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.output()
    after = log[log.index(f"[error id {error_id}]") :]
    line = after.splitlines()[0]
    assert "ValueError: unknown op 'nope'" in after
    if "traceback as logged for error id " in line:  # the same failure earlier in the window: logged once
        first = line.split("traceback as logged for error id ")[1].rstrip(")")
        after = log[log.index(f"[error id {first}]") :]
    assert "Traceback" in after and "ValueError: unknown op 'nope'" in after


@pytest.mark.parametrize("api", ["batchy", "batchy-stream"])
def test_hostile_requests_in_a_server_side_batch_fail_alone(server, api):
    """batchy batches requests; each hostile one gets its own 400, its batch-mates their answers."""
    from concurrent.futures import ThreadPoolExecutor

    hostile = {
        3: dict(body=b"[" * 5000 + b"]" * 5000),
        6: dict(body=b"x", content_type="text/plain; charset=undefined"),
        9: dict(body=b"{}", headers={"x-bad-bin": b"\xff"}),
    }

    def send(i):
        case = hostile.get(i, dict(body=json.dumps({"i": i}).encode()))
        with Client(server.grpc_url, protocol="grpc", timeout_s=STREAM_TIMEOUT_S) as client:
            args = (api, case["body"], case.get("content_type"), None, case.get("headers"))
            try:
                if api == "batchy":
                    body, _ = client.predict_raw(*args)
                else:
                    ((body, _),) = list(client.stream_raw(*args))
                return 200, json.loads(body)
            except PredictError as exc:
                return exc.status, exc.message

    for _ in range(3):
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(send, range(12)))
        for i, (status, answer) in enumerate(answers):
            if i in hostile:
                assert status == 400, (i, answer)
            else:
                assert status == 200 and answer["i"] == i, (i, answer)
