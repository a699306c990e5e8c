"""examples/text-generator-stream on real Triton: Cortex's GPT-2 generator streaming its tokens.

The model is a tiny random-weight GPT-2 fabricated offline under the id "gpt2"
(tests/hf_gpt2_cache.py), so the text has no meaning; what is checked is that it streams.
"""

import os
import shutil
import time

import pytest
import requests
from conftest import ServeProcess, run_tritonize

from tritonize import Client

pytestmark = pytest.mark.e2e
EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "text-generator-stream")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import hf_gpt2_cache
    import hf_offline_cache

    work = tmp_path_factory.mktemp("textgen")
    home = hf_gpt2_cache.write_gpt2_model(str(work / "hf_home"))
    shutil.copytree(EXAMPLE, work / "project")
    build = run_tritonize("build", str(work / "project" / "cortex.yaml"), "-o", str(work / "repo"))
    assert "threads_per_process" not in build.stderr  # used: this API streams
    serve = ServeProcess(str(work / "repo"), extra_args=["--cpu"], env=hf_offline_cache.offline_env(home))
    if not serve.wait_ready(timeout=240):
        serve.stop()
        raise AssertionError(serve.output())
    yield serve
    assert serve.stop() == 0, serve.output()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_tokens_stream(server, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    with Client(url, protocol=protocol) as client:
        # The fabricated GPT-2 samples random tokens (Cortex's do_sample=True): the streamer sends text
        # at word ends, and a run of byte tokens with no space arrives as one chunk. A few tries give
        # a generation with words.
        for _ in range(8):
            start, times, chunks = time.monotonic(), [], []
            for chunk in client.stream("text-generator", {"text": "machine learning is"}):
                times.append(time.monotonic() - start)
                chunks.append(chunk)
            assert chunks and all(isinstance(c, str) and c for c in chunks), chunks
            if len(chunks) >= 2:
                break
        assert len(chunks) >= 2, chunks
        assert times[0] < times[-1]  # the first words came before the last were generated
        # Leaving early stops that stream; the API keeps serving.
        stream = client.stream("text-generator", {"text": "machine learning is"})
        next(stream)
        stream.close()
        assert list(client.stream("text-generator", {"text": "hello"}))


def test_sample_json_streams_through_the_cortex_endpoint(server):
    with open(os.path.join(EXAMPLE, "sample.json"), "rb") as f:
        sample = f.read()
    server.wait_cortex()
    for _ in range(8):  # random tokens: a few tries give a generation of several words (see above)
        r = requests.post(
            f"http://127.0.0.1:{server.cortex_port}/text-generator",
            data=sample,
            headers={"Content-Type": "application/json"},
            stream=True,
            timeout=120,
        )
        assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked", r.text
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        chunks = list(r.raw.read_chunked(decode_content=False))  # one HTTP chunk per streamed piece of text
        assert chunks and all(chunks), chunks
        if len(chunks) >= 2:
            break
    assert len(chunks) >= 2, chunks
    assert b"".join(chunks).decode("utf-8", errors="replace").strip()
