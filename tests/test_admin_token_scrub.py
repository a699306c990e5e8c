"""The admin token never reaches predictor code in images and pods (issue 23 item 16): the image's entrypoint
runs tritonserver (whose stubs inherit its environment) and the Cortex endpoint without it in their
environment, and a pod's tritonserver container drops it before Triton starts."""

import os
import subprocess

from tritonize.deploy.k8s import TRITONSERVER_COMMAND
from tritonize.docker.build import _entrypoint_run

TOKEN = "s3cret-token-value"


def _entrypoint(tmp_path):
    subprocess.run(["sh", "-c", _entrypoint_run().replace("/opt/tritonize/", f"{tmp_path}/")], check=True)
    return str(tmp_path / "entrypoint.sh")


def _fake(bin_dir, name, out):
    """A command that writes its environment's admin token (or 'none') and its arguments to `out`."""
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\necho "{name} ${{TRITONIZE_ADMIN_TOKEN:-none}} $*" >> {out}\n')
    path.chmod(0o755)


def test_the_images_tritonserver_and_endpoint_get_no_token_in_their_environment(tmp_path):
    script = _entrypoint(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    out = tmp_path / "out.txt"
    _fake(bin_dir, "tritonserver", out)
    _fake(bin_dir, "python3", out)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "TRITONIZE_ADMIN_TOKEN": TOKEN,
        "TRITONIZE_CORTEX_PORT": "8080",
    }
    for args in ([], ["--http-restricted-api=x:y=given"]):
        out.write_text("")
        subprocess.run([script, "tritonserver", *args], env=env, check=True, timeout=30)
        deadline = 50
        while out.read_text().count("\n") < 2 and deadline:  # the endpoint starts in the background
            subprocess.run(["sleep", "0.1"])
            deadline -= 1
        lines = out.read_text().splitlines()
        triton = [line for line in lines if line.startswith("tritonserver ")]
        assert triton and triton[0].split()[1] == "none", lines
        assert all(line.split()[1] == "none" for line in lines), lines
        if not args:  # Triton still gets the token, in its flags (the only way Triton 2.51 takes it)
            assert f"tritonize-admin-token={TOKEN}" in triton[0]


def test_a_pods_tritonserver_drops_the_token_from_its_environment(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    out = tmp_path / "out.txt"
    _fake(bin_dir, "tritonserver", out)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "TRITONIZE_ADMIN_TOKEN": TOKEN}
    subprocess.run([*TRITONSERVER_COMMAND, "--x=1"], env=env, check=True, timeout=30)
    assert out.read_text().split() == ["tritonserver", "none", "--x=1"]
