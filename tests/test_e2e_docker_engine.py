"""`serve --docker` and `tritonize docker build` on a real Docker engine, with a local stand-in of
the Triton image (tests/docker_engine.py). Real tritonserver 2.51 in a container, real requests."""

import base64
import hashlib
import json
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
import zipfile

import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize
from docker_engine import docker, inspect, serve_wheel_index, standin_image_or_skip

from tritonize import Client
from tritonize.server.docker_launcher import RUN_LABEL

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def standin_image():
    return standin_image_or_skip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    work = tmp_path_factory.mktemp("engine")
    shutil.copytree(os.path.join(FIXTURES, "robust"), work / "project")
    spec = work / "project" / "cortex.yaml"
    spec.write_text("- name: robust\n  predictor:\n    type: python\n    path: robust_predictor.py\n")
    run_tritonize("build", str(spec), "-o", str(work / "model_repository"))
    return str(work / "model_repository")


def _serve_docker(repo, image, name, *extra):
    return ServeProcess(repo, extra_args=["--docker", "--image", image, "--name", name, *extra])


def _post_cortex(port, api, body, timeout=30):
    """POST /<api> as a Cortex client does; retried while the front is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/{api}", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
                return response.read()
        except ConnectionError:
            assert time.monotonic() < deadline, f"the Cortex endpoint on port {port} never answered"
            time.sleep(0.2)
        except urllib.error.URLError as exc:
            assert isinstance(exc.reason, ConnectionError) and time.monotonic() < deadline, exc
            time.sleep(0.2)


def _wait_gone(name, timeout=60):
    deadline = time.monotonic() + timeout
    while docker("ps", "-a", "-q", "--filter", f"name=^{name}$").stdout.strip():
        assert time.monotonic() < deadline, docker("ps", "-a").stdout
        time.sleep(0.3)


def test_serve_docker_on_a_real_engine(repo, standin_image):
    name = f"tz-e2e-{os.getpid()}"
    serve = _serve_docker(repo, standin_image, name)
    try:
        assert serve.wait_ready(timeout=180), serve.output()
        with Client(serve.http_url) as client:
            assert client.predict("robust", {"h": 1})["payload"] == {"h": 1}
        with Client(serve.grpc_url, protocol="grpc") as client:
            assert client.predict("robust", {"g": 1})["payload"] == {"g": 1}
        # Cortex's own endpoint (the front runs on the host, in front of the published ports).
        assert json.loads(_post_cortex(serve.cortex_port, "robust", b'{"c": 1}'))["payload"] == {"c": 1}
        info = inspect(name)
        # Published on loopback only; the repository mounted read-only; labelled with the run.
        bindings = [b for port in info["HostConfig"]["PortBindings"].values() for b in port]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"} and len(bindings) == 3, bindings
        (mount,) = [m for m in info["Mounts"] if m["Destination"] == "/models"]
        assert mount["RW"] is False and mount["Source"] == repo
        assert RUN_LABEL in info["Config"]["Labels"]
        denied = docker("exec", name, "sh", "-c", "touch /models/x", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    finally:
        assert serve.stop(timeout=90) == 0, serve.output()
    _wait_gone(name)  # SIGTERM: stopped and removed


def test_sigkill_of_serve_does_not_orphan_its_container(repo, standin_image):
    name = f"tz-e2e-kill-{os.getpid()}"
    serve = _serve_docker(repo, standin_image, name)
    try:
        assert serve.wait_ready(timeout=180), serve.output()
        serve.process.send_signal(signal.SIGKILL)
        serve.process.wait()
        _wait_gone(name)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://{serve.http_url}/v2/health/ready", timeout=2)
    finally:
        docker("rm", "-f", name, check=False)


def test_a_name_conflict_leaves_the_other_container_running(repo, standin_image):
    name = f"tz-e2e-taken-{os.getpid()}"
    docker("run", "-d", "--rm", "--name", name, standin_image, "sleep", "300")
    try:
        serve = _serve_docker(repo, standin_image, name)
        assert serve.process.wait(timeout=120) == 1
        output = serve.output()
        assert f"a container named {name} already exists" in output, output
        assert inspect(name)["State"]["Running"] is True  # untouched
    finally:
        docker("rm", "-f", name, check=False)


def _wheel(directory, name="tzdep", version="1.0", source="VALUE = 42\n"):
    """A minimal pure-Python wheel, made offline."""
    filename = f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": source,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tritonize-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as whl:
        for path, text in files.items():
            whl.writestr(path, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(text.encode())}")
        whl.writestr(f"{dist}/RECORD", "\n".join(record + [f"{dist}/RECORD,,"]) + "\n")
    return filename


@pytest.fixture
def package_index(tmp_path):
    """A PEP 503 index on 127.0.0.1 (http.server's listings are its project pages)."""
    root = tmp_path / "index"
    (root / "simple" / "tzdep").mkdir(parents=True)
    _wheel(root / "simple" / "tzdep")
    # A company mirror also holds what the image's Cortex endpoint needs (httptools, uvloop).
    server, index = serve_wheel_index(root)
    yield index
    server.shutdown()


PREDICTOR = """
import os
import tzdep  # installed in the image from the private index


class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        return {"value": tzdep.VALUE, "shell_ran": os.path.exists("/opt/tz-shell-ran")}
"""


def test_docker_build_from_the_standin_with_a_private_index_then_serve_it(tmp_path, standin_image, package_index):
    project = tmp_path / "deps project"  # a space in every path
    project.mkdir()
    (project / "predictor.py").write_text(PREDICTOR)
    (project / "my reqs.txt").write_text("tzdep==1.0\n")
    # Named like a command line: runs as a script, injects nothing.
    (project / "setup;echo PWNED.sh").write_text("touch /opt/tz-shell-ran\n")
    deps = "{pip: my reqs.txt, shell: 'setup;echo PWNED.sh'}"
    (project / "cortex.yaml").write_text(f"- name: deps\n  predictor: {{path: predictor.py, dependencies: {deps}}}\n")
    repo = tmp_path / "model repo"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    tag = f"tritonize-e2e-built:{os.getpid()}"
    try:
        built = run_tritonize(
            "docker", "build", str(repo), "-t", tag, "--image", standin_image, "--pip-index-url", package_index,
            check=False,
        )  # fmt: skip
        assert built.returncode == 0, built.stdout + built.stderr
        assert "PWNED" not in built.stdout.replace("setup;echo PWNED.sh", "")
        # The entrypoint leaves other commands alone.
        plain = docker("run", "--rm", tag, "bash", "-c", "echo plain; pip show tzdep | head -2")
        assert plain.stdout.splitlines()[:2] == ["plain", "Name: tzdep"], plain.stdout
        name = f"tz-e2e-built-{os.getpid()}"
        serve = ServeProcess(str(repo), extra_args=["--docker", "--image", tag, "--name", name])
        try:
            assert serve.wait_ready(timeout=180), serve.output()
            with Client(serve.http_url) as client:
                assert client.predict("deps", {}) == {"value": 42, "shell_ran": True}
        finally:
            assert serve.stop(timeout=90) == 0, serve.output()
    finally:
        docker("rmi", "-f", tag, check=False)


def test_a_crashed_container_is_restarted(repo, standin_image):
    from test_e2e_supervision import nested_arrays_envelope

    name = f"tz-e2e-crash-{os.getpid()}"
    serve = _serve_docker(repo, standin_image, name)
    try:
        assert serve.wait_ready(timeout=180), serve.output()
        deadline = time.monotonic() + 60
        while "Press Ctrl-C to stop." not in serve.output():
            assert time.monotonic() < deadline, serve.output()
            time.sleep(0.2)
        request = urllib.request.Request(
            f"http://{serve.http_url}/v2/models/robust/infer", data=nested_arrays_envelope()
        )
        with pytest.raises(OSError):
            urllib.request.urlopen(request, timeout=30)
        while "[supervisor] Triton is ready again" not in serve.output():
            assert serve.process.poll() is None and time.monotonic() < deadline + 60, serve.output()
            time.sleep(0.2)
        assert f"container {name} stopped (killed by signal 11 (SIGSEGV), exit code 139)." in serve.output()
        with Client(serve.http_url) as client:
            assert client.predict("robust", {"again": 1})["payload"] == {"again": 1}
    finally:
        assert serve.stop(timeout=90) == 0, serve.output()
    _wait_gone(name)


def test_a_second_ctrl_c_during_docker_stop_kills_the_container(repo, standin_image):
    body = json.dumps(
        {"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": ["{}"]}],
         "parameters": {"op": "sleep", "s": "60"}}
    ).encode()  # fmt: skip
    name = f"tz-e2e-ctrlc-{os.getpid()}"
    serve = _serve_docker(repo, standin_image, name)
    try:
        assert serve.wait_ready(timeout=180), serve.output()

        def hung():
            try:
                urllib.request.urlopen(f"http://{serve.http_url}/v2/models/robust/infer", data=body, timeout=90)
            except OSError:
                pass

        threading.Thread(target=hung, daemon=True).start()
        time.sleep(1)
        serve.process.send_signal(signal.SIGINT)  # docker stop: waits for the hung request
        time.sleep(2)
        assert serve.process.poll() is None
        second = time.monotonic()
        serve.process.send_signal(signal.SIGINT)  # docker kill
        assert serve.process.wait(timeout=30) == 0, serve.output()
        assert time.monotonic() - second < 8, serve.output()
        assert "AttributeError" not in serve.output()
    finally:
        docker("rm", "-f", name, check=False)
    _wait_gone(name)
