"""On the real Docker engine: the project's .env applies while `tritonize docker build` installs the
dependencies (as Cortex's bootloader sourced it before dependencies.sh and pip), and neither .env
nor any other hidden file is in the image's project tree."""

import os

import pytest
from conftest import run_tritonize
from docker_engine import docker
from test_e2e_docker_engine import package_index, standin_image  # noqa: F401  (fixtures: the image, a local index)

pytestmark = pytest.mark.e2e

PREDICTOR = "class PythonPredictor:\n    def predict(self, payload):\n        return payload\n"


# standin_image first: it skips without an engine, before package_index downloads anything.
def test_dotenv_applies_while_dependencies_install_and_is_not_shipped(tmp_path, standin_image, package_index):  # noqa: F811
    image = standin_image
    project = tmp_path / "project"
    (project / ".aws").mkdir(parents=True)
    (project / ".aws" / "credentials").write_text("secret\n")
    (project / "predictor.py").write_text(PREDICTOR)
    (project / ".env").write_text("export DEP_SETTING='from dotenv'\nSPEC_ONE=overridden\n")
    (project / "dependencies.sh").write_text(
        'printf "%s|%s|%s" "$DEP_SETTING" "$SPEC_ONE" "$SPEC_TWO" > /opt/dep-env\n'
    )
    (project / "cortex.yaml").write_text(
        "- name: api\n  predictor:\n    path: predictor.py\n    env: {SPEC_ONE: spec, SPEC_TWO: spec}\n"
    )
    repo = tmp_path / "repo"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    tag = f"tritonize-e2e-dotenv:{os.getpid()}"
    try:
        built = run_tritonize(
            "docker", "build", str(repo), "-t", tag, "--image", image, "--pip-index-url", package_index, check=False
        )
        assert built.returncode == 0, built.stdout + built.stderr
        run = docker("run", "--rm", tag, "bash", "-c", "cat /opt/dep-env; echo; ls -A /models/api/1/project")
        lines = run.stdout.splitlines()
        assert lines[0] == "from dotenv|overridden|spec"  # .env over predictor.env, as `source .env` after it
        # no .env, no .aws (__pycache__: the image compiles the project, docker/Dockerfile.template)
        assert sorted(lines[1:]) == ["__pycache__", "cortex.yaml", "dependencies.sh", "predictor.py"]
    finally:
        docker("rmi", "-f", tag, check=False)


TARGET = (
    "class PythonPredictor:\n    def __init__(self, config):\n        self.who = config['who']\n"
    "    def predict(self, payload):\n        return {'who': self.who}\n"
)


def test_the_image_serves_a_traffic_splitter_on_its_cortex_port(tmp_path, standin_image, package_index):  # noqa: F811
    """The image's Cortex endpoint (the zipapp, with cortex_endpoint/traffic_splitter.py) routes POST /<splitter>."""
    import json
    import time
    import urllib.request

    image = standin_image
    project = tmp_path / "project"
    project.mkdir()
    (project / "target.py").write_text(TARGET)
    spec = [{"name": n, "predictor": {"path": "target.py", "config": {"who": n}}} for n in ("a", "b", "mirror")] + [
        {
            "name": "split",
            "kind": "TrafficSplitter",
            "apis": [
                {"name": "a", "weight": 50},
                {"name": "b", "weight": 50},
                {"name": "mirror", "weight": 0, "shadow": True},
            ],
        }
    ]
    (project / "cortex.yaml").write_text(json.dumps(spec))
    repo = tmp_path / "repo"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    tag = f"tritonize-e2e-splitter:{os.getpid()}"
    name = f"tz-e2e-splitter-{os.getpid()}"
    try:
        built = run_tritonize(
            "docker", "build", str(repo), "-t", tag, "--image", image, "--pip-index-url", package_index, check=False
        )
        assert built.returncode == 0, built.stdout + built.stderr
        docker("run", "-d", "--name", name, "-p", "127.0.0.1::8080", tag)
        port = docker("port", name, "8080").stdout.split(":")[-1].strip()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:  # the Cortex endpoint answers ready once Triton has loaded every model
            try:
                with urllib.request.urlopen(base + "/_tritonize/ready", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, docker("logs", name, check=False).stdout
            time.sleep(0.5)
        whos = []
        for _ in range(200):
            request = urllib.request.Request(base + "/split", data=b"{}", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                whos.append(json.loads(answer.read())["who"])
        assert len(whos) == 200, docker("logs", name, check=False).stdout
        assert set(whos) == {"a", "b"}  # 50/50: both in 200 draws (a miss is 2 * 0.5**200)
        time.sleep(1)
        with urllib.request.urlopen(base + "/_tritonize/traffic-splitters", timeout=10) as answer:
            (stats,) = json.loads(answer.read())["traffic_splitters"]
        assert [t["requests"] for t in stats["targets"]] == [whos.count("a"), whos.count("b")]
        assert stats["shadow"]["sent"] == 200 and stats["shadow"]["failed"] == 0
    finally:
        docker("rm", "-f", name, check=False)
        docker("rmi", "-f", tag, check=False)
