"""End to end on real Triton: a predictor that yields streams over HTTP (SSE) and gRPC."""

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize import Client, PredictError

pytestmark = pytest.mark.e2e
PROTOCOLS = ["http", "grpc"]


def stub_cpu_seconds(repository, model):
    """CPU time used so far by the stub process(es) serving `model` of `repository` (from /proc)."""
    total, found = 0.0, False
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            if "triton_python_backend_stub" not in cmdline or f"{repository}/{model}/1/model.py" not in cmdline:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found = True
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    assert found, f"no stub process for {model}"
    return total


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("streaming")
    shutil.copytree(os.path.join(FIXTURES, "streaming"), work / "project")
    repo = work / "model_repository"
    build = run_tritonize("build", str(work / "project" / "cortex.yaml"), "-o", str(repo))
    config = (repo / "stream" / "config.pbtxt").read_text()
    assert "decoupled: true" in config
    assert "decoupled" not in (repo / "echo" / "config.pbtxt").read_text()
    assert "threads_per_process (not needed" not in build.stderr  # it means something for streams
    serve = ServeProcess(str(repo))
    assert serve.wait_ready(), serve.output()
    serve.repository = str(repo)
    yield serve
    assert serve.stop() == 0, serve.output()


def client_for(server, protocol):
    return Client(server.http_url if protocol == "http" else server.grpc_url, protocol=protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chunks_arrive_in_order_before_the_generator_finishes(server, protocol):
    arrived = []
    with client_for(server, protocol) as client:
        for chunk in client.stream("stream", {"n": 4, "delay": 0.3}, query_params={"tag": protocol}):
            arrived.append((time.time(), chunk))
    assert [c["i"] for _, c in arrived] == [0, 1, 2, 3]
    assert all(c["tag"] == protocol for _, c in arrived)
    with client_for(server, protocol) as client:
        (chunk,) = client.stream("stream", {"n": 1}, headers={"X-Tag": "h"})
    # Triton's generate_stream does not forward headers (README: Streaming); gRPC streams do.
    assert chunk["hdr"] == ("h" if protocol == "grpc" else "")
    # The first chunk was in the client's hands long before the last one was produced.
    first_received, last_produced = arrived[0][0], arrived[-1][1]["t"]
    assert last_produced - first_received > 0.6, arrived
    for received, chunk in arrived:
        assert received - chunk["t"] < 0.25  # each chunk left as soon as it was yielded


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_text_chunks_and_empty_stream(server, protocol):
    with client_for(server, protocol) as client:
        assert list(client.stream("stream", {"n": 3, "kind": "text"})) == ["tok0 ", "tok1 ", "tok2 "]
        assert list(client.stream("stream", {"n": 0})) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_error_mid_stream_keeps_earlier_chunks(server, protocol):
    got = []
    with client_for(server, protocol) as client:
        with pytest.raises(PredictError) as info:
            for chunk in client.stream("stream", {"n": 5, "fail_at": 2}):
                got.append(chunk["i"])
        assert got == [0, 1]
        assert info.value.status == 500
        assert "boom at 2" in info.value.message or "internal server error" in info.value.message
        # A bad body is answered 400 as the first (and only) chunk.
        with pytest.raises(PredictError) as info:
            list(client.stream("stream", b"{nope", content_type="application/json"))
        assert info.value.status == 400 and "malformed JSON" in info.value.message
        # The instance is still serving.
        assert [c["i"] for c in client.stream("stream", {"n": 2})] == [0, 1]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_two_streams_interleave_on_one_instance(server, protocol):
    events = []

    def consume(name):
        with client_for(server, protocol) as client:
            for chunk in client.stream("stream", {"n": 4, "delay": 0.25}, query_params={"tag": name}):
                events.append((time.monotonic(), chunk["tag"]))

    threads = [threading.Thread(target=consume, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    tags = [tag for _, tag in sorted(events)]
    assert sorted(tags) == ["a"] * 4 + ["b"] * 4
    # Interleaved: neither stream waited for the other to finish.
    assert tags[:4] != ["a"] * 4 and tags[:4] != ["b"] * 4, tags


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_client_disconnect_closes_the_generator(server, protocol, tmp_path):
    marker = str(tmp_path / f"closed-{protocol}")
    with client_for(server, protocol) as client:
        chunks = client.stream("stream", {"n": 1000, "delay": 0.05, "marker": marker})
        for chunk in chunks:
            if chunk["i"] == 2:
                break
        chunks.close()  # leaves the stream: HTTP closes the connection, gRPC cancels
        deadline = time.monotonic() + 10
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert os.path.exists(marker), "the predictor's finally did not run"
    sent = int(open(marker).read().split()[-1])
    assert sent < 100  # stopped long before its 1000 chunks


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_cancelled_busy_stream_leaves_the_stub_idle(server, protocol, tmp_path):
    marker = str(tmp_path / f"busy-{protocol}")
    with client_for(server, protocol) as client:
        chunks = client.stream("stream", {"n": 10**9, "marker": marker})  # no delay: as fast as it can
        for chunk in chunks:
            if chunk["i"] == 50:
                break
        chunks.close()
        deadline = time.monotonic() + 10
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.exists(marker), "the predictor's finally did not run"
        before = stub_cpu_seconds(server.repository, "stream")
        time.sleep(1.0)
        used = stub_cpu_seconds(server.repository, "stream") - before
    assert used < 0.3, f"the stub kept working after the cancel: {used:.2f} s CPU in 1 s"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_batched_stream_gives_each_request_its_own_chunks(server, protocol):
    results = {}

    def consume(n):
        with client_for(server, protocol) as client:
            results[n] = list(client.stream("batched-stream", {"n": n, "delay": 0.1}))

    threads = [threading.Thread(target=consume, args=(n,)) for n in (1, 2, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for n in (1, 2, 3, 4):
        assert [c["step"] for c in results[n]] == list(range(n)), results
        assert all(c["of"] == n for c in results[n])
    assert max(c["batch"] for chunks in results.values() for c in chunks) > 1  # real batches formed


def test_non_streaming_endpoints(server):
    # A streaming API refuses /infer with Triton's own message; its neighbour answers as always.
    body = json.dumps({"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": ["{}"]}]})
    request = urllib.request.Request(f"http://{server.http_url}/v2/models/stream/infer", data=body.encode())
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 501 and b"decoupled" in info.value.read()  # Triton 2.51: UNSUPPORTED
    with Client(server.http_url) as client:
        assert client.predict("echo", {"a": 1}) == {"echo": {"a": 1}}
        with pytest.raises(PredictError) as error:
            client.predict("stream", {"n": 1})
        assert "stream" in error.value.message


def test_curl_style_sse(server):
    body = json.dumps({"payload": json.dumps({"n": 2, "kind": "text"})}).encode()
    request = urllib.request.Request(f"http://{server.http_url}/v2/models/stream/generate_stream", data=body)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = response.read().decode()
    events = [json.loads(line[len("data: ") :]) for line in text.split("\n\n") if line]
    assert [e["response"] for e in events] == ["tok0 ", "tok1 "]
    assert all(e["content_type"].startswith("text/plain") for e in events)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cli_predict_stream(server, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    common = ("--url", url, "--protocol", protocol)
    result = run_tritonize("predict", "stream", "--stream", "-d", '{"n": 3, "kind": "text"}', *common)
    assert result.stdout == "tok0 tok1 tok2 \n"
    result = run_tritonize("predict", "stream", "--stream", "-d", '{"n": 2}', "--param", "tag=cli", *common)
    assert [json.loads(line)["tag"] for line in result.stdout.splitlines()] == ["cli", "cli"]
    result = run_tritonize("predict", "stream", "--stream", "-d", '{"n": 3, "fail_at": 1}', *common, check=False)
    assert result.returncode != 0 and len(result.stdout.splitlines()) == 1 and "[500]" in result.stderr
    result = run_tritonize("predict", "stream", "-d", '{"n": 1}', *common, check=False)
    assert result.returncode != 0 and "--stream" in result.stderr  # the hint for a non-streaming call
