"""End to end: what `tritonize serve` says when things go wrong (real Triton)."""

import os
import shutil
import subprocess

import pytest
from conftest import FIXTURES, ServeProcess, free_ports, run_tritonize

pytestmark = pytest.mark.e2e


def test_failing_init_shows_the_predictor_traceback(tmp_path):
    project = tmp_path / "broken"
    shutil.copytree(os.path.join(FIXTURES, "broken"), project)
    repo = tmp_path / "repo"
    run_tritonize("build", str(project / "predictor.py"), "-o", str(repo))
    serve = ServeProcess(str(repo))
    assert serve.wait_ready(timeout=60) is False  # it exits instead of serving
    serve.process.wait(timeout=60)
    output = serve.output()
    assert serve.process.returncode != 0
    assert "predictor failed to load" in output
    assert "RuntimeError: cannot find weights at /nonexistent/model.pth" in output
    assert "predictor.py" in output and "line 3" in output  # the user's own frame


def test_missing_repository_is_a_clear_error(tmp_path):
    result = run_tritonize("serve", str(tmp_path / "nope"), check=False)
    assert result.returncode != 0
    assert "no such model repository" in result.stderr and "tritonize build" in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path):
    import socket

    repo = tmp_path / "repo"
    run_tritonize("build", os.path.join(FIXTURES, "project", "echo_predictor.py"), "-o", str(repo))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    http_port = busy.getsockname()[1]
    grpc_port, metrics_port = free_ports(2)
    try:
        result = run_tritonize(
            "serve",
            str(repo),
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(grpc_port),
            "--metrics-port",
            str(metrics_port),
            check=False,
        )
    finally:
        busy.close()
    assert result.returncode != 0
    assert f"http port 127.0.0.1:{http_port} is not available" in result.stderr


def _listening_addresses(port):
    """Local addresses listening on `port` (from iproute2's ss); IPv4-mapped IPv6 shown as IPv4."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    addresses = [line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()]
    return [a.replace("[::ffff:", "").rstrip("]") for a in addresses]


def test_serve_binds_localhost_and_filters_sensitive_headers_even_with_a_wide_pattern(tmp_path):
    from tritonize import Client

    repo = tmp_path / "repo"
    run_tritonize(
        "build",
        os.path.join(FIXTURES, "project", "echo_predictor.py"),
        "-o",
        str(repo),
        "--name",
        "echo",
        "--config",
        "greeting=hi",
    )
    # every header without "_" (a pattern matching the reserved content_type/tritonize_query is refused)
    serve = ServeProcess(str(repo), extra_args=["--header-pattern", "^[a-z0-9-]+$"])
    try:
        assert serve.wait_ready(), serve.output()
        for port in (serve.http_port, serve.grpc_port, serve.metrics_port):
            assert _listening_addresses(port) == ["127.0.0.1"], port
        for protocol, url in (("http", serve.http_url), ("grpc", serve.grpc_url)):
            with Client(url, protocol=protocol) as client:
                out = client.predict(
                    "echo",
                    {"a": 1},
                    headers={"Authorization": "Bearer s", "Cookie": "c=1", "X-Team": "ml", "Accept-Language": "fr"},
                )
            headers = out["headers"]
            assert headers["x-team"] == "ml", protocol
            assert not {"authorization", "cookie", "host", "content-length"} & set(headers), (protocol, headers)
            if protocol == "http":  # Triton forwards every such HTTP header; the runtime drops the sensitive ones
                assert headers["accept-language"] == "fr"
    finally:
        assert serve.stop() == 0, serve.output()


def _tritonservers_for(repo):
    out = subprocess.run(["pgrep", "-f", "--", f"--model-repository={repo}"], capture_output=True, text=True).stdout
    return out.split()


def _wait_gone(repo, timeout=30):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _tritonservers_for(repo):
        time.sleep(0.2)
    return _tritonservers_for(repo)


@pytest.mark.parametrize("how", ["sigterm-twice", "sigkill"])
def test_no_orphaned_tritonserver(tmp_path, how):
    import signal
    import time

    repo = tmp_path / "repo"
    run_tritonize("build", os.path.join(FIXTURES, "project", "echo_predictor.py"), "-o", str(repo))
    serve = ServeProcess(str(repo))
    assert serve.wait_ready(), serve.output()
    assert _tritonservers_for(repo)
    if how == "sigkill":  # tritonize itself dies: tritonserver must not outlive it
        serve.process.kill()
    else:  # an impatient operator (or `timeout` + pkill) signals twice
        serve.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        serve.process.send_signal(signal.SIGTERM)
    serve.process.wait(timeout=60)
    assert _wait_gone(repo) == [], serve.output()
    serve.log.close()
