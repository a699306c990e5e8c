"""On the real Docker engine: the project's .env applies while `tritonize docker build` installs the
dependencies (as Cortex's bootloader sourced it before dependencies.sh and pip), and neither .env
nor any other hidden file is in the image's project tree."""

import os

import pytest
from conftest import run_tritonize
from docker_engine import docker, standin_image_or_skip
from test_e2e_docker_engine import package_index  # noqa: F401  (the fixture: a local index with the front's wheels)

pytestmark = pytest.mark.e2e

PREDICTOR = "class PythonPredictor:\n    def predict(self, payload):\n        return payload\n"


def test_dotenv_applies_while_dependencies_install_and_is_not_shipped(tmp_path, package_index):  # noqa: F811
    image = standin_image_or_skip()
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
        assert sorted(lines[1:]) == ["cortex.yaml", "dependencies.sh", "predictor.py"]  # no .env, no .aws
    finally:
        docker("rmi", "-f", tag, check=False)
