"""The typed model of a built repository: build writes it, every reader reads it back equal;
another version's repository is refused with "rebuild it" by every consumer."""

import dataclasses
import json
import os

import pytest

from tritonize.adapter.build import build
from tritonize.adapter.built_repository import config_from_triton_json, instance_count, read_built_repository
from tritonize.adapter.model_config import to_pbtxt
from tritonize.adapter.repository import api_settings, check_api_sources
from tritonize.adapter.runtime.repository_model import (
    FORMAT_VERSION,
    MARKER_FILE,
    ApiSettings,
    PredictorSettings,
    RepositoryFormatError,
    batch_load_config,
    read_api_settings,
    read_batch_model_config,
    read_repository_settings,
    settings_path,
    startup_models,
    write_api_settings,
)
from tritonize.adapter.spec import load_spec_file
from tritonize.cortex_endpoint.routes import Route, load_routes
from tritonize.errors import BuildError, DeployError, RepositoryError, ServeError

PREDICTOR = "class PythonPredictor:\n    def predict(self, payload):\n        return payload\n"
STREAMER = "class PythonPredictor:\n    def predict(self, payload):\n        yield payload\n"
TYPED = "class PythonPredictor:\n    def predict(self, payload):\n        return {'y': payload['x']}\n"
SPEC = """
- name: plain
  predictor:
    path: predictor.py
    config: {threshold: 0.5, labels: [a, b]}
    env: {MODE: fast}
    python_path: [lib]
    server_side_batching: {max_batch_size: 8, batch_interval: 10ms}
  networking: {endpoint: v1/plain}
  tritonize: {request_timeout: 30s}
- name: stream
  predictor: {path: streamer.py, threads_per_process: 4}
- name: typed
  predictor:
    path: typed.py
    tensors:
      inputs: [{name: x, dtype: float32, shape: [4]}]
      outputs: [{name: y, dtype: float32, shape: [4]}]
- name: gpu
  predictor: {path: predictor.py}
  compute: {gpu: 2}
"""


@pytest.fixture
def project(tmp_path):
    project = tmp_path / "project"
    (project / "lib").mkdir(parents=True)
    (project / "predictor.py").write_text(PREDICTOR)
    (project / "streamer.py").write_text(STREAMER)
    (project / "typed.py").write_text(TYPED)
    (project / "cortex.yaml").write_text(SPEC)
    return project


@pytest.fixture
def repo(project, tmp_path):
    build(str(project / "cortex.yaml"), str(tmp_path / "repo"))
    return str(tmp_path / "repo")


def test_settings_round_trip_write_read_equal(tmp_path):
    settings = ApiSettings(
        name="a",
        predictor=PredictorSettings("p.py", "Custom", {"k": [1, {"n": None}]}, ["lib"], {"E": "1"}),
        predictor_batching=True,
        tensors={"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}], "outputs": []},
        dependencies={"pip": "requirements.txt"},
        models={"mode": "dir", "dir": "models"},
        stream=True,
        stream_threads=3,
        endpoint="/v1/a",
        request_timeout_s=2.5,
    )
    write_api_settings(str(tmp_path), settings)
    assert read_api_settings(str(tmp_path)) == settings
    # Every default is the dataclass's: the least settings read back with them.
    write_api_settings(str(tmp_path), ApiSettings("b", PredictorSettings("p.py")))
    least = read_api_settings(str(tmp_path))
    assert (least.stream, least.stream_threads, least.tensors, least.endpoint, least.predictor.config) == (
        False,
        16,
        None,
        None,
        {},
    )


def test_build_writes_what_the_spec_says_and_every_reader_reads_it_back(project, repo):
    specs = {api.name: api for api in load_spec_file(str(project / "cortex.yaml"))}
    written = read_repository_settings(repo)
    assert written.marker.apis == ["plain", "stream", "typed", "gpu"]
    for name, settings in written.apis.items():
        spec = specs[name]
        check_api_sources([spec])  # resolves streaming, as build does
        assert settings == api_settings(spec)
    plain = written.apis["plain"]
    assert plain.predictor.config == {"threshold": 0.5, "labels": ["a", "b"]} and plain.predictor_batching
    assert (plain.paths, plain.timeout_s({}), plain.typed, plain.streaming) == (
        ["/plain", "/v1/plain"],
        30.0,
        False,
        False,
    )
    assert (written.apis["stream"].streaming, written.apis["stream"].stream_threads) == (True, 4)
    assert written.apis["typed"].typed and not written.apis["typed"].streaming
    built = read_built_repository(repo)
    assert built.names == ["gpu", "plain", "stream", "typed"] and built.streaming_names == ["stream"]
    assert built.gpu_needs() == {"gpu": [0, 1]}
    assert [m.typed for m in built.models] == [False, False, False, True]
    assert load_routes(repo) == {
        "/plain": Route("plain", timeout_s=30.0),
        "/v1/plain": Route("plain", timeout_s=30.0),
        "/stream": Route("stream", streaming=True),
        "/typed": Route("typed", typed=True),
        "/gpu": Route("gpu"),
    }


def test_a_models_config_reads_the_same_from_pbtxt_and_from_tritons_json(repo):
    from google.protobuf import json_format

    for model in read_built_repository(repo).models:
        served = json.loads(json_format.MessageToJson(model.config, preserving_proto_field_name=True))
        assert config_from_triton_json({**served, "a_field_of_a_later_triton": 1}) == model.config
    gpu = next(m for m in read_built_repository(repo).models if m.name == "gpu")
    assert instance_count(gpu.config) == 2  # one per listed GPU


def _rewrite_json(path, change):
    with open(path) as f:
        data = json.load(f)
    change(data)
    with open(path, "w") as f:
        json.dump(data, f)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("format"), "older tritonize (format unversioned"),
        (lambda d: d.update(format=1), "older tritonize (format 1"),
        (lambda d: d.update(format=FORMAT_VERSION + 1), "newer tritonize"),
        (lambda d: d.update(surprise=1), "unknown settings surprise"),
        (lambda d: d.update(stream="yes"), "stream is 'yes'"),
        (lambda d: d["predictor"].pop("path"), "incomplete settings"),
    ],
)
def test_settings_of_another_version_are_refused_with_rebuild(repo, change, message):
    _rewrite_json(settings_path(os.path.join(repo, "plain")), change)
    with pytest.raises(RepositoryFormatError, match="rebuild it with `tritonize build`") as err:
        read_repository_settings(repo)
    assert message in str(err.value)


