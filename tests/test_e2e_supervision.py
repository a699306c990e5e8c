"""End to end on real Triton: serve survives what broke it in the adversarial run (issue 17):
a request that segfaults tritonserver, a reader of its output that goes away, http_proxy,
restarting on the ports just released, SIGTERM under keep-alive load, intentional unloads,
and a SIGKILL of serve itself."""

import glob
import http.client as http_client
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

import pytest
from conftest import ServeProcess, run_tritonize
from test_e2e_reliability import build_robust, http, wait_banner

from tritonize import Client
from tritonize.adapter.runtime.constants import ADMIN_TOKEN_ENV

pytestmark = pytest.mark.e2e

TOKEN = "supervision-test-token"
ENV = {ADMIN_TOKEN_ENV: TOKEN}


# The query parameters of a request travel as the envelope's parameters.
EMPTY_ENVELOPE = {"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": ["{}"]}]}


def nested_arrays_envelope(depth=120_000):
    """A valid KServe envelope plus ~240 KB of nested arrays in an unknown field: segfaults
    Triton 2.51's HTTP JSON parser (stack overflow)."""
    inputs = [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": ["{}"]}]
    head = json.dumps({"inputs": inputs})[:-1]
    return (head + ', "junk": ' + "[" * depth + "]" * depth + "}").encode()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return build_robust(tmp_path_factory.mktemp("supervision"), names=["robust"])


def _infer(serve, body, timeout=30):
    request = urllib.request.Request(f"http://{serve.http_url}/v2/models/robust/infer", data=body)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


def test_a_crashed_tritonserver_is_restarted_and_the_report_shows_the_cause(repo):
    serve = ServeProcess(str(repo), env=ENV)
    try:
        assert serve.wait_ready(), serve.output()
        wait_banner(serve)
        with pytest.raises(OSError):  # the connection dies with tritonserver
            _infer(serve, nested_arrays_envelope())
        deadline = time.monotonic() + 90
        while "[supervisor] Triton is ready again" not in serve.output():
            assert serve.process.poll() is None and time.monotonic() < deadline, serve.output()
            time.sleep(0.2)
        output = serve.output()
        assert "Triton stopped (killed by signal 11 (SIGSEGV))." in output, output
        assert "[supervisor] restarting Triton in 1 s (restart 1 of at most 5" in output
        report = output.split("error: Triton stopped", 1)[1].split("[supervisor]", 1)[0]
        # The cause, not the startup's old error lines (Triton prints nothing when it segfaults).
        assert "nothing printed since it was ready" in report and "CudaDriverHelper" not in report, report
        assert len(report.strip().splitlines()) <= 21, report
        assert "| Model " not in output.split("[supervisor] restarting", 1)[1]  # startup tables stay quiet
        with Client(serve.http_url) as client:  # the models loaded again
            assert client.predict("robust", {"after": 1})["payload"] == {"after": 1}
        with Client(serve.grpc_url, protocol="grpc") as client:
            assert client.predict("robust", {"g": 1})["payload"] == {"g": 1}
    finally:
        assert serve.stop() == 0, serve.output()


def test_serve_keeps_serving_when_its_output_reader_goes_away(repo):
    """`serve | head`: the pipe closes; Triton's output must still be drained, or the stubs block
    on a full pipe after ~64 KB of prints while health says ready."""
    read_end, write_end = os.pipe()
    serve = ServeProcess(str(repo), env=ENV, stdout=write_end)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as reader:
            seen = b""
            while b"Press Ctrl-C to stop." not in seen:
                chunk = reader.read1(65536)
                assert chunk, seen.decode(errors="replace")
                seen += chunk
        # Reader gone: 300 requests that each print 1 KB (~5 pipe buffers).
        envelope = json.dumps({**EMPTY_ENVELOPE, "parameters": {"op": "print", "n": "1024"}})
        for _ in range(300):
            request = urllib.request.Request(f"http://{serve.http_url}/v2/models/robust/infer", data=envelope.encode())
            with urllib.request.urlopen(request, timeout=20) as response:
                assert response.status == 200
        assert serve.process.poll() is None
    finally:
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(timeout=60) == 0


def test_serve_and_status_ignore_http_proxy_for_loopback(repo):
    dead_proxy = "http://127.0.0.1:9"  # nothing listens: every proxied request fails
    proxies = {"http_proxy": dead_proxy, "HTTP_PROXY": dead_proxy, "no_proxy": "", "NO_PROXY": ""}
    serve = ServeProcess(str(repo), env={**ENV, **proxies})
    try:
        assert serve.wait_ready(timeout=90), serve.output()
        wait_banner(serve)
        status = run_tritonize(
            "status", "--url", serve.http_url, "--metrics-url", f"127.0.0.1:{serve.metrics_port}",
            env={**os.environ, **ENV, **proxies},
        )  # fmt: skip
        assert "robust" in status.stdout, status.stdout
    finally:
        assert serve.stop() == 0, serve.output()


def _keep_alive_load(serve, stop, results, concurrency=16):
    """Clients on persistent connections, each request ~0.1 s: (start, end, outcome)."""

    def worker():
        conn = http_client.HTTPConnection("127.0.0.1", serve.http_port, timeout=60)
        body = json.dumps({**EMPTY_ENVELOPE, "parameters": {"op": "sleep", "s": "0.1"}})
        while not stop.is_set():
            start = time.monotonic()
            try:
                conn.request("POST", "/v2/models/robust/infer", body=body)
                response = conn.getresponse()
                response.read()
                outcome = "ok" if response.status == 200 else f"refused {response.status}"
            except OSError as exc:
                outcome = f"dropped {type(exc).__name__}"
                conn.close()
                conn = http_client.HTTPConnection("127.0.0.1", serve.http_port, timeout=60)
            results.append((start, time.monotonic(), outcome))
            if outcome != "ok":
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    return threads


def test_sigterm_drains_under_keep_alive_load_and_the_ports_can_be_reused_at_once(repo):
    serve = ServeProcess(str(repo), env=ENV)
    stop, results = threading.Event(), []
    try:
        assert serve.wait_ready(), serve.output()
        wait_banner(serve)
        threads = _keep_alive_load(serve, stop, results)
        time.sleep(2)
        sigterm = time.monotonic()
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(timeout=60) == 0
        took = time.monotonic() - sigterm
    finally:
        stop.set()
        serve.stop()
    for thread in threads:
        thread.join(timeout=70)
    in_flight = [r for r in results if r[0] < sigterm <= r[1]]
    lost = [r for r in in_flight if r[2] != "ok"]
    print(f"SIGTERM: serve exited after {took:.1f} s; {len(in_flight)} requests in flight, {len(lost)} lost")
    assert in_flight and not lost, (lost, serve.output())
    assert took < 8, serve.output()  # not the whole exit timeout (10 s) waiting on keep-alive connections
    # Triton's side of those connections is in TIME_WAIT now: serve binds through it, as Triton does.
    again = ServeProcess(str(repo), env=ENV, ports=(serve.http_port, serve.grpc_port, serve.metrics_port))
    try:
        assert again.wait_ready(), again.output()
    finally:
        assert again.stop() == 0, again.output()


def test_an_intentional_unload_is_not_taken_for_a_crash(repo):
    serve = ServeProcess(str(repo), env=ENV)
    try:
        assert serve.wait_ready(), serve.output()
        wait_banner(serve)
        assert http(serve, "/v2/repository/models/robust/unload", b"{}", token=TOKEN)[0] == 200
        time.sleep(3)  # the watchdog polls every 0.25 s
        index = json.loads(http(serve, "/v2/repository/index", b"{}", token=TOKEN)[1])
        assert [m.get("state") for m in index if m["name"] == "robust"] == ["UNAVAILABLE"], index
        assert "died" not in serve.output() and "reloading" not in serve.output(), serve.output()
        assert http(serve, "/v2/repository/models/robust/load", b"{}", token=TOKEN)[0] == 200
        with Client(serve.http_url) as client:
            assert client.predict("robust", {"x": 1})["payload"] == {"x": 1}
    finally:
        assert serve.stop() == 0, serve.output()


def test_sigkill_of_serve_leaves_nothing_behind_for_long(repo, tmp_path):
    """Triton follows serve (PR_SET_PDEATHSIG); the next serve removes the dead run's work folder
    and shared memory."""
    serve = ServeProcess(str(repo), env=ENV)
    assert serve.wait_ready(), serve.output()
    pid = serve.process.pid
    assert glob.glob(f"/tmp/tritonize-serve-{pid}-*")
    serve.process.send_signal(signal.SIGKILL)
    serve.process.wait()
    deadline = time.monotonic() + 30
    while _triton_still_running(serve.http_port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _triton_still_running(serve.http_port)
    assert glob.glob(f"/tmp/tritonize-serve-{pid}-*")  # left behind by the SIGKILL...
    second = ServeProcess(str(repo), env=ENV)
    try:
        assert second.wait_ready(), second.output()
        assert not glob.glob(f"/tmp/tritonize-serve-{pid}-*")  # ...and removed by the next start
        assert not glob.glob(f"/dev/shm/tritonize{pid}_*")
    finally:
        assert second.stop() == 0, second.output()


def _triton_still_running(port):
    result = subprocess.run(["pgrep", "-f", f"--http-port={port}"], capture_output=True)
    return result.returncode == 0


def test_the_ready_banner_warns_when_listening_on_every_address(repo):
    from tritonize.server.options import ServerOptions
    from tritonize.server.serve import ready_banner

    options = ServerOptions(str(repo), host="0.0.0.0", admin_token="t0k")
    assert re.search(r"warning: listening on 0\.0\.0\.0.*admin token", ready_banner(options, ["robust"], 1.0))
    assert "warning" not in ready_banner(ServerOptions(str(repo), admin_token="t0k"), ["robust"], 1.0)


def test_a_hung_predictor_is_reported_by_the_watchdog_and_fails_the_liveness_check(repo, tmp_path):
    import sys

    from tritonize.deploy.liveness import liveness_command

    serve = ServeProcess(str(repo), env={**ENV, "TRITONIZE_STUCK_AFTER_S": "3"})
    hung = json.dumps({**EMPTY_ENVELOPE, "parameters": {"op": "sleep", "s": "25"}}).encode()

    def send():
        try:
            urllib.request.urlopen(f"http://{serve.http_url}/v2/models/robust/infer", data=hung, timeout=60).read()
        except OSError:
            pass

    try:
        assert serve.wait_ready(), serve.output()
        wait_banner(serve)
        triton_pid = subprocess.run(["pgrep", "-P", str(serve.process.pid)], capture_output=True, text=True)
        env = {
            "PATH": os.environ["PATH"],
            "TRITONIZE_TRITON_PID": triton_pid.stdout.split()[0],
            "TRITONIZE_STUCK_AFTER_S": "3",
            "TRITONIZE_LIVENESS_STATE": str(tmp_path / "liveness.json"),
        }
        command = [sys.executable, *liveness_command(serve.http_port, serve.metrics_port)[1:]]
        assert subprocess.run(command, env=env, capture_output=True).returncode == 0
        for i in range(3):  # one runs for 25 s, two wait behind it
            threading.Thread(target=send, daemon=True).start()
            if i == 0:
                time.sleep(1)  # executing alone: the dynamic batcher must not take the others into its batch
        deadline = time.monotonic() + 30
        while "[watchdog] API 'robust' looks stuck: " not in serve.output():
            assert time.monotonic() < deadline, serve.output()
            time.sleep(0.2)
        first = subprocess.run(command, env=env, capture_output=True, text=True)
        status = run_tritonize(
            "status", "--url", serve.http_url, "--metrics-url", f"127.0.0.1:{serve.metrics_port}",
            env={**os.environ, **ENV},
        )  # fmt: skip
        header, row = status.stdout.splitlines()[:2]
        assert header.split()[-1] == "waiting" and row.split()[-1] in ("1", "2"), status.stdout
        time.sleep(4)
        second = subprocess.run(command, env=env, capture_output=True, text=True)
        assert first.returncode == 0, first.stderr  # the first probe only starts the clock
        assert second.returncode != 0 and "stuck API(s): robust (" in second.stderr, second.stderr
    finally:
        serve.process.send_signal(signal.SIGINT)
        serve.process.send_signal(signal.SIGINT)  # do not wait for the hung request
        serve.process.wait(timeout=60)


def test_the_admin_token_is_blanked_from_tritonservers_command_line(repo):
    serve = ServeProcess(str(repo), env=ENV)
    try:
        assert serve.wait_ready(), serve.output()
        wait_banner(serve)
        triton_pid = subprocess.run(["pgrep", "-P", str(serve.process.pid)], capture_output=True, text=True)
        pid = triton_pid.stdout.split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        assert b"--http-restricted-api=" in cmdline and TOKEN.encode() not in cmdline, cmdline
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert TOKEN.encode() not in f.read()  # nor in the environment the predictors inherit
        assert http(serve, "/v2/repository/index", b"{}", token=TOKEN)[0] == 200  # Triton still checks it
        assert http(serve, "/v2/repository/index", b"{}", token="*" * len(TOKEN))[0] == 403
    finally:
        assert serve.stop() == 0, serve.output()
