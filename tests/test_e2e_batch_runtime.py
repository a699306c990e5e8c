"""A BatchAPI on real Triton (issue 25): built beside a RealtimeAPI, not loaded at start, loaded by hand
for a job through the repository API with the job's config, batches as inference requests.

What a job engine does (the Cortex endpoint's, batch-jobs) is done here by hand, with the same helper
(`repository_model.batch_load_config`) and Triton's HTTP API, so that the runtime's protocol is pinned
on its own.
"""

import json
import os
import time
import urllib.error
import urllib.request

import pytest
from conftest import ServeProcess, run_tritonize

from tritonize.adapter.runtime.constants import ADMIN_TOKEN_HEADER
from tritonize.adapter.runtime.repository_model import batch_load_config
from tritonize.client.status import collect, format_table

pytestmark = pytest.mark.e2e

TOKEN = "batch-runtime-test-token"

REALTIME = """
class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        return {"echo": payload}
"""

# Writes what it got into config["out"] (a folder of the test): __init__'s config and job_spec, each batch.
BATCH = """
import json
import os


class PythonPredictor:
    def __init__(self, job_spec, config):
        if config.get("fail_init"):
            raise RuntimeError("no model at " + config["fail_init"])
        self.out = config["out"]
        with open(os.path.join(self.out, f"init-{os.getpid()}.json"), "w") as f:
            json.dump({"config": config, "job_spec": job_spec}, f)

    def predict(self, batch_id, payload):
        if payload and payload[0] == "fail":
            raise ValueError("cannot score item " + "x" * 600)
        with open(os.path.join(self.out, f"batch-{batch_id}.json"), "w") as f:
            json.dump({"payload": payload, "batch_id": batch_id, "pid": os.getpid()}, f)
        return "ignored"

    def on_job_complete(self):
        with open(os.path.join(self.out, "complete.txt"), "a") as f:
            f.write("done\\n")
"""


def _call(url, path, body=None, token=TOKEN, timeout=120):
    request = urllib.request.Request(
        f"http://{url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={ADMIN_TOKEN_HEADER: token} if token else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read()
            return response.status, json.loads(data) if data.strip() else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _batch(url, items, batch_id, on_job_complete=False, text=None):
    parameters = {"batch_id": batch_id}
    if on_job_complete:
        parameters["tritonize_on_job_complete"] = True
    body = {
        "inputs": [{"name": "BATCH", "shape": [1], "datatype": "BYTES", "data": [text or json.dumps(items)]}],
        "parameters": parameters,
    }
    return _call(url, "/v2/models/job/infer", body, token=None)


def _state(url, name):
    status, index = _call(url, "/v2/repository/index", {})
    assert status == 200, index
    return next(m for m in index if m["name"] == name).get("state", "")


def _wait_state(url, name, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while _state(url, name) != wanted:
        assert time.monotonic() < deadline, f"{name} never reached {wanted}"
        time.sleep(0.2)


def _ready(url):
    try:
        with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    project = root / "project"
    project.mkdir()
    (project / "realtime.py").write_text(REALTIME)
    (project / "batch.py").write_text(BATCH)
    out = root / "out"
    out.mkdir()
    (project / "cortex.yaml").write_text(
        "- name: echo\n  kind: RealtimeAPI\n  predictor: {type: python, path: realtime.py}\n"
        "- name: job\n  kind: BatchAPI\n  predictor:\n    type: python\n    path: batch.py\n"
        f"    config: {{out: {json.dumps(str(out))}, model: {{name: base, size: 1}}, threshold: 0.5}}\n"
    )
    repo = root / "repo"
    built = run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    assert "job: BatchAPI" in built.stdout, built.stdout
    serve = ServeProcess(str(repo), extra_args=["--no-cortex", "--admin-token", TOKEN])
    try:
        assert serve.wait_ready(timeout=180), serve.output()
        yield serve, str(repo), out
    finally:
        serve.stop()


def _load_job(url, repo, job_spec, workers=2):
    config = batch_load_config(repo, "job", workers, job_spec)
    return _call(url, "/v2/repository/models/job/load", {"parameters": {"config": json.dumps(config)}})


def _job_spec(job_id, config):
    return {
        "job_id": job_id,
        "api_name": "job",
        "kind": "BatchAPI",
        "workers": 2,
        "config": config,
        "total_batch_count": 3,
        "start_time": "2026-12-05T01:00:00Z",
        "created_time": "2026-12-05T01:00:00Z",
        "timeout": None,
    }


def test_a_batch_api_is_not_loaded_at_start_and_readiness_does_not_wait_for_it(served):
    serve, _, _ = served
    assert _state(serve.http_url, "echo") == "READY"
    assert _state(serve.http_url, "job") in ("", "UNAVAILABLE")  # never loaded (or unloaded by a test)
    assert _ready(serve.http_url) == 200
    status, answer = _call(
        serve.http_url,
        "/v2/models/echo/infer",
        {"inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": ['{"x": 1}']}]},
        token=None,
    )
    assert status == 200 and json.loads(answer["outputs"][0]["data"][0]) == {"echo": {"x": 1}}
    # `tritonize status`: a BatchAPI no job has loaded is idle (its kind comes from the repository).
    statuses = {s.name: s for s in collect(serve.http_url, token=TOKEN, batch_apis={"job"})}
    assert (statuses["job"].kind, statuses["job"].state) == ("BatchAPI", "idle")
    assert (statuses["echo"].kind, statuses["echo"].state) == ("RealtimeAPI", "ready")
    table = format_table(list(statuses.values())).splitlines()
    assert table[0].split()[:3] == ["api", "kind", "status"]
    assert [line.split()[:3] for line in table[1:3]] == [["echo", "RealtimeAPI", "ready"], ["job", "BatchAPI", "idle"]]


