"""End to end on real Triton: real streaming APIs (a predict() that yields) and form bodies through the
Cortex endpoint (POST /<api>) of `tritonize serve`, called with plain `requests` and raw sockets.

tests/test_e2e_cortex_front.py covers the front itself against a hand-written decoupled model; here the
models are built by `tritonize build` from predictors, so the runtime's stream and form code is on the path.
"""

import http.client
import json
import os
import shutil
import socket
import time

import pytest
import requests
from conftest import FIXTURES, ServeProcess, run_tritonize

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("cortex_front_runtime")
    project = work / "project"
    shutil.copytree(os.path.join(FIXTURES, "cortex_front_runtime"), project)
    for name in ("stream_predictor.py", "echo_predictor.py", "batch_predictor.py"):
        shutil.copy(os.path.join(FIXTURES, "streaming", name), project)
    repo = work / "model_repository"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    assert "decoupled: true" in (repo / "stream" / "config.pbtxt").read_text()
    serve = ServeProcess(str(repo))
    serve.cortex = f"http://127.0.0.1:{serve.cortex_port}"
    # broken-stream never loads: Triton's readiness stays false, and serve starts the front for the others.
    serve.wait_cortex(timeout=120)
    assert "API 'broken-stream' failed to load" in serve.output()
    yield serve
    assert serve.stop() == 0, serve.output()


def _chunks(response):
    """(arrival time, HTTP chunk) as each chunk arrives."""
    for chunk in response.raw.read_chunked(decode_content=False):
        yield time.time(), chunk


# --- streaming APIs ---------------------------------------------------------------------------


def test_stream_chunks_arrive_as_produced_in_order_with_the_first_content_type(server):
    r = requests.post(f"{server.cortex}/stream?tag=q", json={"n": 5, "delay": 0.3}, headers={"X-Tag": "h"}, stream=True)
    assert r.status_code == 200, r.text
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.headers["content-type"] == "application/json"
    got = [(arrived, json.loads(chunk)) for arrived, chunk in _chunks(r)]
    assert [item["i"] for _, item in got] == [0, 1, 2, 3, 4]
    assert all(item["tag"] == "q" and item["hdr"] == "h" for _, item in got)
    for (arrived, _), (_, later) in zip(got, got[1:]):
        # Chunk i reached the client before the predictor produced chunk i+1 (0.3 s later).
        assert arrived < later["t"], (arrived, later["t"])


def test_text_stream_and_empty_stream(server):
    r = requests.post(f"{server.cortex}/stream", json={"n": 3, "kind": "text"}, stream=True)
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert [chunk for _, chunk in _chunks(r)] == [b"tok0 ", b"tok1 ", b"tok2 "]
    r = requests.post(f"{server.cortex}/stream", json={"n": 0})
    assert (r.status_code, r.content) == (200, b"")


