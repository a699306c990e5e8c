"""python_client's runtime (no Triton): versions, names, caching, live reloading, errors."""

import logging
import os
import time

import pytest

from tritonize.adapter.runtime.model_errors import ModelLoadError, ModelNotFound, UserRuntimeException
from tritonize.adapter.runtime.multi_model import construct_with_models
from tritonize.adapter.runtime.python_client import PythonClient
from tritonize.adapter.runtime.repository_model import ApiSettings, PredictorSettings


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class Loader:
    """load_model that reads model.txt; 'broken' in it raises. Records every load."""

    def __init__(self):
        self.loads = []

    def __call__(self, path):
        with open(os.path.join(path, "model.txt")) as f:
            text = f.read()
        if "broken" in text:
            raise ValueError("cannot parse " + text)
        self.loads.append(text)
        return {"text": text}


def client_for(settings, loader=None):
    settings = {"cache_size": None, "disk_cache_size": None, "models": [], "dir": None, **settings}
    client = PythonClient(settings, api_name="t")
    client.set_load_method(loader or Loader())
    return client


@pytest.fixture
def versioned(tmp_path):
    for v in ("1", "2", "10"):
        write(str(tmp_path / "m" / v / "model.txt"), f"m{v}")
    return str(tmp_path / "m")


def test_path_versions_latest_is_highest_number_and_name_is_ignored(versioned):
    client = client_for({"mode": "path", "models": [{"name": "_cortex_default", "path": versioned}]})
    assert client.get_model()["text"] == "m10"  # 10 > 2 as numbers, not as strings
    assert client.get_model(model_version="2")["text"] == "m2"
    assert client.get_model("anything", "1")["text"] == "m1"
    assert client.get_model(model_version=2)["text"] == "m2"
    with pytest.raises(ModelNotFound) as err:
        client.get_model(model_version="3")
    assert str(err.value) == "error: model _cortex_default of version 3 wasn't found: runtime exception"
    with pytest.raises(UserRuntimeException, match="parse-able numeric value or 'latest'"):
        client.get_model(model_version="v2")
    assert client.metadata["_cortex_default"]["versions"] == ["1", "2", "10"]


def test_unversioned_folder_is_version_1(tmp_path):
    write(str(tmp_path / "plain" / "model.txt"), "plain")
    write(str(tmp_path / "plain" / "sub" / "extra.bin"), "x")
    client = client_for({"mode": "path", "models": [{"name": "_cortex_default", "path": str(tmp_path / "plain")}]})
    assert client.get_model()["text"] == "plain"
    assert client.get_model(model_version="1")["text"] == "plain"


def test_paths_need_a_known_name(tmp_path, versioned):
    write(str(tmp_path / "b" / "model.txt"), "b")
    client = client_for(
        {"mode": "paths", "models": [{"name": "a", "path": versioned}, {"name": "b", "path": str(tmp_path / "b")}]}
    )
    assert client.get_model("a")["text"] == "m10"
    assert client.get_model("b")["text"] == "b"
    with pytest.raises(
        UserRuntimeException, match=r"model_name was not specified, choose one of the following: \['a', 'b'\]"
    ):
        client.get_model()
    with pytest.raises(ModelNotFound, match="'c' model wasn't found in the list of available models"):
        client.get_model("c")
    with pytest.raises(LookupError):  # a predictor may catch it as a LookupError too
        client.get_model("a", "7")


def test_dir_each_folder_is_a_model_and_mixed_folders_are_skipped(tmp_path, caplog):
    write(str(tmp_path / "d" / "x" / "model.txt"), "x")
    write(str(tmp_path / "d" / "y" / "3" / "model.txt"), "y3")
    write(str(tmp_path / "d" / "bad" / "1" / "model.txt"), "b")
    write(str(tmp_path / "d" / "bad" / "notes.txt"), "mixed")
    with caplog.at_level(logging.WARNING, logger="tritonize"):
        client = client_for({"mode": "dir", "dir": str(tmp_path / "d")})
    assert client.get_model("x")["text"] == "x"
    assert client.get_model("y")["text"] == "y3"
    with pytest.raises(ModelNotFound):
        client.get_model("bad")
    assert "model bad" in caplog.text and "mixes version folders" in caplog.text
    with pytest.raises(UserRuntimeException, match="model_name was not specified"):
        client.get_model()


