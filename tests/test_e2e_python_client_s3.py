"""End to end: Cortex v0.33's own python_client predictors, unchanged, with their models on S3.

tests/fixtures/python_client/cortex_v033 holds test/apis/live-reloading/python/mpg-estimator and
test/apis/model-caching/python/mpg-estimator as Cortex shipped them (cortex.yaml, predictor.py
with mlflow.sklearn). Their bucket, s3://cortex-examples, is a moto server on 127.0.0.1 here
(AWS_ENDPOINT_URL), holding MLflow models made by the test; real Triton, HTTP and gRPC.
"""

import json
import os
import shutil
import time
import urllib.request

import pytest
from conftest import FIXTURES, HAS_GPU, ServeProcess, run_tritonize
from s3_fixtures import MPG_SAMPLE, moto_s3, mpg_model  # noqa: F401  (moto_s3 is a fixture)

from tritonize import Client, PredictError
from tritonize.adapter.runtime.constants import LOADED_MODELS_METRIC, MODEL_CACHE_DIR_ENV
from tritonize.client.status import parse_metrics

pytestmark = pytest.mark.e2e
pytest.importorskip("mlflow")
BUCKET = "cortex-examples"
PREFIX = "sklearn/mpg-estimator/linreg"
# Cortex's poller ran every 10 s and so does tritonize's by default (these specs set nothing).
POLL_S = 10
MARGIN_S = 20  # a download and a load_model on a loaded 2-core box


def serve_cortex_api(tmp_path, moto_s3, api_dir, env=None, extra_args=()):  # noqa: F811
    project = tmp_path / "project"
    shutil.copytree(os.path.join(FIXTURES, "python_client", "cortex_v033", api_dir), project)
    repo = tmp_path / "model_repository"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo))
    serve = ServeProcess(str(repo), extra_args=extra_args, env={**moto_s3.env, **(env or {})})
    assert serve.wait_ready(), serve.output()
    return serve


def upload_versions(moto_s3, tmp_path, versions, offset=0):  # noqa: F811
    answers = {}
    for version in versions:
        folder = str(tmp_path / "models" / str(version))
        answers[str(version)] = mpg_model(folder, offset + version)
        moto_s3.upload_folder(folder, BUCKET, f"{PREFIX}/{version}")
    return answers


def predict(client, version=None):
    query = {"version": version} if version else None
    return client.predict("mpg-estimator", MPG_SAMPLE, query_params=query)


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def loaded_models(serve, api="mpg-estimator"):
    with urllib.request.urlopen(f"http://127.0.0.1:{serve.metrics_port}/metrics", timeout=5) as r:
        samples = parse_metrics(r.read().decode())
    return sorted(
        labels["model_version"]
        for name, labels, value in samples
        if name == LOADED_MODELS_METRIC and labels.get("model") == api and value == 1
    )


def test_cortex_model_caching_mpg_estimator_evicts_by_cache_size(tmp_path, moto_s3):  # noqa: F811
    moto_s3.reset_bucket(BUCKET)
    answers = upload_versions(moto_s3, tmp_path, [1, 2, 3])
    cache = tmp_path / "downloads"
    serve = serve_cortex_api(tmp_path, moto_s3, "model-caching-mpg-estimator", env={MODEL_CACHE_DIR_ENV: str(cache)})
    try:
        with Client(serve.http_url) as http, Client(serve.grpc_url, protocol="grpc") as grpc:
            for client, version in ((http, "1"), (grpc, "2"), (http, "3")):
                out = predict(client, version)
                assert out["prediction"] == pytest.approx(answers[version])
                assert out["model"] == {"name": "mpg-estimator", "version": version}
                assert loaded_models(serve) == [version]  # cache_size 1
            assert predict(grpc)["prediction"] == pytest.approx(answers["3"])  # latest
        log = serve.output()
        assert "removed model mpg-estimator of version 1 from memory (cache_size 1)" in log
        assert "removed model mpg-estimator of version 2 from memory (cache_size 1)" in log
        assert "removed model mpg-estimator of version 1 from disk (disk_cache_size 2)" in log
        assert "removed model mpg-estimator of version 2 from disk" not in log
        (folder,) = os.listdir(cache)  # this instance's downloads: versions 2 and 3 (disk_cache_size 2)
        assert sorted(v.split("-")[0] for v in os.listdir(cache / folder / "mpg-estimator")) == ["2", "3"]
    finally:
        assert serve.stop() == 0, serve.output()
    assert os.listdir(cache) == []  # removed when the instance stopped