def test_a_job_loads_the_batch_api_with_its_config_and_runs_batches(served):
    serve, repo, out = served
    url = serve.http_url
    spec = _job_spec("job-1", {"model": {"name": "tuned"}, "extra": [1, 2]})
    # Without the admin token the repository API refuses the load.
    config = batch_load_config(repo, "job", 2, spec)
    status, _ = _call(url, "/v2/repository/models/job/load", {"parameters": {"config": json.dumps(config)}}, token=None)
    assert status == 403
    status, answer = _load_job(url, repo, spec)
    assert status == 200, answer
    assert _state(url, "job") == "READY" and _ready(url) == 200
    _, loaded = _call(url, "/v2/models/job/config")
    assert loaded["instance_group"][0]["count"] == 2
    (running,) = [s for s in collect(url, token=TOKEN) if s.name == "job"]  # told by its config while loaded
    assert (running.kind, running.state, running.instances) == ("BatchAPI", "running", 2)
    # Two workers, each constructed with the merged config (the job's values win, nested merged) and the spec.
    inits = [json.loads(p.read_text()) for p in out.glob("init-*.json")]
    assert len(inits) == 2, inits
    for init in inits:
        assert init["job_spec"] == spec
        assert init["config"]["model"] == {"name": "tuned", "size": 1}
        assert init["config"]["threshold"] == 0.5 and init["config"]["extra"] == [1, 2]
        assert init["config"]["out"] == str(out)

    status, answer = _batch(url, [{"a": 1}, {"a": 2}], "b-1")
    assert status == 200, answer
    assert answer["outputs"][0]["name"] == "RESULT" and json.loads(answer["outputs"][0]["data"][0]) == {"ok": True}
    got = json.loads((out / "batch-b-1.json").read_text())
    assert got["payload"] == [{"a": 1}, {"a": 2}] and got["batch_id"] == "b-1"

    # A failing batch: the contract's message (type, first 500 chars), no traceback; the next batch works.
    status, answer = _batch(url, ["fail"], "b-2")
    assert status == 500
    assert answer["error"] == "predict() raised ValueError: " + ("cannot score item " + "x" * 600)[:500]
    assert "Traceback" not in answer["error"]
    status, answer = _batch(url, ["ok"], "b-3")
    assert status == 200, answer
    assert json.loads((out / "batch-b-3.json").read_text())["payload"] == ["ok"]
    # An unparsable batch is the job engine's bug: a 400.
    status, answer = _batch(url, None, "b-4", text="{not json")
    assert status == 400 and "BATCH is not JSON" in answer["error"]
    assert not (out / "complete.txt").exists()

    status, answer = _batch(url, None, "", on_job_complete=True, text="null")
    assert status == 200, answer
    assert (out / "complete.txt").read_text() == "done\n"
    log = serve.output()
    assert "predict() failed for batch b-2" in log and "ValueError: cannot score item" in log  # the traceback

    status, _ = _call(url, "/v2/repository/models/job/unload", {})
    assert status == 200
    _wait_state(url, "job", "UNAVAILABLE")
    assert _ready(url) == 200
    status, _ = _batch(url, ["late"], "b-5")
    assert status in (400, 404)  # no such model loaded
    for path in out.iterdir():
        path.unlink()


def test_a_worker_that_cannot_start_answers_why_and_keeps_the_server_ready(served):
    serve, repo, out = served
    url = serve.http_url
    status, answer = _load_job(url, repo, _job_spec("job-2", {"fail_init": "s3://bucket/missing"}), workers=1)
    assert status == 200, answer
    status, answer = _batch(url, [1], "b-1")
    assert status == 503
    assert answer["error"] == (
        "worker did not start: PythonPredictor.__init__ failed: RuntimeError: no model at s3://bucket/missing"
    )
    assert _ready(url) == 200  # a failed load would have kept Triton's readiness false
    _call(url, "/v2/repository/models/job/unload", {})
    _wait_state(url, "job", "UNAVAILABLE")
    # Loaded by hand without a job: loads, says so.
    status, answer = _call(url, "/v2/repository/models/job/load", {})
    assert status == 200, answer
    status, answer = _batch(url, [1], "b-1")
    assert status == 503 and "loaded without a job" in answer["error"]
    _call(url, "/v2/repository/models/job/unload", {})
    _wait_state(url, "job", "UNAVAILABLE")
    assert _ready(url) == 200
    assert not list(out.glob("batch-*"))


