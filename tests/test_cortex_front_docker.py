"""`serve --docker` offers the Cortex endpoint too: the front runs beside `docker run`, on the host,
talking to the container's published ports (fake docker here; the real engine in the Docker e2e tests)."""

import json
import socket
import time
import urllib.request

import pytest
from conftest import ServeProcess
from test_docker_serve import fake_docker, repo  # noqa: F401  (fixtures)


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def test_serve_docker_starts_and_stops_the_cortex_endpoint(repo, fake_docker):  # noqa: F811
    serve = ServeProcess(repo, extra_args=["--docker", "--admin-token", "T0K"])
    base = f"http://127.0.0.1:{serve.cortex_port}"
    try:
        assert serve.wait_ready(timeout=60), serve.output()
        deadline = time.monotonic() + 30
        while "Ready in" not in serve.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"Cortex  {base}/<api>" in serve.output()
        # Readiness goes through to the container's published HTTP port (the fake answers it).
        assert _get(f"{base}/_tritonize/ready") == (200, b"ready")
        status, body = _get(f"{base}/api")
        assert status == 200 and "post request" in json.loads(body)["message"]
    finally:
        assert serve.stop() == 0, serve.output()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", serve.cortex_port), timeout=1).close()
    assert [c["argv"][0] for c in fake_docker()] == ["info", "run", "stop"]  # nothing else was started