def test_error_before_the_first_chunk_has_its_status_and_message(server):
    r = requests.post(f"{server.cortex}/stream", json={"n": 3, "fail_at": 0})
    assert r.status_code == 500, r.text
    assert r.text.startswith("internal server error") and "[500]" not in r.text
    assert "Traceback" not in r.text and ".py" not in r.text
    r = requests.post(f"{server.cortex}/stream", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "[400]" not in r.text, r.text


def test_error_mid_stream_cuts_the_body_after_the_chunks_sent(server):
    r = requests.post(f"{server.cortex}/stream", json={"n": 5, "fail_at": 2}, stream=True)
    assert r.status_code == 200
    got = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in r.iter_content(None):
            got.append(chunk)
    assert b'"i": 0' in b"".join(got) and b'"i": 1' in b"".join(got)  # the chunks sent before it stay
    assert b'"i": 2' not in b"".join(got)
    # The connection closed on the error; the front keeps serving.
    assert requests.post(f"{server.cortex}/echo", json={"after": "error"}).json() == {"echo": {"after": "error"}}


def test_client_disconnect_mid_stream_closes_the_generator(server, tmp_path):
    marker = str(tmp_path / "closed")
    conn = http.client.HTTPConnection("127.0.0.1", server.cortex_port, timeout=30)
    body = json.dumps({"n": 1000, "delay": 0.05, "marker": marker})
    conn.request("POST", "/stream", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    assert b'"i": 0' in response.read1(4096)
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.monotonic() + 20
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(marker), "the predictor's finally never ran"
    sent = int(open(marker).read().split()[-1])
    assert sent < 200  # stopped long before its 1000 chunks (20 s at 50 ms)


def test_streaming_api_beside_non_streaming_ones(server):
    r = requests.post(f"{server.cortex}/echo", json={"x": 1})
    assert (r.status_code, r.headers.get("transfer-encoding"), r.json()) == (200, None, {"echo": {"x": 1}})
    r = requests.post(f"{server.cortex}/stream", json={"n": 2})
    assert [json.loads(line)["i"] for line in r.text.replace("}{", "}\n{").splitlines()] == [0, 1]
    assert requests.get(f"{server.cortex}/stream").status_code == 200  # Cortex's GET message


def test_batched_stream_gives_each_client_its_own_chunks(server):
    import concurrent.futures

    def ask(n):
        r = requests.post(f"{server.cortex}/batched-stream", json={"n": n, "delay": 0.1}, stream=True, timeout=60)
        assert r.status_code == 200, r.text
        return [json.loads(chunk) for _, chunk in _chunks(r)]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(ask, [2, 4, 3]))  # within one 200 ms batch window: batched together
    for n, steps in zip([2, 4, 3], answers):
        assert [step["step"] for step in steps] == list(range(n)) and all(step["of"] == n for step in steps)
    assert max(step["batch"] for steps in answers for step in steps) > 1, answers


# --- forms and query params -------------------------------------------------------------------


def test_multipart_file_and_field_reach_predict_as_form_data(server):
    r = requests.post(
        f"{server.cortex}/forms",
        data={"field": "value", "other": "é"},
        files={"upload": ("report.csv", b"a,b\n1,2\n", "text/csv")},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "FormData"
    assert out["fields"]["field"] == ["value"] and out["fields"]["other"] == ["é"]
    assert out["fields"]["upload"] == [{"filename": "report.csv", "content_type": "text/csv", "content": "a,b\n1,2\n"}]


def test_urlencoded_form_reaches_predict_as_form_data(server):
    r = requests.post(f"{server.cortex}/forms", data=[("field", "1"), ("field", "2"), ("x", "a b&c")])
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "FormData"
    assert r.json()["fields"] == {"field": ["1", "2"], "x": ["a b&c"]}


def test_malformed_multipart_is_a_400(server):
    headers = {"Content-Type": "multipart/form-data; boundary=XYZ"}
    r = requests.post(f"{server.cortex}/forms", data=b"--ABC\r\nnot a part\r\n--ABC--\r\n", headers=headers)
    assert r.status_code == 400, r.text
    assert "multipart" in r.text
    r = requests.post(f"{server.cortex}/forms", data=b"x", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 400, r.text
    assert requests.post(f"{server.cortex}/forms", data={"still": "up"}).status_code == 200


def test_a_form_body_reaches_a_streaming_predict(server):
    r = requests.post(f"{server.cortex}/stream", data={"n": "2", "kind": "text"}, stream=True)
    assert r.status_code == 200, r.text
    assert [chunk for _, chunk in _chunks(r)] == [b"tok0 ", b"tok1 "]  # FormData.get("n") is "2"


def test_repeated_query_keys_reach_getlist(server):
    r = requests.post(f"{server.cortex}/forms?a=1&a=2&b=x", json={})
    assert r.status_code == 200, r.text
    assert (r.json()["a"], r.json()["last_a"]) == (["1", "2"], "2")


# --- supervision of the front process -----------------------------------------------------------


def _front_pids(serve_pid):
    """The Cortex endpoint's first process (a child of serve running tritonize.cortex_endpoint)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError):
            continue
        if ppid == serve_pid and b"tritonize.cortex_endpoint" in cmdline:
            pids.append(int(pid))
    return pids


def test_a_killed_front_is_restarted_by_serve(tmp_path):
    import signal

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(os.path.join(FIXTURES, "streaming", "echo_predictor.py"), project)
    run_tritonize("build", str(project / "echo_predictor.py"), "-o", str(tmp_path / "repo"), "--name", "echo")
    serve = ServeProcess(str(tmp_path / "repo"))
    url = f"http://127.0.0.1:{serve.cortex_port}/echo"
    try:
        assert serve.wait_ready(), serve.output()
        serve.wait_cortex()
        assert requests.post(url, json={"n": 1}).json() == {"echo": {"n": 1}}
        # serve's start of the endpoint is over (it prints the banner after it): a death before that is a
        # failed start (an error), not a crash to heal - the port alone can answer a little earlier.
        deadline = time.monotonic() + 30
        while "Press Ctrl-C to stop." not in serve.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        (front,) = _front_pids(serve.process.pid)
        os.kill(front, signal.SIGKILL)  # as the OOM killer would
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = _front_pids(serve.process.pid)
            if pids and pids != [front]:
                try:
                    answer = requests.post(url, json={"n": 2}, timeout=5)
                    break
                except requests.ConnectionError:
                    pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"the Cortex endpoint was not restarted:\n{serve.output()}")
        assert answer.json() == {"echo": {"n": 2}}
        assert serve.process.poll() is None
        deadline = time.monotonic() + 10  # serve prints it just after the new front listens
        while "the Cortex endpoint is back on" not in serve.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        output = serve.output()
        assert "the Cortex endpoint exited (code -9" in output and "restarting the Cortex endpoint in 1 s" in output
        assert "the Cortex endpoint is back on" in output, output
    finally:
        assert serve.stop() == 0, serve.output()
    with pytest.raises(OSError):  # the restarted one stopped with serve too
        socket.create_connection(("127.0.0.1", serve.cortex_port), timeout=1).close()


def test_a_streaming_api_that_failed_to_load_is_a_404_and_the_others_serve(server):
    r = requests.post(f"{server.cortex}/broken-stream", json={"x": 1})
    assert r.status_code == 404, r.text  # Triton's "unknown model", as tritonize.Client reports it
    assert "broken-stream" in r.text and "Traceback" not in r.text
    assert requests.post(f"{server.cortex}/echo", json={"x": 1}).json() == {"echo": {"x": 1}}
