"""python_client on S3 without Triton: a moto server, listing, downloads, disk cache, in-place updates."""

import os

import pytest
from s3_fixtures import moto_s3  # noqa: F401  (a fixture)

from tritonize.adapter.runtime.model_errors import ModelNotFound
from tritonize.adapter.runtime.python_client import PythonClient


@pytest.fixture
def s3_env(moto_s3, monkeypatch, tmp_path):  # noqa: F811
    for key, value in moto_s3.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TRITONIZE_MODEL_CACHE_DIR", str(tmp_path / "downloads"))
    moto_s3.reset_bucket("models")
    return moto_s3


def read_model(path):
    with open(os.path.join(path, "model.txt")) as f:
        return f.read(), path


def test_dir_on_s3_downloads_on_first_use_and_reloads_files_updated_in_place(s3_env, tmp_path):
    s3_env.put("models", "team/a/1/model.txt", b"a1")
    s3_env.put("models", "team/a/2/model.txt", b"a2")
    s3_env.put("models", "team/b/model.txt", b"b")
    s3_env.put("models", "team/b/sub/extra.bin", b"x")
    client = PythonClient(
        {"mode": "dir", "dir": "s3://models/team/", "cache_size": 2, "disk_cache_size": 2}, api_name="s3t"
    )
    client.set_load_method(read_model)
    assert not os.path.exists(tmp_path / "downloads") or not os.listdir(tmp_path / "downloads")  # nothing yet
    text, path = client.get_model("a")
    assert text == "a2" and path.startswith(str(tmp_path / "downloads"))
    assert client.get_model("b")[0] == "b"
    assert os.path.isfile(os.path.join(client.get_model("b")[1], "sub", "extra.bin"))
    # the same key uploaded again (a new ETag): the next poll downloads and reloads it
    s3_env.put("models", "team/a/2/model.txt", b"a2-new")
    client.refresh()
    text, new_path = client.get_model("a")
    assert text == "a2-new" and new_path != path and not os.path.exists(path)  # the old copy is gone
    # disk_cache_size 2: a third version on disk evicts the least recently used one not in memory
    client.get_model("a", "1")  # memory: b evicted (cache_size 2); disk: a2, b, a1 -> b removed
    assert sorted(k for k in client._disk) == [("a", "1"), ("a", "2")]
    s3_env.delete_prefix("models", "team/b/")
    client.refresh()
    with pytest.raises(ModelNotFound):
        client.get_model("b")
    client.close()
    assert not os.path.exists(client._cache_dir)
