"""End to end on real Triton: a bounded soak, and SIGTERM while requests are in flight."""

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize import Client, PredictError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from soak_load import run_soak  # noqa: E402  (benchmarks/ shares it with benchmarks/soak.py)

pytestmark = pytest.mark.e2e
SOAK_REQUESTS = int(os.environ.get("TRITONIZE_SOAK_REQUESTS", "20000"))


def serve_robust(work, *extra_args):
    shutil.copytree(os.path.join(FIXTURES, "robust"), work / "project")
    repo = work / "model_repository"
    run_tritonize("build", str(work / "project" / "cortex.yaml"), "-o", str(repo))
    serve = ServeProcess(str(repo), extra_args=list(extra_args))
    assert serve.wait_ready(), serve.output()
    return serve, repo


def tritonserver_pid(repo):
    out = subprocess.run(["pgrep", "-f", "--", f"--model-repository={repo}"], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    assert len(pids) == 1, pids
    return pids[0]


def test_soak_batching_api_answers_every_request(tmp_path):
    serve, repo = serve_robust(tmp_path)
    try:
        result = run_soak(f"http://{serve.http_url}", "batchy", SOAK_REQUESTS, 64, tritonserver_pid(repo))
        rss = result["rss_kib"]
        print(
            f"\nsoak: {result['requests']} requests at concurrency 64 in {result['seconds']} s "
            f"({result['throughput']} req/s); tritonserver RSS {rss['before']['tritonserver']} -> "
            f"{rss['after']['tritonserver']} KiB; stubs {rss['before']['stubs']} -> {rss['after']['stubs']} KiB"
        )
        assert result["statuses"] == {"200": SOAK_REQUESTS}, result
        assert result["wrong"] == 0, result  # every answer was the request's own
        # Reported above; a generous bound only catches a leak per request (20k x >=5 KiB).
        assert rss["tritonserver_growth"] < 100 * 1024, rss
        assert all(growth < 100 * 1024 for growth in rss["stub_growth"].values()), rss
    finally:
        assert serve.stop() == 0, serve.output()


def test_sigterm_during_load_finishes_in_flight_requests_and_leaves_nothing(tmp_path):
    serve, repo = serve_robust(tmp_path)
    triton_pid = tritonserver_pid(repo)

    def slow(i):
        with Client(serve.http_url, timeout_s=60) as client:
            try:
                return client.predict("robust", {"i": i}, query_params={"op": "sleep", "s": "0.4"})
            except PredictError as exc:
                return exc

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(slow, i) for i in range(6)]
        time.sleep(0.5)  # all sent; the one instance answers them one after the other (~2.4 s)
        serve.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with Client(serve.http_url, timeout_s=10) as client:  # a new request during the drain
            try:
                refused = client.predict("robust", {"late": True})
            except Exception as exc:  # connection refused or an error answer
                refused = exc
        results = [f.result(timeout=60) for f in futures]
    assert all(isinstance(r, dict) and r["slept"] for r in results), results
    assert not isinstance(refused, dict), refused
    assert serve.process.wait(timeout=60) == 0, serve.output()
    assert "Stopping Triton" in serve.output()
    serve.log.close()
    with pytest.raises(ProcessLookupError):
        os.kill(triton_pid, 0)
    leftover = subprocess.run(["pgrep", "-f", str(repo)], capture_output=True, text=True).stdout.split()
    assert leftover == [], leftover  # no tritonserver, no stub
    assert glob.glob(f"/dev/shm/tritonize{serve.process.pid}_*") == []
    print(f"\nrequest during shutdown: {refused!r}")