def test_lru_memory_cache_evicts_least_recently_used(tmp_path):
    for name in "abc":
        write(str(tmp_path / name / "model.txt"), name)
    loader = Loader()
    client = client_for(
        {
            "mode": "paths",
            "cache_size": 2,
            "disk_cache_size": 2,
            "models": [{"name": n, "path": str(tmp_path / n)} for n in "abc"],
        },
        loader,
    )
    for name in "aba":
        assert client.get_model(name)["text"] == name
    assert loader.loads == ["a", "b"]
    assert client.get_model("c")["text"] == "c"  # evicts b (a was used more recently)
    assert client.get_model("a")["text"] == "a"
    assert loader.loads == ["a", "b", "c"]
    assert client.get_model("b")["text"] == "b"  # reloaded; evicts c
    assert loader.loads == ["a", "b", "c", "b"]
    assert sorted(client._loaded) == [("a", "1"), ("b", "1")]


def test_refresh_new_version_removed_version_in_place_update(versioned):
    loader = Loader()
    client = client_for({"mode": "path", "models": [{"name": "_cortex_default", "path": versioned}]}, loader)
    assert client.get_model()["text"] == "m10"
    write(os.path.join(versioned, "11", "model.txt"), "m11")
    assert client.get_model()["text"] == "m10"  # not published before a poll
    client.refresh()
    assert loader.loads[-1] == "m11"  # loaded by the poll, before requests see it
    assert client.get_model()["text"] == "m11"
    # files updated in place (new mtime): the poll reloads the version in memory
    write(os.path.join(versioned, "11", "model.txt"), "m11b")
    os.utime(os.path.join(versioned, "11", "model.txt"), (time.time() + 5, time.time() + 5))
    client.refresh()
    assert client.get_model()["text"] == "m11b"
    # a removed version stops being served
    import shutil

    shutil.rmtree(os.path.join(versioned, "11"))
    client.refresh()
    assert client.get_model()["text"] == "m10"
    with pytest.raises(ModelNotFound):
        client.get_model(model_version="11")
    shutil.rmtree(versioned)
    client.refresh()
    with pytest.raises(ModelNotFound):
        client.get_model()
    assert client._loaded == {}


def test_broken_new_version_keeps_the_old_one_serving(versioned, caplog):
    loader = Loader()
    client = client_for({"mode": "path", "models": [{"name": "_cortex_default", "path": versioned}]}, loader)
    assert client.get_model()["text"] == "m10"
    write(os.path.join(versioned, "12", "model.txt"), "broken")
    with caplog.at_level(logging.ERROR, logger="tritonize"):
        client.refresh()
    assert "load_model failed for model _cortex_default of version 12" in caplog.text
    assert "ValueError: cannot parse broken" in caplog.text
    assert client.get_model()["text"] == "m10"
    with pytest.raises(ModelLoadError, match="failed \\(re-\\)loading model _cortex_default of version 12"):
        client.get_model(model_version="12")
    # fixed files: the next poll loads it and "latest" moves
    write(os.path.join(versioned, "12", "model.txt"), "m12")
    os.utime(os.path.join(versioned, "12", "model.txt"), (time.time() + 5, time.time() + 5))
    client.refresh()
    assert client.get_model()["text"] == "m12"


def test_broken_latest_on_first_use_falls_back_to_the_next_version(versioned):
    write(os.path.join(versioned, "10", "model.txt"), "broken")
    client = client_for({"mode": "path", "models": [{"name": "_cortex_default", "path": versioned}]})
    assert client.get_model()["text"] == "m2"


