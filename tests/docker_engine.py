"""A real Docker engine for the e2e tests: the daemon .ci/run started (DOCKER_HOST), and a local
stand-in of the Triton image (tests/docker_engine/build_standin.sh: Debian + the wheel's
tritonserver 2.51 in the official layout; not NVIDIA's image). Tests skip without an engine."""

import http.server
import json
import os
import re
import subprocess
import sys
import threading

import pytest

STANDIN_IMAGE = os.environ.get("TRITONIZE_STANDIN_IMAGE", "tritonize-standin-triton:2.51")
BUILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "docker_engine", "build_standin.sh")


def docker(*args, check=True, timeout=120):
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr}")
    return result


def engine_available():
    try:
        return docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def standin_image_or_skip():
    """The stand-in image's tag, built (or found) on the engine; skips the test without an engine."""
    if not engine_available():
        pytest.skip("no Docker engine (DOCKER_HOST); .ci/run starts one")
    result = subprocess.run(["bash", BUILD_SCRIPT, STANDIN_IMAGE], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return STANDIN_IMAGE


def containers(label):
    """Ids of the containers (running or not) carrying `label` (key or key=value)."""
    return docker("ps", "-a", "-q", "--filter", f"label={label}").stdout.split()


def inspect(container):
    return json.loads(docker("inspect", container).stdout)[0]


# What the image's Cortex endpoint installs (cortex_endpoint/zipapp.py IMAGE_PACKAGES).
ENDPOINT_WHEELS = ("httptools", "uvloop")


def serve_wheel_index(root, projects=ENDPOINT_WHEELS):
    """A PEP 503 index on 127.0.0.1 under root/simple/ (http.server's listings are its project pages),
    holding `projects` as wheels for the stand-in's Python 3.11 on x86_64 glibc, fetched on this host
    (containers reach no registry; pip's cache makes it quick) -> (server, index URL); shut it down after."""
    for project in projects:
        folder = re.split(r"[<>=!~ ]", project, maxsplit=1)[0]  # a requirement ("python-dateutil<3"): its name
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
             "3.11", "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "--platform",
             "manylinux_2_28_x86_64", "-d", str(root / "simple" / folder), project],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/simple/"
