"""The admin token in an image from `tritonize docker build`, on a real Docker engine (stand-in Triton image,
tests/docker_engine.py): a predictor that looks for it in every process's environment finds it nowhere
(issue 23 item 16), nor in any process's command line (/proc/<pid>/cmdline, PID 1 included)."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest
from conftest import run_tritonize
from docker_engine import docker, standin_image_or_skip
from test_e2e_docker_engine import package_index  # noqa: F401 (a fixture: httptools and uvloop for the image)

pytestmark = pytest.mark.e2e
TOKEN = "image-admin-token-5678"
PREDICTOR = """
import os


class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        token = payload["token"].encode()
        found = {"environ": [], "cmdline": []}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            for what in found:
                try:
                    with open(f"/proc/{pid}/{what}", "rb") as f:
                        if token in f.read():
                            found[what].append(int(pid))
                except OSError:
                    pass
        return {"mine": os.environ.get("TRITONIZE_ADMIN_TOKEN"), **found}
"""


def test_a_predictor_in_an_image_finds_the_token_in_no_environment(tmp_path, package_index):  # noqa: F811
    image = standin_image_or_skip()
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "predictor.py").write_text(PREDICTOR)
    (tmp_path / "project" / "cortex.yaml").write_text("- name: look\n  predictor: {path: predictor.py}\n")
    repo = tmp_path / "repo"
    run_tritonize("build", str(tmp_path / "project" / "cortex.yaml"), "-o", str(repo))
    tag = f"tritonize-e2e-token:{os.getpid()}"
    name = f"tz-e2e-token-{os.getpid()}"
    try:
        built = run_tritonize(
            "docker", "build", str(repo), "-t", tag, "--image", image, "--pip-index-url", package_index, check=False
        )
        assert built.returncode == 0, built.stdout + built.stderr
        docker("run", "-d", "--name", name, "-e", f"TRITONIZE_ADMIN_TOKEN={TOKEN}", "-p", "127.0.0.1::8080", tag)
        port = docker("port", name, "8080").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
        answer = _post(f"http://127.0.0.1:{port}/look", {"token": TOKEN})
        assert answer["mine"] is None
        assert answer["environ"] == [], answer  # tritonserver, its stubs, the Cortex endpoint
        # Nor in any command line: the supervisor (PID 1 and its child) blanks its own copies, and
        # tritonserver's flags are blanked once it has parsed them.
        assert answer["cmdline"] == [], answer
    finally:
        docker("rm", "-f", name, check=False)
        docker("rmi", "-f", tag, check=False)


def _post(url, payload, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except (ConnectionError, urllib.error.URLError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code not in (503, 404):
                raise
            assert time.monotonic() < deadline, f"no answer from {url}: {exc}"
            time.sleep(0.5)
