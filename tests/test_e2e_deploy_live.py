"""Against a live `tritonize serve`: the autoscaling metric exists and measures requests in flight,
and `tritonize status` reports what the server did."""

import json
import os
import re
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize.client.status import collect, parse_metrics
from tritonize.deploy.k8s import keda_query
from tritonize.deploy.target import deploy_k8s, deploy_target

pytestmark = pytest.mark.e2e
SPEC = os.path.join(FIXTURES, "replica", "cortex.yaml")
CONCURRENCY = 4
ADMIN_TOKEN = "live-admin-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    repo = str(tmp / "repo")
    run_tritonize("build", SPEC, "-o", repo)
    # serve restricts the statistics endpoints to a token; status reads it from the environment.
    serve = ServeProcess(repo, extra_args=["--admin-token", ADMIN_TOKEN])
    previous = os.environ.get("TRITONIZE_ADMIN_TOKEN")
    os.environ["TRITONIZE_ADMIN_TOKEN"] = ADMIN_TOKEN
    try:
        assert serve.wait_ready(), serve.output()
        yield serve
    finally:
        serve.stop()
        if previous is None:
            os.environ.pop("TRITONIZE_ADMIN_TOKEN", None)
        else:
            os.environ["TRITONIZE_ADMIN_TOKEN"] = previous


