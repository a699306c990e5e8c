"""End to end: predictors that take python_client, on real Triton, over HTTP and gRPC (local models).

One server holds four APIs (tests/fixtures/python_client/multi): `path` with versions, `paths`
(under Cortex's older `models` name), `dir` with live reloading every second, and `dir` with
cache_size 2.
"""

import json
import os
import shutil
import time
import urllib.request

import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize import Client, PredictError
from tritonize.adapter.runtime.constants import LOADED_MODELS_METRIC
from tritonize.client.status import parse_metrics

pytestmark = pytest.mark.e2e
PROTOCOLS = ["http", "grpc"]
ADMIN_TOKEN = "python-client-token"  # `tritonize status` reads the repository index
POLL_MARGIN_S = 1 + 8  # model_poll_interval (1 s) + a margin for a loaded 2-core box


def write_model(folder, model_id, scale, load_seconds=0):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump({"id": model_id, "scale": scale, "load_seconds": load_seconds}, f)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("python_client")
    project = work / "project"
    shutil.copytree(os.path.join(FIXTURES, "python_client", "multi"), project)
    models = project / "models"
    for version in (1, 2, 3):
        write_model(str(models / "versioned" / str(version)), f"v{version}", version)
    write_model(str(models / "a"), "a", 10)  # unversioned: version 1
    write_model(str(models / "b" / "7"), "b7", 100)
    write_model(str(models / "live" / "m1" / "1"), "m1v1", 1)
    for name, scale in (("p", 2), ("q", 3), ("r", 4)):
        write_model(str(models / "many" / name), name, scale)
    repo = work / "model_repository"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    serve = ServeProcess(str(repo), extra_args=["--admin-token", ADMIN_TOKEN])
    assert serve.wait_ready(), serve.output()
    serve.models = models
    yield serve
    assert serve.stop() == 0, serve.output()


def client_for(server, protocol):
    return Client(server.http_url if protocol == "http" else server.grpc_url, protocol=protocol)


def ask(client, api, x=1, **query):
    return client.predict(api, {"x": x}, query_params=query)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_single_path_versions_chosen_by_query_param(server, protocol):
    with client_for(server, protocol) as client:
        assert ask(client, "versions", x=2)["id"] == "v3"  # latest = highest version
        one = ask(client, "versions", x=2, version="1")
        assert (one["id"], one["answer"]) == ("v1", 2)
        assert ask(client, "versions", x=2, version="2")["answer"] == 4
        with pytest.raises(PredictError) as err:
            ask(client, "versions", version="9")
    assert err.value.status == 404
    assert "model _cortex_default of version 9 wasn't found" in err.value.message


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_paths_name_per_request_and_load_model_in_init(server, protocol):
    with client_for(server, protocol) as client:
        b = ask(client, "named", x=1, model="b")
        a = ask(client, "named", x=1, model="a")
        assert (b["id"], b["answer"], a["id"], a["answer"]) == ("b7", 100, "a", 10)
        assert a["loads"][:2] == ["b7", "a"]  # b was loaded by __init__ (config.warm)
        with pytest.raises(PredictError) as err:
            ask(client, "named", model="zzz")
    assert err.value.status == 404
    assert "'zzz' model wasn't found in the list of available models" in err.value.message


def loaded_models(server, api):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as r:
        samples = parse_metrics(r.read().decode())
    return sorted(
        (labels["model_name"], labels["model_version"])
        for name, labels, value in samples
        if name == LOADED_MODELS_METRIC and labels.get("model") == api and value == 1
    )


def test_cache_size_evicts_least_recently_used_and_answers_stay_right(server):
    # Runs over one protocol: the eviction order is this instance's state across requests.
    with client_for(server, "http") as client:
        answers = [ask(client, "cached", x=1, model=name)["answer"] for name in "pqpr"]
        assert answers == [2, 3, 2, 4]
        assert loaded_models(server, "cached") == [("p", "1"), ("r", "1")]  # q was least recently used
        out = ask(client, "cached", x=1, model="q")  # loaded again, evicting p
    assert out["answer"] == 3
    assert out["loads"] == ["p", "q", "r", "q"]
    assert loaded_models(server, "cached") == [("q", "1"), ("r", "1")]
    status = run_tritonize(
        "status", "--url", server.http_url, "--metrics-url", f"127.0.0.1:{server.metrics_port}", "--token", ADMIN_TOKEN
    ).stdout
    assert "cached: models in memory: q 1, r 1" in status
    assert "versions: models in memory: version 1, version 2, version 3" in status


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def outcome(client, api, **query):
    try:
        return ask(client, api, **query)["id"]
    except PredictError as exc:
        return exc.status


def test_live_reloading_local_dir_new_version_new_model_removed_model_broken_version(server):
    live = server.models / "live"
    with client_for(server, "http") as http, client_for(server, "grpc") as grpc:
        assert outcome(http, "fromdir", model="m1") == "m1v1"
        write_model(str(live / "m1" / "2"), "m1v2", 2)
        write_model(str(live / "m2"), "m2", 5)
        started = time.monotonic()
        assert wait_for(lambda: outcome(http, "fromdir", model="m1") == "m1v2", POLL_MARGIN_S)
        assert time.monotonic() - started <= POLL_MARGIN_S
        assert outcome(grpc, "fromdir", model="m1") == "m1v2"
        assert outcome(grpc, "fromdir", model="m1", version="1") == "m1v1"
        assert wait_for(lambda: outcome(grpc, "fromdir", model="m2") == "m2", POLL_MARGIN_S)
        # a new version whose load_model fails: logged, the previous latest keeps serving
        os.makedirs(live / "m1" / "3")
        (live / "m1" / "3" / "model.json").write_text("{not json")
        assert wait_for(lambda: "load_model failed for model m1 of version 3" in server.output(), POLL_MARGIN_S)
        assert outcome(http, "fromdir", model="m1") == "m1v2"
        assert outcome(grpc, "fromdir", model="m1", version="3") == 404  # the predictor turns it into a 404
        # a slow new version loads in the background: requests to the old one and to other models
        # are answered meanwhile, and "latest" moves once it has loaded
        write_model(str(live / "m1" / "4"), "m1v4", 4, load_seconds=6)
        assert wait_for(lambda: "loading model m1 of version 4" in server.output(), POLL_MARGIN_S)
        started = time.monotonic()
        assert outcome(http, "fromdir", model="m1") == "m1v2"
        assert outcome(grpc, "fromdir", model="m2") == "m2"
        assert time.monotonic() - started < 3, "a request waited for a background load"
        assert wait_for(lambda: outcome(http, "fromdir", model="m1") == "m1v4", 6 + POLL_MARGIN_S)
        # files updated in place: the version is reloaded beside the old object, then swapped in
        write_model(str(live / "m1" / "4"), "m1v4-updated", 4)
        assert wait_for(lambda: outcome(grpc, "fromdir", model="m1") == "m1v4-updated", POLL_MARGIN_S)
        # a removed model stops being served
        shutil.rmtree(live / "m2")
        assert wait_for(lambda: outcome(http, "fromdir", model="m2") == 404, POLL_MARGIN_S)
        assert outcome(grpc, "fromdir", model="m2") == 404
        assert wait_for(lambda: ("m2", "1") not in loaded_models(server, "fromdir"), 5)
