"""End to end on real Triton: Cortex users' project habits.

The project's .env as the predictor's environment (at import time and in __init__), an optional
__init__ argument with a default, and `kind: TrafficSplitter` on the Cortex endpoint: the split by
weight (statistically), the shadow getting a copy of every request, and a failing or slow shadow
changing nothing for the client; `tritonize status` shows requests per target.
"""

import concurrent.futures
import json
import math
import textwrap
import time
import urllib.request

import pytest
import requests
from conftest import ServeProcess, run_tritonize

pytestmark = pytest.mark.e2e
ADMIN_TOKEN = "cortex-projects-token"

ENV_PREDICTOR = textwrap.dedent(
    """
    import os

    AT_IMPORT = os.environ.get("FOO")


    class PythonPredictor:
        def __init__(self, config):
            self.at_init = os.environ["FOO"]
            self.quoted = os.environ["QUOTED"]

        def predict(self, payload):
            return {
                "import": AT_IMPORT,
                "init": self.at_init,
                "quoted": self.quoted,
                "spec_only": os.environ.get("SPEC_ONLY"),
                "dotenv_file_shipped": os.path.exists(".env"),
                "aws_shipped": os.path.exists(".aws"),
            }
    """
)
DEFAULTED_PREDICTOR = textwrap.dedent(
    """
    class PythonPredictor:
        def __init__(self, config, python_client=None, job_spec="no job"):
            self.python_client, self.job_spec = python_client, job_spec

        def predict(self, payload):
            return {"python_client_is_none": self.python_client is None, "job_spec": self.job_spec}
    """
)
TARGET_PREDICTOR = textwrap.dedent(
    """
    import time


    class PythonPredictor:
        def __init__(self, config):
            self.config = config

        def predict(self, payload):
            mode = self.config.get("mode")
            if mode == "fail":
                raise RuntimeError("the shadow fails")
            if mode == "slow":
                time.sleep(1.5)
            if mode == "log":
                with open(self.config["log"], "a") as f:
                    f.write(str(payload["id"]) + "\\n")
            return {"who": self.config["who"], "id": payload.get("id")}
    """
)


def _api(name, path, config=None, env=None):
    entry = {"name": name, "kind": "RealtimeAPI", "predictor": {"type": "python", "path": path}}
    if config:
        entry["predictor"]["config"] = config
    if env:
        entry["predictor"]["env"] = env
    return entry


def _splitter(name, apis, shadow=None, endpoint=None):
    entry = {"name": name, "kind": "TrafficSplitter", "apis": [{"name": n, "weight": w} for n, w in apis]}
    if shadow:
        entry["apis"].append({"name": shadow, "weight": 0, "shadow": True})
    if endpoint:
        entry["networking"] = {"endpoint": endpoint}
    return entry


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("cortex_projects")
    project = work / "project"
    (project / ".aws").mkdir(parents=True)
    (project / ".aws" / "credentials").write_text("[default]\naws_secret_access_key=s3cr3t\n")
    (project / ".env").write_text('# as Cortex sourced it\nexport FOO=from-dotenv\nQUOTED="two words"\n')
    (project / "env_predictor.py").write_text(ENV_PREDICTOR)
    (project / "defaulted_predictor.py").write_text(DEFAULTED_PREDICTOR)
    (project / "target.py").write_text(TARGET_PREDICTOR)
    shadow_log = work / "shadow.log"
    spec = [
        _api("envreader", "env_predictor.py", env={"FOO": "from-spec", "SPEC_ONLY": "spec"}),
        _api("defaulted", "defaulted_predictor.py"),
        _api("a", "target.py", {"who": "a"}),
        _api("b", "target.py", {"who": "b"}),
        _api("shadow-log", "target.py", {"who": "shadow", "mode": "log", "log": str(shadow_log)}),
        _api("shadow-fail", "target.py", {"who": "shadow", "mode": "fail"}),
        _api("shadow-slow", "target.py", {"who": "shadow", "mode": "slow"}),
        _splitter("split", [("a", 70), ("b", 30)], shadow="shadow-log", endpoint="v1/ab"),
        _splitter("split-failing-shadow", [("a", 50), ("b", 50)], shadow="shadow-fail"),
        _splitter("split-slow-shadow", [("a", 100)], shadow="shadow-slow"),
    ]
    (project / "cortex.yaml").write_text(json.dumps(spec))  # JSON is YAML
    repo = work / "model_repository"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    serve = ServeProcess(str(repo), extra_args=["--admin-token", ADMIN_TOKEN])
    serve.cortex = f"http://127.0.0.1:{serve.cortex_port}"
    serve.shadow_log = shadow_log
    assert serve.wait_ready(timeout=300), serve.output()
    serve.wait_cortex(timeout=60)
    yield serve
    serve.stop(timeout=120)