def test_every_consumer_says_rebuild_for_an_older_repository(repo, tmp_path):
    from tritonize.deploy.target import deploy_target
    from tritonize.docker.build import render_dockerfile
    from tritonize.server.gpus import gpu_needs

    _rewrite_json(os.path.join(repo, MARKER_FILE), lambda d: d.update(format=1))
    _rewrite_json(settings_path(os.path.join(repo, "plain")), lambda d: d.update(format=1))
    rebuild = "rebuild it with `tritonize build`"
    with pytest.raises(ServeError, match=rebuild):
        load_routes(repo)  # the Cortex endpoint
    with pytest.raises(RepositoryError, match=rebuild):
        gpu_needs(repo)  # serve's GPU check (and serve itself)
    with pytest.raises(RepositoryError, match=rebuild):
        render_dockerfile(repo)
    with pytest.raises(DeployError, match=rebuild):
        deploy_target(repo, image="img:1")
    # The fix works: build --force replaces an older build's repository.
    build(str(tmp_path / "project" / "cortex.yaml"), repo, force=True)
    assert read_repository_settings(repo).marker is not None


def test_a_settings_file_that_disagrees_with_its_config_is_refused(repo):
    config = read_built_repository(repo).models[1].config  # plain
    config.model_transaction_policy.decoupled = True
    with open(os.path.join(repo, "plain", "config.pbtxt"), "w") as f:
        f.write(to_pbtxt(config))
    with pytest.raises(RepositoryError, match="decoupled is True but the API's settings say stream: False"):
        read_built_repository(repo)


def test_models_added_by_hand_are_triton_s_alone(repo):
    (os.makedirs(os.path.join(repo, "handmade", "1")))
    with open(os.path.join(repo, "handmade", "config.pbtxt"), "w") as f:
        f.write('name: "handmade"\nbackend: "python"\nmodel_transaction_policy { decoupled: true }\n')
    built = read_built_repository(repo)
    handmade = next(m for m in built.models if m.name == "handmade")
    assert handmade.settings is None and handmade.streaming and "handmade" not in [m.name for m in built.apis]
    assert "/handmade" not in load_routes(repo)


def test_a_plain_triton_repository_is_not_deployable_as_tritonize(tmp_path):
    from tritonize.deploy.target import deploy_target

    os.makedirs(tmp_path / "plain" / "m" / "1")
    (tmp_path / "plain" / "m" / "config.pbtxt").write_text('name: "m"\nbackend: "python"\n')
    assert read_built_repository(str(tmp_path / "plain")).names == ["m"]  # serve runs it as Triton would
    with pytest.raises(DeployError, match="not a tritonize model repository"):
        deploy_target(str(tmp_path / "plain"), image="img:1")
    with pytest.raises(BuildError, match="holds no tritonize models"):
        from tritonize.docker.build import dependency_steps

        dependency_steps(str(tmp_path / "plain"))


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ApiSettings("a", PredictorSettings("p.py")).stream = True


# ---- BatchAPIs: ApiSettings.kind, tritonize_batch_config.json, the job's load config ----------------

BATCH_PREDICTOR = (
    "class PythonPredictor:\n    def __init__(self, config, job_spec): pass\n"
    "    def predict(self, payload, batch_id): pass\n    def on_job_complete(self): pass\n"
)
MIXED_SPEC = """
- name: realtime
  kind: RealtimeAPI
  predictor: {path: predictor.py}
- name: offline
  kind: BatchAPI
  predictor: {type: python, path: batch.py, config: {bucket: s3://b/out}}
  compute: {cpu: 1, mem: 2Gi}
"""


