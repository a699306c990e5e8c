"""End to end on real Triton: the Cortex endpoint (POST /<api>), called as Cortex clients call it.

Plain `requests.post` / raw sockets against `tritonize serve`'s --cortex-port; the bad-input
table of tests/test_e2e_bad_input.py is replayed through it.
"""

import gzip
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import requests
import test_e2e_bad_input as bad_input
from conftest import FIXTURES, ServeProcess, free_ports, run_tritonize

pytestmark = pytest.mark.e2e
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BODY = bad_input.MAX_BODY
SUMMARY = {"message": "make a prediction by sending a post request to this endpoint with a json payload"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("cortex_front")
    project = work / "project"
    shutil.copytree(os.path.join(FIXTURES, "cortex_front"), project)
    shutil.copy(os.path.join(FIXTURES, "robust", "robust_predictor.py"), project)
    shutil.copy(os.path.join(FIXTURES, "robust", "typed_predictor.py"), project)
    repo = work / "model_repository"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    run_tritonize("build", os.path.join(ROOT, "examples", "echo", "cortex.yaml"), "-o", str(work / "echo_repo"))
    shutil.copytree(work / "echo_repo" / "echo", repo / "echo")
    pure = os.path.join(ROOT, "benchmarks", "projects", "echo", "predictor.py")  # returns the payload as is
    run_tritonize("build", pure, "-o", str(work / "pure_repo"), "--name", "pure")
    shutil.copytree(work / "pure_repo" / "pure", repo / "pure")
    iris = work / "iris"  # Cortex's iris classifier, trained here (scikit-learn, a second)
    shutil.copytree(os.path.join(ROOT, "examples", "iris"), iris, ignore=shutil.ignore_patterns("model.pkl"))
    subprocess.run([sys.executable, str(iris / "train.py"), str(iris / "model.pkl")], check=True, capture_output=True)
    run_tritonize("build", str(iris / "cortex.yaml"), "-o", str(work / "iris_repo"))
    shutil.copytree(work / "iris_repo" / "iris-classifier", repo / "iris-classifier")
    # A streaming API (a predict() that yields): a decoupled model answered from Triton's gRPC stream.
    stream = os.path.join(FIXTURES, "cortex_stream", "stream_predictor.py")
    run_tritonize("build", stream, "-o", str(work / "stream_repo"), "--name", "stream")
    shutil.copytree(work / "stream_repo" / "stream", repo / "stream")
    (cortex_port,) = free_ports(1)
    serve = ServeProcess(str(repo), extra_args=["--max-body-size", "64k", "--cortex-port", str(cortex_port)])
    serve.cortex = f"http://127.0.0.1:{cortex_port}"
    serve.cortex_port = cortex_port
    serve.repo = repo
    assert serve.wait_ready(), serve.output()
    _wait_listening(cortex_port, serve)
    yield serve
    assert serve.stop() == 0, serve.output()
    with pytest.raises(OSError):  # stopped with the server
        socket.create_connection(("127.0.0.1", cortex_port), timeout=1).close()


def _wait_listening(port, serve, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(serve.output())


def test_example_sample_json_as_cortex_documented(server):
    with open(os.path.join(ROOT, "examples", "echo", "sample.json"), "rb") as f:
        sample = f.read()
    r = requests.post(f"{server.cortex}/echo", data=sample, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    # What examples/echo/README.md documents for `tritonize predict echo --data @sample.json`.
    assert r.json() == {
        "greeting": "hello from cortex.yaml",
        "payload": json.loads(sample),
        "query_params": {},
        "headers": {"content-type": "application/json"},
    }
    assert r.headers["access-control-allow-origin"] == "*"
    r = requests.post(f"{server.cortex}/echo?lang=en", json=json.loads(sample), headers={"X-Tenant": "acme"})
    assert (r.json()["query_params"], r.json()["headers"]["x-tenant"]) == ({"lang": "en"}, "acme")


def test_iris_sample_with_plain_requests_post(server):
    with open(os.path.join(ROOT, "examples", "iris", "sample.json")) as f:
        sample = json.load(f)
    r = requests.post(f"{server.cortex}/iris-classifier", json=sample)
    # Cortex's iris example: the predictor returns the label, a str -> text/plain.
    assert (r.status_code, r.headers["content-type"], r.text) == (200, "text/plain; charset=utf-8", "setosa")


def test_get_answers_with_cortex_message(server):
    r = requests.get(f"{server.cortex}/pure")
    assert (r.status_code, r.json()) == (200, SUMMARY)


def test_readiness_route_and_unknown_paths(server):
    assert requests.get(f"{server.cortex}/_tritonize/ready").status_code == 200
    assert requests.post(f"{server.cortex}/nope", json={}).status_code == 404
    # Triton's own routes are not proxied: the front never forwards a client's KServe envelope.
    assert requests.post(f"{server.cortex}/v2/models/pure/infer", json={}).status_code == 404


def test_typed_tensor_api_says_where_to_go(server):
    r = requests.post(f"{server.cortex}/typed", json={"x": [1, 2, 3, 4]})
    assert r.status_code == 400 and "/v2/models/typed/infer" in r.text


def test_networking_endpoint_and_api_name_both_answer(server):
    for path in ("/v1/classify", "/cortexish", "/v1/classify/"):
        r = requests.post(server.cortex + path, json={"a": 1})
        assert r.status_code == 200, r.text
        assert r.json()["payload"] == {"a": 1}


def test_query_params_repeated_keys_reserved_names_and_headers(server):
    r = requests.post(
        f"{server.cortex}/cortexish?model=a&model=b&timeout=5&priority=x&empty=&x-tenant=q",
        json={},
        headers={"X-Tenant": "acme", "Authorization": "Bearer secret", "X-Trace": "t1", "User-Agent": "ua"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    # A repeated key: query_params[key] is the last value, as starlette's.
    assert out["query_params"] == {"model": "b", "timeout": "5", "priority": "x", "empty": "", "x-tenant": "q"}
    assert out["headers"]["x-tenant"] == "acme" and out["headers"]["x-trace"] == "t1"
    assert "authorization" not in out["headers"] and "user-agent" not in out["headers"]  # pattern ^x- by default
    assert out["headers"]["content-type"] == "application/json"


def test_text_binary_and_form_bodies(server):
    r = requests.post(f"{server.cortex}/cortexish", data="héllo".encode(), headers={"Content-Type": "text/plain"})
    assert r.json()["payload"] == "héllo" and r.json()["type"] == "str"
    blob = bytes(range(256)) + b"\x00\x00"
    r = requests.post(f"{server.cortex}/cortexish", data=blob, headers={"Content-Type": "application/octet-stream"})
    assert r.json() == {**r.json(), "payload": blob.hex(), "type": "bytes"}
    r = requests.post(f"{server.cortex}/cortexish", data={"a": "1"})  # a form, as browsers send
    assert r.status_code == 200, r.text


def test_return_types_keep_their_content_type(server):
    r = requests.post(f"{server.cortex}/cortexish?return=text", json={})
    assert (r.status_code, r.headers["content-type"], r.text) == (200, "text/plain; charset=utf-8", "plain words")
    r = requests.post(f"{server.cortex}/cortexish?return=bytes", json={})
    assert (r.headers["content-type"], r.content) == ("application/octet-stream", b"\x00\x01binary\xff")
    r = requests.post(f"{server.cortex}/cortexish?return=csv", json={})
    assert (r.headers["content-type"], r.content) == ("text/csv; charset=utf-8", b"a,b\n1,2\n")


def test_json_response_400_is_the_predictors_own_body(server):
    r = requests.post(f"{server.cortex}/cortexish?return=json400", json={})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "bad thing", "field": "x"}


def test_predictor_exception_is_500_without_traceback(server):
    r = requests.post(f"{server.cortex}/cortexish?return=raise", json={})
    assert r.status_code == 500
    assert "Traceback" not in r.text and ".py" not in r.text


def test_oversized_body_is_413_before_triton_sees_it(server):
    r = requests.post(
        f"{server.cortex}/pure", data=b'"' + b"x" * (MAX_BODY + 10) + b'"', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and "at most 65536" in r.text
    # Without Content-Length (chunked), cut off while reading.
    r = requests.post(f"{server.cortex}/pure", data=iter([b"x" * 40000, b"x" * 40000]))
    assert r.status_code == 413


def test_gzip_bomb_is_refused_at_the_limit(server):
    bomb = gzip.compress(b"0" * (64 << 20))  # 64 MiB of zeros -> ~64 KB
    assert len(bomb) < 200_000
    r = requests.post(
        f"{server.cortex}/pure", data=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"}
    )
    assert r.status_code == 413
    small = gzip.compress(json.dumps({"zipped": True}).encode())
    r = requests.post(
        f"{server.cortex}/pure", data=small, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert (r.status_code, r.json()) == (200, {"zipped": True})
    r = requests.post(f"{server.cortex}/pure", data=b"x", headers={"Content-Encoding": "br"})
    assert r.status_code == 415


def test_nested_arrays_envelope_never_reaches_tritons_parser(server):
    # ~120 000 nested arrays: segfaults Triton 2.51's HTTP JSON parser when sent as a KServe envelope.
    body = b'{"inputs": [], "x": ' + b"[" * 120_000 + b"]" * 120_000 + b"}"
    r = requests.post(f"{server.cortex}/v2/models/pure/infer", data=body)
    assert r.status_code == 413  # the size limit comes first, on every path
    small = b'{"inputs": [], "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    assert requests.post(f"{server.cortex}/v2/models/pure/infer", data=small).status_code == 404
    r = requests.post(f"{server.cortex}/pure", data=body, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 413  # bigger than this server's 64k limit
    r = requests.post(
        f"{server.cortex}/pure",
        data=b"[" * 30_000 + b"]" * 30_000,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200 and len(r.content) == 60_000  # reached the predictor as bytes
    assert server.process.poll() is None
    assert requests.post(f"{server.cortex}/pure", json={"still": "up"}).json() == {"still": "up"}


def test_client_disconnect_leaves_the_front_serving(server):
    sock = socket.create_connection(("127.0.0.1", server.cortex_port))
    sock.sendall(
        b"POST /cortexish?return=sleep&s=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    sock.close()
    half = socket.create_connection(("127.0.0.1", server.cortex_port))  # a body that never comes
    half.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    half.close()
    r = requests.post(f"{server.cortex}/pure", json={"after": "disconnect"})
    assert r.json() == {"after": "disconnect"}


def test_streaming_api_is_chunked_and_cancelled_when_the_client_goes(server):
    r = requests.post(f"{server.cortex}/stream", json={"n": 3}, stream=True)
    assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert b"".join(r.iter_content(None)) == b"chunk 0\nchunk 1\nchunk 2\n"
    r = requests.post(f"{server.cortex}/stream", json={"fail": True})
    assert (r.status_code, r.text) == (422, "cannot stream that")
    marker = server.repo / "stream" / "1" / "cancelled"
    conn = http.client.HTTPConnection("127.0.0.1", server.cortex_port)
    conn.request(
        "POST", "/stream", body=json.dumps({"n": 100, "delay": 0.05}), headers={"Content-Type": "application/json"}
    )
    response = conn.getresponse()
    assert response.read1(64).startswith(b"chunk 0")
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the model never saw the cancellation"
    assert int(marker.read_text()) < 100


# The bad-input table, through the Cortex endpoint. Rows whose answer differs here, and why:
DIFFERENT = {
    "body-over-limit": (413, ["request body too large", "at most 65536"]),  # refused by the front, before Triton
    "unknown-api": (404, ["not found"]),  # the front's own 404
    # Query params travel in one parameter (tritonize_query): they cannot collide with headers.
    "header-collides-with-param": (200, []),
    "too-many-parameters": (400, ["too many query parameters", "at most 1000"]),
}


def _predict_rows():
    rows = []
    for row_id, _protocols, call, status, words in bad_input.ROWS:
        call = call.plain
        if call.__qualname__ != "predict.<locals>.call":
            continue  # KServe tensor/envelope rows: the front builds envelopes itself
        cells = dict(zip(call.__code__.co_freevars, (c.cell_contents for c in call.__closure__)))
        status, words = DIFFERENT.get(row_id, (status, words))
        rows.append(pytest.param(cells, status, words, id=row_id))
    return rows


@pytest.mark.parametrize("cells,status,words", _predict_rows())
def test_bad_input_table_through_the_cortex_endpoint(server, cells, status, words):
    headers = dict(cells["headers"] or {})
    if cells["content_type"]:
        headers["Content-Type"] = cells["content_type"]
    r = requests.post(f"{server.cortex}/{cells['api']}", data=cells["body"], params=cells["params"], headers=headers)
    assert r.status_code == status, r.text
    for word in words:
        assert word.lower() in r.text.lower(), (word, r.text)
    assert requests.post(f"{server.cortex}/robust", json={"still": "up"}).json()["payload"] == {"still": "up"}


def test_cortex_port_in_use_is_a_clear_error(tmp_path, server):
    result = run_tritonize("serve", str(server.repo), "--cortex-port", str(server.cortex_port), check=False)
    assert result.returncode != 0
    assert "cortex port" in result.stderr and "--cortex-port" in result.stderr


def _raw_exchange(server, data, read_until=b"", timeout=10):
    sock = socket.create_connection(("127.0.0.1", server.cortex_port), timeout=timeout)
    sock.sendall(data)
    got = b""
    while read_until not in got or not read_until:
        piece = sock.recv(65536)
        if not piece:
            break
        got += piece
        if read_until and read_until in got:
            break
    sock.close()
    return got


def test_http_details_pipelining_continue_head_and_limits(server):
    one = b'POST /pure HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"n":1}'
    two = one.replace(b'{"n":1}', b'{"n":2}').replace(b"Host: x", b"Host: x\r\nConnection: close")
    got = _raw_exchange(server, one + two)
    assert got.count(b"HTTP/1.1 200 OK") == 2 and got.index(b'{"n": 1}') < got.index(b'{"n": 2}')
    sock = socket.create_connection(("127.0.0.1", server.cortex_port), timeout=10)
    sock.sendall(
        b"POST /pure HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\n\r\n"
    )
    assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
    sock.sendall(b"{}")
    assert b"200 OK" in sock.recv(1000)
    sock.close()
    got = _raw_exchange(server, b"GET /pure HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 431")
    assert _raw_exchange(server, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    got = _raw_exchange(server, b"GET /pure?q=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 414")
    r = requests.head(f"{server.cortex}/pure")
    assert r.status_code == 200 and r.content == b""
    r = requests.put(f"{server.cortex}/pure", data=b"{}")
    assert r.status_code == 405
    r = requests.options(f"{server.cortex}/pure")
    assert r.status_code == 204 and r.headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
    # A header value that is not UTF-8 is refused here (Triton's parameters() would fail on it).
    got = _raw_exchange(
        server, b"POST /pure HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Bad: caf\xe9\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert got.startswith(b"HTTP/1.1 400") and b"not valid UTF-8" in got


def test_cortex_endpoint_dies_with_serve_even_on_sigkill(tmp_path):
    import signal

    run_tritonize(
        "build",
        os.path.join(ROOT, "benchmarks", "projects", "echo", "predictor.py"),
        "-o",
        str(tmp_path / "repo"),
        "--name",
        "pure",
    )
    serve = ServeProcess(str(tmp_path / "repo"))
    try:
        assert serve.wait_ready(), serve.output()
        _wait_listening(serve.cortex_port, serve)
        os.kill(serve.process.pid, signal.SIGKILL)  # no cleanup code of serve runs
        deadline = time.monotonic() + 30  # generous: a loaded CI box
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", serve.cortex_port), timeout=1).close()
            except OSError:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the Cortex endpoint outlived serve")
    finally:
        serve.stop()
        try:  # tritonserver gets SIGTERM from the kernel when serve dies; make sure nothing is left
            os.killpg(serve.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_many_pipelined_requests_are_all_answered_in_order(server):
    # More than the read-ahead bound (cortex_endpoint/server.py MAX_PIPELINED): reading pauses and resumes.
    requests_ = b"".join(
        b"POST /pure HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
        for body in (json.dumps({"n": i}).encode() for i in range(100))
    )
    last = b"GET /pure HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    got = _raw_exchange(server, requests_ + last)
    assert got.count(b"HTTP/1.1 200 OK") == 101
    positions = [got.index(b'{"n": %d}' % i) for i in range(100)]
    assert positions == sorted(positions)
