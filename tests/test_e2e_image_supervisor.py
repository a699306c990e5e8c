"""The image's entrypoint (server/container.py) on this host, around the wheel's real tritonserver:
what `docker run` of a built image and the pod run, without an engine (issue 22.1, 21.4).

The same project as the pod test (tests/fixtures/production): an API whose __init__ raises leaves the
others serving and /ready names it; a killed instance is reloaded in seconds (no restart); the Cortex
endpoint runs from the zipapp `tritonize docker build` writes; SIGTERM says not ready first, then drains.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import FIXTURES, free_ports, run_tritonize
from production_checks import answers, check_answers, child_named, urllib_call, wait_until

from tritonize.cortex_endpoint.zipapp import write_zipapp
from tritonize.health.stubs import live_stubs
from tritonize.host.triton_install import find_triton

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    work = tmp_path_factory.mktemp("image-supervisor")
    shutil.copytree(os.path.join(FIXTURES, "production"), work / "project")
    run_tritonize("build", str(work / "project" / "cortex.yaml"), "-o", str(work / "repo"))
    write_zipapp(str(work / "repo"))  # as `tritonize docker build` does
    return work / "repo"


def start_supervisor(repo, tmp_path, drain_notice="2"):
    triton = find_triton()
    backends = triton.make_backend_dir(str(tmp_path / "backends"))
    http, grpc, metrics, cortex, health = free_ports(5)
    command = [
        triton.binary,  # ends in /tritonserver, as the image's CMD
        f"--model-repository={repo}",
        "--disable-auto-complete-config",
        f"--http-port={http}",
        f"--grpc-port={grpc}",
        f"--metrics-port={metrics}",
        f"--backend-directory={backends}",
    ]
    env = triton.environment()
    env.update(
        TRITONIZE_CORTEX_PORT=str(cortex),
        TRITONIZE_HEALTH_PORT=str(health),
        TRITONIZE_DRAIN_NOTICE_S=drain_notice,
        TRITONIZE_ZIPAPP=str(repo / "tritonize_cortex_endpoint.pyz"),
    )
    log = open(tmp_path / "supervisor.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tritonize.server.container", *command],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ports = {8000: http, 8001: grpc, 8002: metrics, 8080: cortex, 8003: health}
    return process, ports, lambda: (tmp_path / "supervisor.log").read_text()


def test_the_image_supervisor_serves_heals_and_drains_like_serve(repo, tmp_path):
    process, ports, output = start_supervisor(repo, tmp_path)
    call = urllib_call(ports=ports)
    try:
        ready = wait_until(lambda: call("GET", 8003, "/ready")[0] == 200, 180, "ready")
        assert ready, output()
        status, body = call("GET", 8003, "/ready")
        apis = json.loads(body)["apis"]
        assert apis["labels"] == apis["echo"] == "ready" and not apis["broken"].startswith("ready"), apis
        assert "cannot open weights" in output()  # the predictor's own traceback, in the log
        assert call("GET", 8003, "/live")[0] == 200
        # (the Cortex endpoint listens before /ready says 200; its own /_tritonize/ready follows Triton's
        # strict readiness, false while an API failed to load)
        check_answers(answers(call))

        # A killed instance: reloaded by the watchdog, the rest untouched, no restart of Triton.
        server = child_named(process.pid, "tritonserver")
        (echo,) = [s for s in live_stubs(server).values() if s.model == "echo"]
        os.kill(echo.pid, signal.SIGKILL)
        wait_until(lambda: "API 'echo': reloaded in" in output(), 60, "healed")
        assert call("POST", 8080, "/echo", b'{"after": 1}')[0] == 200
        assert "restarting Triton" not in output()

        # SIGTERM: not ready first (the drain notice), still answering; then stopped.
        start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: call("GET", 8003, "/ready")[0] == 503, 5, "not ready on SIGTERM", interval=0.05)
        assert call("POST", 8080, "/echo", b'{"draining": 1}')[0] == 200  # still answered during the notice
        assert process.wait(timeout=60) == 0, output()
        assert time.monotonic() - start < 2 + 10 + 8, output()  # notice + exit timeout + margin (loaded machine)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "Traceback" not in output().split("cannot open weights")[-1], output()


def test_the_flags_and_the_token_come_from_the_images_command():
    from tritonize.server.container import admin_token_of, options_from_args

    args = ["--model-repository=/models", "--http-port=9000", "--exit-timeout-secs=7",
            "--http-restricted-api=model-repository,statistics:tritonize-admin-token=s3cret"]  # fmt: skip
    options = options_from_args(args, {"TRITONIZE_CORTEX_PORT": "8080", "TRITONIZE_DRAIN_NOTICE_S": "5"})
    assert (options.model_repository, options.http_port, options.exit_timeout_s) == ("/models", 9000, 7)
    assert (options.cortex_port, options.drain_notice_s, options.metrics_port) == (8080, 5.0, 8002)
    assert options_from_args([], {"TRITONIZE_CORTEX_PORT": "off"}).cortex_port is None
    assert admin_token_of(args, {}) == "s3cret" and admin_token_of([], {"TRITONIZE_ADMIN_TOKEN": "t"}) == "t"