def infer(url, body):
    data = json.dumps(
        {"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": [json.dumps(body)]}]}
    ).encode()
    request = urllib.request.Request(f"http://{url}/v2/models/replica/infer", data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def metrics(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as response:
        return parse_metrics(response.read().decode())


def value(samples, name, model="replica"):
    return sum(v for n, labels, v in samples if n == name and labels.get("model") == model)


def test_autoscaling_metric_exists_and_measures_requests_in_flight(server, tmp_path):
    out = str(tmp_path / "deploy")
    deploy_k8s(SPEC, output=out, image="i:1")
    target, _ = deploy_target(SPEC, image="i:1")
    with open(os.path.join(out, "monitoring", "prometheus-adapter-values.yaml")) as f:
        rule_text = f.read()
    used = set(re.findall(r"\bnv_[a-z_]+", rule_text + keda_query(target)))
    assert used == {"nv_inference_request_duration_us"}
    # Closed loop at CONCURRENCY: the rate of the request-duration counter / 1e6 = requests in flight.
    before, t0 = metrics(server), time.monotonic()
    stop = time.monotonic() + 3.0

    def loop():
        while time.monotonic() < stop:
            assert infer(server.http_url, {"x": 1}) == 200

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for future in [pool.submit(loop) for _ in range(CONCURRENCY)]:
            future.result()
    after, t1 = metrics(server), time.monotonic()
    names = {n for n, labels, _ in after if labels.get("model") == "replica"}
    assert used <= names, f"{used - names} not exported by Triton"
    in_flight = (
        (value(after, "nv_inference_request_duration_us") - value(before, "nv_inference_request_duration_us"))
        / 1e6
        / (t1 - t0)
    )
    print(f"measured in flight: {in_flight:.2f} at client concurrency {CONCURRENCY}")
    # Client time outside the server (HTTP, Python threads on 2 cores) makes it somewhat lower.
    assert CONCURRENCY * 0.6 <= in_flight <= CONCURRENCY * 1.05
    assert target.autoscaling.target_replica_concurrency == 4 and target.autoscaling.window_s == 30


def _send_and_read_status(server):
    """20 good + 2 failing requests, then `tritonize status` -> (its header cells, replica row cells, base)."""
    base = {s.name: s for s in collect(server.http_url, f"127.0.0.1:{server.metrics_port}", token=ADMIN_TOKEN)}[
        "replica"
    ]
    statuses = [infer(server.http_url, {"x": i}) for i in range(20)]
    statuses += [infer(server.http_url, {"fail": True}) for _ in range(2)]
    assert statuses.count(200) == 20 and statuses.count(500) == 2
    result = run_tritonize("status", "--url", server.http_url, "--metrics-url", f"127.0.0.1:{server.metrics_port}")
    lines = result.stdout.splitlines()
    return lines, re.split(r"\s{2,}", lines[0]), lines[1].split(), base


def test_status_reports_state_instances_requests_errors_and_latency(server):
    # serve's default: no latency summaries (they cost ~20 % throughput); means from the statistics.
    lines, header, cells, base = _send_and_read_status(server)
    assert header == ["api", "status", "instances", "requests", "errors", "mean ms", "queue ms", "waiting"]
    assert cells[:3] == ["replica", "ready", "1"]
    assert int(cells[3]) == base.requests + 22 and int(cells[4]) == base.errors + 2
    assert 10 <= float(cells[5]) < 1000  # the predictor sleeps 20 ms (its 2 failures do not)
    assert 0 <= float(cells[6]) < float(cells[5])
    assert "--latency-percentiles" in lines[-1]


def test_status_shows_percentiles_when_serve_exports_them(tmp_path):
    repo = str(tmp_path / "repo")
    run_tritonize("build", SPEC, "-o", repo)
    serve = ServeProcess(repo, extra_args=["--admin-token", ADMIN_TOKEN, "--latency-percentiles"])
    try:
        assert serve.wait_ready(), serve.output()
        lines, header, cells, _ = _send_and_read_status(serve)
    finally:
        serve.stop()
    assert header[5:] == ["mean ms", "queue ms", "p50 ms", "p99 ms", "queue p50", "queue p99", "waiting"]
    mean, p50, p99 = float(cells[5]), float(cells[7]), float(cells[8])
    assert 20 <= p50 <= p99 < 1000 and 10 <= mean < 1000
    assert 0 <= float(cells[9]) <= float(cells[10])
    assert not any("--latency-percentiles" in line for line in lines)


def test_status_watch_refreshes(server):
    import subprocess

    from conftest import tritonize_cmd

    process = subprocess.Popen(
        tritonize_cmd(
            "status", "--url", server.http_url, "--metrics-url", f"127.0.0.1:{server.metrics_port}", "--watch", "0.3"
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)
    process.terminate()
    output = process.communicate(timeout=10)[0]
    assert output.count("replica  ready") >= 3, output


def test_status_of_an_unreachable_server_is_one_line():
    result = run_tritonize("status", "--url", "127.0.0.1:9", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach http://127.0.0.1:9/v2/repository/index")


def test_status_sends_the_admin_token_and_shows_failed_models(monkeypatch):
    """A stand-in for a restricted server: answers only with the token; one model failed to load."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            self.do_GET()

        def do_GET(self):
            if self.headers.get("tritonize-admin-token") != "s3cret":
                return self._send(403, {"error": "This API is restricted"})
            if self.path == "/v2/repository/index":
                return self._send(
                    200,
                    [
                        {
                            "name": "bad",
                            "version": "1",
                            "state": "UNAVAILABLE",
                            "reason": "load failed: ImportError: no module named torch",
                        },
                        {"name": "slow", "state": "LOADING"},
                    ],
                )
            return self._send(200, {"model_stats": []})

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"127.0.0.1:{httpd.server_address[1]}"
    try:
        result = run_tritonize("status", "--url", url, "--metrics-url", url, check=False)
        assert result.returncode == 1 and "403" in result.stderr and "TRITONIZE_ADMIN_TOKEN" in result.stderr
        result = run_tritonize(
            "status", "--url", url, "--metrics-url", url, env={**os.environ, "TRITONIZE_ADMIN_TOKEN": "s3cret"}
        )
        lines = result.stdout.splitlines()
        assert lines[1].split()[:2] == ["bad", "failed"] and lines[2].split()[:2] == ["slow", "loading"]
        assert "bad: load failed: ImportError: no module named torch" in lines
    finally:
        httpd.shutdown()
