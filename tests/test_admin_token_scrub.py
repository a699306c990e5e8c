"""The admin token never reaches predictor code in images and pods (issue 23 item 16): the image's supervisor
blanks it from its own /proc entries (tests/test_e2e_docker_token.py runs the image: no process's
environment has it), and a stock image's tritonserver container drops it before Triton starts."""

import os
import subprocess
import sys
import time

from tritonize.deploy.k8s import TRITONSERVER_COMMAND
from tritonize.host.argv import hide_from_argv, hide_from_environ

TOKEN = "s3cret-token-value"


def _fake(bin_dir, name, out):
    """A command that writes its environment's admin token (or 'none') and its arguments to `out`."""
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\necho "{name} ${{TRITONIZE_ADMIN_TOKEN:-none}} $*" >> {out}\n')
    path.chmod(0o755)


def test_the_images_supervisor_blanks_the_token_from_its_own_proc_entries():
    """The image's entrypoint (server/container.py) keeps the token in os.environ for its admin calls but
    blanks it from /proc/<pid>/environ and cmdline, which predictors of the same user can read (PID 1 too:
    it forks after the blanking)."""
    program = (
        "import os, sys\n"
        "from tritonize.host.argv import hide_from_argv, hide_from_environ\n"
        f"token = {TOKEN!r}\n"
        "assert hide_from_environ(os.getpid(), token) and hide_from_argv(os.getpid(), token)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0 if token.encode() not in open('/proc/self/environ', 'rb').read() else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.environ['TRITONIZE_ADMIN_TOKEN'] == token, os.waitstatus_to_exitcode(status))\n"
        "proc = [open(f'/proc/self/{name}', 'rb').read() for name in ('environ', 'cmdline')]\n"
        "print(*(token.encode() in text for text in proc))\n"
    )
    env = {**os.environ, "TRITONIZE_ADMIN_TOKEN": TOKEN}
    result = subprocess.run(
        [sys.executable, "-c", program, f"--http-restricted-api=x:tritonize-admin-token={TOKEN}"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "0", "False", "False"]


def test_a_blanked_child_keeps_running_without_the_token_in_proc():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", TOKEN], env={**os.environ, "TRITONIZE_ADMIN_TOKEN": TOKEN}
    )
    try:
        for _ in range(100):  # until exec has replaced the forked copy's memory
            if b"time.sleep" in open(f"/proc/{child.pid}/cmdline", "rb").read():
                break
            time.sleep(0.02)
        assert hide_from_environ(child.pid, TOKEN) and hide_from_argv(child.pid, TOKEN)
        assert TOKEN.encode() not in open(f"/proc/{child.pid}/environ", "rb").read()
        assert TOKEN.encode() not in open(f"/proc/{child.pid}/cmdline", "rb").read()
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_a_pods_tritonserver_drops_the_token_from_its_environment(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    out = tmp_path / "out.txt"
    _fake(bin_dir, "tritonserver", out)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "TRITONIZE_ADMIN_TOKEN": TOKEN}
    subprocess.run([*TRITONSERVER_COMMAND, "--x=1"], env=env, check=True, timeout=30)
    assert out.read_text().split() == ["tritonserver", "none", "--x=1"]
