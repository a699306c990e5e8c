"""End to end on real Triton: tritonize.request_timeout ends an instance whose predict never
returns; the request fails within seconds, serve reloads the instance, the next request succeeds."""

import os
import shutil
import time
import urllib.error
import urllib.request

import pytest
from conftest import ServeProcess, run_tritonize
from test_e2e_reliability import wait_banner

from tritonize import Client
from tritonize.errors import PredictError

pytestmark = pytest.mark.e2e

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    work = tmp_path_factory.mktemp("request_timeout")
    shutil.copytree(os.path.join(FIXTURES, "hang"), work / "project")
    repo = work / "model_repository"
    run_tritonize("build", str(work / "project" / "cortex.yaml"), "-o", str(repo))
    server = ServeProcess(str(repo))
    try:
        assert server.wait_ready(), server.output()
        wait_banner(server)
    except BaseException:
        server.stop()
        raise
    yield server
    assert server.stop() == 0, server.output()


def _wait_reloaded(serve, count, timeout=90):
    deadline = time.monotonic() + timeout
    while serve.output().count("API 'hang': reloaded in") < count:
        assert time.monotonic() < deadline, serve.output()
        time.sleep(0.2)


def test_a_hung_request_fails_within_seconds_and_the_instance_comes_back(serve):
    with Client(serve.http_url, timeout_s=60) as client:
        assert client.predict("hang", {"a": 1})["payload"] == {"a": 1}
        start = time.monotonic()
        with pytest.raises(PredictError) as failed:
            client.predict("hang", {"a": 2}, query_params={"hang": "1"})
        took = time.monotonic() - start
        assert took < 10, took
        assert failed.value.status == 500 and "Stub process 'hang_0_0' is not healthy" in str(failed.value)
        print(f"HTTP request failed after {took:.2f} s")
        output = serve.output()
        assert "API 'hang', instance hang_0_0: a request has run 2." in output, output
        assert "over the request timeout of 2 s" in output
        _wait_reloaded(serve, 1)
        assert "died (it ended itself: a request ran over the API's request timeout)" in serve.output()
        assert client.predict("hang", {"a": 3})["payload"] == {"a": 3}


def test_grpc_and_the_cortex_endpoint_see_the_timeout_too(serve):
    with Client(serve.grpc_url, protocol="grpc", timeout_s=60) as client:
        start = time.monotonic()
        with pytest.raises(PredictError) as failed:
            client.predict("hang", {}, query_params={"hang": "1"})
        assert time.monotonic() - start < 10
        # What Triton 2.51 answers for a request whose instance process ended (no better text reaches it).
        assert failed.value.status == 500 and "Stub process 'hang_0_0' is not healthy" in str(failed.value)
    _wait_reloaded(serve, 2)
    request = urllib.request.Request(
        f"http://127.0.0.1:{serve.cortex_port}/hang?hang=1", data=b"{}", headers={"content-type": "application/json"}
    )
    start = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=60)
    assert time.monotonic() - start < 10
    assert answer.value.code == 504
    assert answer.value.read() == b"API 'hang' did not answer within its request timeout of 2 s"
    _wait_reloaded(serve, 3)
    with Client(serve.http_url) as client:
        assert client.predict("hang", {"b": 1})["payload"] == {"b": 1}