@pytest.fixture
def mixed(tmp_path):
    project = tmp_path / "mixed"
    project.mkdir()
    (project / "predictor.py").write_text(PREDICTOR)
    (project / "batch.py").write_text(BATCH_PREDICTOR)
    (project / "cortex.yaml").write_text(MIXED_SPEC)
    build(str(project / "cortex.yaml"), str(tmp_path / "mixed-repo"))
    return str(tmp_path / "mixed-repo")


def test_kind_round_trips_and_older_settings_read_as_realtime(tmp_path):
    batch = ApiSettings("b", PredictorSettings("p.py"), kind="BatchAPI", request_timeout_s=0)
    write_api_settings(str(tmp_path), batch)
    assert read_api_settings(str(tmp_path)) == batch and read_api_settings(str(tmp_path)).batch
    # A repository built before BatchAPIs (same format, no `kind`) reads as RealtimeAPIs: FORMAT_VERSION stays.
    path = os.path.join(str(tmp_path), "tritonize_api.json")
    with open(path) as f:
        data = json.load(f)
    del data["kind"]
    with open(path, "w") as f:
        json.dump(data, f)
    settings = read_api_settings(str(tmp_path))
    assert settings.kind == "RealtimeAPI" and not settings.batch and FORMAT_VERSION == 2
    data["kind"] = "TaskAPI"
    with open(path, "w") as f:
        json.dump(data, f)
    with pytest.raises(RepositoryFormatError, match="kind is 'TaskAPI'; rebuild it"):
        read_api_settings(str(tmp_path))


def test_a_mixed_spec_builds_one_repository_and_the_batch_config_is_config_pbtxt_as_json(mixed):
    settings = read_repository_settings(mixed)
    assert settings.names == ["offline", "realtime"]
    assert settings.apis["offline"].kind == "BatchAPI" and settings.apis["realtime"].kind == "RealtimeAPI"
    assert settings.batch_names == ["offline"] and settings.startup_names == ["realtime"]
    assert startup_models(mixed) == ["realtime"]
    # No request time limit for a batch unless the spec sets one.
    assert settings.apis["offline"].timeout_s({"TRITONIZE_REQUEST_TIMEOUT_S": "30"}) is None
    config = read_batch_model_config(mixed, "offline")
    built = read_built_repository(mixed)
    pbtxt = next(model for model in built.models if model.name == "offline").config
    assert config_from_triton_json(config) == pbtxt  # the same ModelConfig, field for field
    assert config["input"] == [{"name": "BATCH", "data_type": "TYPE_STRING", "dims": ["1"]}]
    assert config["output"] == [{"name": "RESULT", "data_type": "TYPE_STRING", "dims": ["1"]}]
    assert config["instance_group"] == [{"count": 1, "kind": "KIND_CPU"}]
    assert "dynamic_batching" not in config and config.get("max_batch_size", 0) == 0
    assert not os.path.exists(os.path.join(mixed, "realtime", "tritonize_batch_config.json"))


def test_batch_load_config_is_the_contracts(mixed):
    spec = {"job_id": "j1", "api_name": "offline", "kind": "BatchAPI", "workers": 3, "config": {"k": [1]}}
    config = batch_load_config(mixed, "offline", 3, spec)
    expected = read_batch_model_config(mixed, "offline")
    expected["instance_group"][0]["count"] = 3
    expected["parameters"] = {"tritonize_job_spec": {"string_value": json.dumps(spec)}}
    assert config == expected
    json.dumps(config)  # what the load's body carries
    with pytest.raises(ValueError, match="workers"):
        batch_load_config(mixed, "offline", 0, spec)
    with pytest.raises(RepositoryFormatError, match="'realtime' is not a BatchAPI of this repository"):
        read_batch_model_config(mixed, "realtime")


def test_a_job_on_an_api_built_for_several_gpus_spreads_its_workers(tmp_path):
    project = tmp_path / "gpu"
    project.mkdir()
    (project / "batch.py").write_text(BATCH_PREDICTOR)
    (project / "cortex.yaml").write_text(
        "- name: offline\n  kind: BatchAPI\n  predictor: {path: batch.py}\n  compute: {gpu: 2}\n"
    )
    repo = build(str(project / "cortex.yaml"), str(tmp_path / "gpu-repo")).output_dir
    groups = batch_load_config(repo, "offline", 3, {"job_id": "j"})["instance_group"]
    assert groups == [
        {"count": 2, "kind": "KIND_GPU", "gpus": [0]},
        {"count": 1, "kind": "KIND_GPU", "gpus": [1]},
    ]
    assert batch_load_config(repo, "offline", 1, {})["instance_group"] == [
        {"count": 1, "kind": "KIND_GPU", "gpus": [0]}
    ]