def _post(server, path, payload, session=requests):
    return session.post(server.cortex + path, json=payload, timeout=60)


def test_dotenv_is_the_predictors_environment_at_import_and_in_init(server):
    answer = _post(server, "/envreader", {})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "import": "from-dotenv",
        "init": "from-dotenv",
        "quoted": "two words",
        "spec_only": "spec",
        "dotenv_file_shipped": False,
        "aws_shipped": False,
    }


def test_an_optional_init_argument_keeps_its_default(server):
    answer = _post(server, "/defaulted", {})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"python_client_is_none": True, "job_spec": "no job"}


def _stats(server):
    with urllib.request.urlopen(server.cortex + "/_tritonize/traffic-splitters", timeout=10) as response:
        return {s["name"]: s for s in json.loads(response.read())["traffic_splitters"]}


def _wait_for(condition, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_the_split_follows_the_weights_and_the_shadow_gets_every_request(server):
    n, p = 1000, 0.7
    sent = list(range(n))

    def call(i):
        with requests.Session() as session:
            path = "/split" if i % 2 else "/v1/ab"  # the splitter's name and its networking.endpoint
            answer = _post(server, path, {"id": i}, session)
            assert answer.status_code == 200, answer.text
            assert answer.json()["id"] == i
            return answer.json()["who"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        whos = list(pool.map(call, sent))
    to_a = whos.count("a")
    assert whos.count("b") == n - to_a
    # Binomial(1000, 0.7): mean 700, sigma 14.5; 4 sigma (58) is missed once in ~16000 runs.
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(to_a - n * p) <= 4 * sigma, f"{to_a} of {n} went to a (70 % expected)"
    stats = _stats(server)["split"]
    assert [(t["name"], t["weight"], t["requests"]) for t in stats["targets"]] == [
        ("a", 70, to_a),
        ("b", 30, n - to_a),
    ]
    # The shadow got a copy of every request (its answers were discarded).
    assert _wait_for(lambda: _stats(server)["split"]["shadow"]["answered"] == n), _stats(server)["split"]
    assert sorted(int(line) for line in server.shadow_log.read_text().split()) == sent
    shadow = _stats(server)["split"]["shadow"]
    assert (shadow["name"], shadow["sent"], shadow["failed"], shadow["dropped"]) == ("shadow-log", n, 0, 0)
    status = run_tritonize(
        "status",
        "--url",
        server.http_url,
        "--metrics-url",
        f"127.0.0.1:{server.metrics_port}",
        "--cortex-url",
        server.cortex,
        "--token",
        ADMIN_TOKEN,
    )
    line = next(line for line in status.stdout.splitlines() if line.split()[:2] == ["split", "a"])
    assert line.split()[2:4] == ["70", str(to_a)], status.stdout


def test_a_failing_shadow_changes_nothing_for_the_client(server):
    before = _stats(server)["split-failing-shadow"]["shadow"]["failed"]
    with requests.Session() as session:
        for i in range(40):
            answer = _post(server, "/split-failing-shadow", {"id": i}, session)
            assert answer.status_code == 200, answer.text
            assert answer.json()["who"] in ("a", "b")
    assert _wait_for(lambda: _stats(server)["split-failing-shadow"]["shadow"]["failed"] == before + 40)
    # The shadow's failure reached neither the client nor the shadow's own API's callers.
    assert _post(server, "/shadow-fail", {"id": 0}).status_code == 500


def test_a_slow_shadow_never_delays_the_client(server):
    # Each copy takes the shadow 1.5 s and it has one instance: 8 copies queue for 12 s. Had the client
    # waited for them, 8 sequential requests would take over 12 s; they take well under 6 s even on a
    # loaded 2-CPU machine (each is a plain call to API a).
    start = time.monotonic()
    with requests.Session() as session:
        for i in range(8):
            answer = _post(server, "/split-slow-shadow", {"id": i}, session)
            assert answer.status_code == 200 and answer.json()["who"] == "a", answer.text
    elapsed = time.monotonic() - start
    assert elapsed < 6.0, f"8 requests took {elapsed:.1f} s behind a slow shadow"
    assert _wait_for(lambda: _stats(server)["split-slow-shadow"]["shadow"]["answered"] == 8, timeout=120)