def test_cortex_live_reloading_mpg_estimator_on_s3(tmp_path, moto_s3):  # noqa: F811
    moto_s3.reset_bucket(BUCKET)
    answers = upload_versions(moto_s3, tmp_path, [1, 2, 3])
    serve = serve_cortex_api(tmp_path, moto_s3, "live-reloading-mpg-estimator")
    try:
        with Client(serve.http_url) as http, Client(serve.grpc_url, protocol="grpc") as grpc:
            for version in ("1", "2", "3"):
                assert predict(http, version)["prediction"] == pytest.approx(answers[version])
            out = predict(grpc)
            assert out == {"prediction": pytest.approx(answers["3"]), "model": {"version": "latest"}}
            # a new version: "latest" moves within the poll interval, no restart
            answers.update(upload_versions(moto_s3, tmp_path, [4]))
            started = time.monotonic()
            assert wait_for(lambda: predict(http)["prediction"] == pytest.approx(answers["4"]), POLL_S + MARGIN_S), (
                serve.output()[-4000:]
            )
            assert time.monotonic() - started <= POLL_S + MARGIN_S
            assert predict(grpc)["prediction"] == pytest.approx(answers["4"])
            # a broken new version: load_model fails, logged; version 4 keeps serving
            moto_s3.upload_folder(str(tmp_path / "models" / "4"), BUCKET, f"{PREFIX}/5")
            moto_s3.put(BUCKET, f"{PREFIX}/5/model.pkl", b"not a pickle")
            assert wait_for(
                lambda: "load_model failed for model _cortex_default of version 5" in serve.output(), POLL_S + MARGIN_S
            ), serve.output()
            assert predict(grpc)["prediction"] == pytest.approx(answers["4"])
            assert predict(http, "3")["prediction"] == pytest.approx(answers["3"])
            # the model's files removed: requests fail as in Cortex (the predictor does not catch it)
            moto_s3.delete_prefix(BUCKET, PREFIX)

            def gone():
                try:
                    predict(http)
                except PredictError as exc:
                    return exc.status == 500
                return False

            assert wait_for(gone, POLL_S + MARGIN_S), serve.output()[-4000:]
            with pytest.raises(PredictError) as err:
                predict(grpc, "3")
            assert err.value.status == 500
            assert wait_for(lambda: loaded_models(serve) == [], 5)  # the gauge follows just after
    finally:
        assert serve.stop() == 0, serve.output()


def test_cortex_model_caching_translator_dir_on_s3(tmp_path, moto_s3):  # noqa: F811
    """test/apis/model-caching/python/translator: `dir` of Marian models, tokenizers from the (offline) hub."""
    pytest.importorskip("sentencepiece")
    from hf_offline_cache import offline_env
    from translator_models import write_marian

    bucket, prefix = "models.huggingface.co", "bert/Helsinki-NLP"
    moto_s3.reset_bucket(bucket)
    hf_home = str(tmp_path / "hf")
    for pair in ("en-es", "en-he", "de-en"):
        folder = write_marian(hf_home, str(tmp_path / "marian" / f"opus-mt-{pair}"), pair)
        moto_s3.upload_folder(folder, bucket, f"{prefix}/opus-mt-{pair}")
    # Its cortex.yaml asks for a GPU (compute.gpu: 1, "optional"): serve --cpu where there is none.
    serve = serve_cortex_api(
        tmp_path, moto_s3, "model-caching-translator", env=offline_env(hf_home), extra_args=[] if HAS_GPU else ["--cpu"]
    )
    try:
        samples = os.path.join(FIXTURES, "python_client", "cortex_v033", "model-caching-translator")
        with Client(serve.http_url) as http, Client(serve.grpc_url, protocol="grpc") as grpc:
            for client, sample in ((http, "sample.json"), (grpc, "sample2.json")):
                with open(os.path.join(samples, sample)) as f:
                    out = client.predict("translator", json.load(f))
                assert isinstance(out["generated_text"], str) and out["generated_text"]
            with pytest.raises(PredictError) as err:  # no such model: Cortex's predictor lets it raise
                http.predict("translator", {"source_language": "xx", "destination_language": "yy", "text": "hi"})
            assert err.value.status == 500
        assert sorted(loaded_models(serve, "translator")) == ["1", "1"]  # opus-mt-en-es and opus-mt-en-he
    finally:
        assert serve.stop() == 0, serve.output()