def test_a_killed_worker_is_healed_with_its_job_config(served):
    """The watchdog reloads a dead instance's model with the config it is loaded with (contract item 3):
    two instances and the job spec survive."""
    serve, repo, out = served
    url = serve.http_url
    spec = _job_spec("job-3", {"model": {"name": "healed"}})
    status, answer = _load_job(url, repo, spec, workers=2)
    assert status == 200, answer
    pids = {json.loads(p.read_text())["job_spec"]["job_id"]: p for p in out.glob("init-*.json")}
    assert set(pids) == {"job-3"}
    victim = int(sorted(out.glob("init-*.json"))[0].name[len("init-") : -len(".json")])
    os.kill(victim, 9)
    deadline = time.monotonic() + 120
    while "API 'job': reloaded in" not in serve.output():
        assert time.monotonic() < deadline, serve.output()
        time.sleep(0.5)
    _, loaded = _call(url, "/v2/models/job/config")
    assert loaded["instance_group"][0]["count"] == 2
    assert json.loads(loaded["parameters"]["tritonize_job_spec"]["string_value"]) == spec
    status, answer = _batch(url, ["after"], "b-heal")
    assert status == 200, answer
    after = json.loads((out / "batch-b-heal.json").read_text())
    assert after["pid"] != victim
    fresh = [json.loads(p.read_text()) for p in out.glob("init-*.json") if p.name != f"init-{victim}.json"]
    assert len(fresh) >= 2 and all(i["job_spec"] == spec and i["config"]["model"]["name"] == "healed" for i in fresh)
    _call(url, "/v2/repository/models/job/unload", {})
    _wait_state(url, "job", "UNAVAILABLE")


def test_the_image_supervisor_starts_without_the_batch_api_and_its_ready_says_idle(served, tmp_path):
    """server/container.py (the image's entrypoint) around the wheel's tritonserver: the same repository,
    the BatchAPI not loaded at start, /ready green and naming it idle, then running while a job has it."""
    import signal
    import subprocess
    import sys

    from conftest import free_ports
    from production_checks import urllib_call, wait_until

    from tritonize.host.triton_install import find_triton

    _, repo, _ = served
    triton = find_triton()
    http, grpc, metrics, health = free_ports(4)
    command = [
        triton.binary,
        f"--model-repository={repo}",
        f"--http-port={http}",
        f"--grpc-port={grpc}",
        f"--metrics-port={metrics}",
        f"--backend-directory={triton.make_backend_dir(str(tmp_path / 'backends'))}",
    ]
    env = {
        **triton.environment(),
        "TRITONIZE_CORTEX_PORT": "off",
        "TRITONIZE_HEALTH_PORT": str(health),
        "TRITONIZE_ADMIN_TOKEN": TOKEN,
    }
    log = open(tmp_path / "supervisor.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tritonize.server.container", *command],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = (tmp_path / "supervisor.log").read_text
    call = urllib_call()
    url = f"127.0.0.1:{http}"
    try:
        wait_until(lambda: call("GET", health, "/ready")[0] == 200, 180, "ready", log=output)
        assert json.loads(call("GET", health, "/ready")[1])["apis"] == {"echo": "ready", "job": "idle (BatchAPI)"}
        assert _state(url, "job") == "" and _ready(url) == 200
        assert "tritonize: ready in" in output() and "(echo)" in output()
        status, answer = _load_job(url, repo, _job_spec("image-job", {"fail_init": "on purpose"}), workers=1)
        assert status == 200, answer
        assert json.loads(call("GET", health, "/ready")[1])["apis"]["job"] == "running a job"
        assert call("GET", health, "/ready")[0] == 200
        _call(url, "/v2/repository/models/job/unload", {})
        _wait_state(url, "job", "UNAVAILABLE")
        assert json.loads(call("GET", health, "/ready")[1])["apis"]["job"] == "idle (BatchAPI)"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, output()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_a_repository_of_batch_apis_only_serves_ready_with_nothing_loaded(tmp_path):
    (tmp_path / "batch.py").write_text(BATCH)
    (tmp_path / "cortex.yaml").write_text("- name: job\n  kind: BatchAPI\n  predictor: {path: batch.py}\n")
    run_tritonize("build", str(tmp_path / "cortex.yaml"), "-o", str(tmp_path / "repo"))
    serve = ServeProcess(str(tmp_path / "repo"), extra_args=["--no-cortex", "--admin-token", TOKEN])
    try:
        assert serve.wait_ready(timeout=180), serve.output()
        deadline = time.monotonic() + 30
        while "Press Ctrl-C to stop." not in serve.output():
            assert time.monotonic() < deadline and serve.process.poll() is None, serve.output()
            time.sleep(0.2)
        output = serve.output()
        assert "APIs    (none loaded at start)" in output and "BatchAPIs job (not loaded" in output, output
        assert _state(serve.http_url, "job") == ""
    finally:
        assert serve.stop() == 0