def test_load_model_works_during_init_with_self_bound(versioned):
    class PythonPredictor:
        def __init__(self, config, python_client):
            self.prefix = config["prefix"]
            self.client = python_client
            self.first = python_client.get_model()

        def load_model(self, model_path):
            with open(os.path.join(model_path, "model.txt")) as f:
                return self.prefix + f.read()

    settings = ApiSettings(
        name="t",
        predictor=PredictorSettings(path="predictor.py"),
        models={
            "mode": "path",
            "models": [{"name": "_cortex_default", "path": versioned, "project_path": None}],
            "dir": None,
            "cache_size": None,
            "disk_cache_size": None,
            "poll_interval": 0,
        },
    )
    predictor = construct_with_models(PythonPredictor, {"config": {"prefix": ">"}}, settings, "/nonexistent")
    assert predictor.first == ">m10"
    assert predictor.client.get_model(model_version="1") == ">m1"


def test_local_path_falls_back_to_the_repository_copy(tmp_path):
    write(str(tmp_path / "project" / "models" / "1" / "model.txt"), "copy")
    settings = ApiSettings(
        name="t",
        predictor=PredictorSettings(path="predictor.py"),
        models={
            "mode": "path",
            "models": [{"name": "_cortex_default", "path": "/gone/models", "project_path": "models"}],
            "dir": None,
            "cache_size": None,
            "disk_cache_size": None,
            "poll_interval": 0,
        },
    )

    class PythonPredictor:
        def __init__(self, python_client):
            self.client = python_client

        def load_model(self, model_path):
            return Loader()(model_path)

    predictor = construct_with_models(PythonPredictor, {}, settings, str(tmp_path / "project"))
    assert predictor.client.get_model()["text"] == "copy"


def test_s3_paths_without_boto3_fail_the_load_naming_boto3(tmp_path, monkeypatch):
    import sys

    from tritonize.adapter.runtime.errors import PredictorLoadError
    from tritonize.adapter.runtime.predictor import load_predictor

    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    monkeypatch.chdir(tmp_path)  # load_predictor chdirs into the project and extends sys.path
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "predictor.py").write_text(
        "class PythonPredictor:\n    def __init__(self, config, python_client): pass\n"
        "    def load_model(self, model_path): pass\n    def predict(self, payload): return 1\n"
    )
    settings = ApiSettings(
        name="t",
        predictor=PredictorSettings(path="predictor.py"),
        models={
            "mode": "path",
            "models": [{"name": "_cortex_default", "path": "s3://bucket/m/", "project_path": None}],
            "dir": None,
            "cache_size": None,
            "disk_cache_size": None,
            "poll_interval": 0,
        },
    )
    with pytest.raises(PredictorLoadError) as err:
        load_predictor(str(tmp_path), settings)
    assert "multi_model_reloading: s3:// model paths need boto3" in str(err.value)
    assert "pip install boto3" in str(err.value)


def test_the_poller_thread_publishes_new_versions(versioned):
    class PythonPredictor:
        def __init__(self, python_client):
            self.client = python_client

        def load_model(self, model_path):
            return Loader()(model_path)

    settings = ApiSettings(
        name="t",
        predictor=PredictorSettings(path="predictor.py"),
        models={
            "mode": "path",
            "models": [{"name": "_cortex_default", "path": versioned, "project_path": None}],
            "dir": None,
            "cache_size": None,
            "disk_cache_size": None,
            "poll_interval": 0.1,
        },
    )
    predictor = construct_with_models(PythonPredictor, {}, settings, "/nonexistent")
    assert predictor.client.get_model()["text"] == "m10"
    write(os.path.join(versioned, "20", "model.txt"), "m20")
    deadline = time.monotonic() + 10
    while predictor.client.get_model()["text"] != "m20" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert predictor.client.get_model()["text"] == "m20"
    predictor.client.close()
    predictor.client.poller.join(timeout=5)
    assert not predictor.client.poller.is_alive()


def test_download_folders_of_dead_processes_are_removed(tmp_path):
    from tritonize.adapter.runtime.model_storage import _remove_stale_caches

    dead = tmp_path / "tritonize-models-api-x-4194999-abc_1"  # beyond Linux's pid_max default
    alive = tmp_path / f"tritonize-models-api-{os.getpid()}-def"
    other = tmp_path / "unrelated-1-2"
    for folder in (dead, alive, other):
        folder.mkdir()
    _remove_stale_caches(str(tmp_path))
    assert not dead.exists() and alive.exists() and other.exists()
