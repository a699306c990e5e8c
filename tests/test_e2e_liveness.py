"""The Kubernetes liveness check (adapter/liveness.py) against a real tritonserver whose stub dies."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURES, free_ports, run_tritonize

from tritonize import Client, PredictError
from tritonize.deploy.liveness import liveness_command
from tritonize.server.local_launcher import LocalTritonServer
from tritonize.server.options import ServerOptions

pytestmark = pytest.mark.e2e


def probe(server):
    command = liveness_command(server.options.http_port)
    env = dict(os.environ, TRITONIZE_TRITON_PID=str(server.process.pid))
    result = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30)
    return result.returncode, result.stderr


def test_liveness_fails_when_an_instance_process_died(tmp_path, monkeypatch):
    shutil.copytree(os.path.join(FIXTURES, "robust"), tmp_path / "project")
    repo = tmp_path / "repo"
    run_tritonize("build", str(tmp_path / "project" / "cortex.yaml"), "-o", str(repo))
    http, grpc, metrics = free_ports(3)
    # As in a pod: no watchdog reloads the model; only the liveness probe can notice.
    monkeypatch.setattr(LocalTritonServer, "_start_watchdog", lambda self, **kwargs: None)
    server = LocalTritonServer(
        ServerOptions(str(repo), http_port=http, grpc_port=grpc, metrics_port=metrics, admin_token="t")
    )
    server.start()
    try:
        server.wait_ready(timeout=120)
        assert probe(server) == (0, "")
        with Client(f"127.0.0.1:{http}") as client:
            with pytest.raises(PredictError):
                client.predict("robust", {}, query_params={"op": "exit"})
            with pytest.raises(PredictError) as err:  # Triton still says READY, but the API is dead
                client.predict("robust", {}, query_params={"op": "echo"})
            assert "not healthy" in err.value.message
        code, message = probe(server)
        assert code == 1 and "of tritonserver died" in message
    finally:
        server.stop()
    code, message = probe(server)
    assert code == 1 and "not live" in message


def test_liveness_counts_only_dead_stubs_and_ignores_http_proxy(tmp_path):
    """A zombie that is not a python-backend stub (a predictor's own subprocess re-parented to
    tritonserver) does not fail the probe; a dead stub does. The pod's http_proxy is not used."""
    import http.server
    import threading
    import time

    class Live(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Live)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ["PATH"],
        "TRITONIZE_LIVE_URL": f"http://127.0.0.1:{server.server_address[1]}/v2/health/live",
        "TRITONIZE_TRITON_PID": str(os.getpid()),  # this test process plays tritonserver
        "http_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }

    def probe_script():
        return subprocess.run([sys.executable, *liveness_command()[1:]], env=env, capture_output=True, text=True)

    try:
        other = subprocess.Popen(["true"])  # not waited for: a zombie child named "true"
        time.sleep(0.3)
        result = probe_script()
        assert result.returncode == 0, result.stderr
        stub = tmp_path / "triton_python_backend_stub"
        shutil.copy("/bin/true", stub)
        dead_stub = subprocess.Popen([str(stub)])
        time.sleep(0.3)
        result = probe_script()
        assert result.returncode != 0 and str(dead_stub.pid) in result.stderr, result.stderr
        dead_stub.wait()
        other.wait()
    finally:
        server.shutdown()
