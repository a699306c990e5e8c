"""End to end on real Triton: dynamic batching for Cortex predictors and typed tensors."""

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import FIXTURES, ServeProcess, run_tritonize

from tritonize import Client, PredictError

pytestmark = pytest.mark.e2e
PROTOCOLS = ["http", "grpc"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("batching")
    shutil.copytree(os.path.join(FIXTURES, "batching"), work / "project")
    repo = work / "model_repository"
    build = run_tritonize("build", str(work / "project" / "cortex.yaml"), "-o", str(repo))
    assert "threads_per_process (not needed" in build.stderr
    # --debug-errors: these tests check that 500s name the reason (without it, only the log does).
    serve = ServeProcess(str(repo), extra_args=["--debug-errors"])
    assert serve.wait_ready(), serve.output()
    yield serve
    assert serve.stop() == 0, serve.output()


def url_for(server, protocol):
    return server.http_url if protocol == "http" else server.grpc_url


def concurrently(function, args_list, workers=16):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, args_list))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_batches_form_and_keep_order(server, protocol):
    def call(i):
        with Client(url_for(server, protocol), protocol=protocol) as client:
            return i, client.predict("batched", {"i": i}, query_params={"n": i})

    results = concurrently(call, range(48))
    lengths = [out["batch_len"] for _, out in results]
    for i, out in results:
        assert out["echo"] == {"i": i} and out["q"] == {"n": str(i)}  # each request got its own answer
    assert max(lengths) > 1, lengths  # the predictor saw real batches...
    assert max(lengths) <= 4  # ...never above max_batch_size


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_body_in_a_batch_fails_alone(server, protocol):
    def call(i):
        with Client(url_for(server, protocol), protocol=protocol) as client:
            body = b"{not json" if i == 2 else json.dumps({"i": i, "sleep": 0.05}).encode()
            try:
                return client.predict_raw("batched", body)
            except PredictError as err:
                return err

    results = concurrently(call, range(4), workers=4)
    assert isinstance(results[2], PredictError) and results[2].status == 400
    assert "malformed JSON" in results[2].message
    for i in (0, 1, 3):
        assert json.loads(results[i][0])["echo"]["i"] == i


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_length_return_is_500_with_the_reason(server, protocol):
    with Client(url_for(server, protocol), protocol=protocol) as client:
        with pytest.raises(PredictError) as err:
            client.predict("batched", {"wrong_length": True})
        assert err.value.status == 500
        assert "must return a list with one result per request (batch of 1), got a list of 0" in err.value.message
        assert client.predict("batched", {"i": 9})["echo"] == {"i": 9}


def test_full_queue_answers_503_quickly(server):
    def call(i):
        start = time.monotonic()
        with Client(server.http_url) as client:
            try:
                client.predict("slow", {"i": i})
                return "ok", time.monotonic() - start
            except PredictError as err:
                return err.status, time.monotonic() - start

    results = concurrently(call, range(6), workers=6)
    statuses = [status for status, _ in results]
    assert statuses.count("ok") >= 1 and 503 in statuses, statuses
    assert all(took < 0.4 for status, took in results if status == 503), results  # refused, not queued


def expected_y(x):
    import torch

    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 3)
    with torch.inference_mode():
        return linear(torch.from_numpy(x)).numpy()


def typed_infer(protocol, url, x, params=None, dtype="FP32"):
    if protocol == "http":
        import tritonclient.http as tc
    else:
        import tritonclient.grpc as tc
    client = tc.InferenceServerClient(url)
    inp = tc.InferInput("x", list(x.shape), dtype)
    inp.set_data_from_numpy(x)
    try:
        result = client.infer("typed", [inp], parameters=params)
        return result.as_numpy("y"), result.as_numpy("batch_len")
    except tc.InferenceServerException as exc:
        return exc
    finally:
        client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_typed_tensors_round_trip_with_batching(server, protocol):
    rng = np.random.default_rng(1)
    inputs = [rng.normal(size=(1 if i % 3 else 2, 4)).astype(np.float32) for i in range(24)]
    results = concurrently(lambda x: typed_infer(protocol, url_for(server, protocol), x), inputs)
    seen = []
    for x, (y, batch_len) in zip(inputs, results):
        assert y.dtype == np.float32 and y.shape == (x.shape[0], 3)
        assert np.allclose(y, expected_y(x), atol=1e-5)
        seen.append(int(batch_len[0, 0]))
    assert max(seen) > 2, seen  # rows of several requests were stacked into one predict() call
    assert max(seen) <= 8


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_typed_output_mismatches_are_500_naming_the_tensor(server, protocol):
    x = np.ones((1, 4), dtype=np.float32)
    url = url_for(server, protocol)
    for op, words in (
        ("bad_dtype", "output 'y': expected dtype float32, got float64"),
        ("bad_shape", "output 'y': expected shape [1, 3] (-1: any), got [1, 2]"),
        ("missing", "predict() returned no output 'batch_len'"),
    ):
        error = typed_infer(protocol, url, x, params={"op": op})
        assert not isinstance(error, tuple), op
        assert words in error.message(), (op, error.message())
        assert "500" in str(error.status()) or "INTERNAL" in str(error.status())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_typed_input_dtype_and_shape_are_checked(server, protocol):
    url = url_for(server, protocol)
    wrong_dtype = typed_infer(protocol, url, np.ones((1, 4), dtype=np.float64), dtype="FP64")
    assert "FP64" in wrong_dtype.message() and "FP32" in wrong_dtype.message()
    wrong_shape = typed_infer(protocol, url, np.ones((1, 5), dtype=np.float32))
    assert "unexpected shape" in wrong_shape.message()
    for error in (wrong_dtype, wrong_shape):
        assert "400" in str(error.status()) or "INVALID_ARGUMENT" in str(error.status())


def test_bench_typed_api(server):
    result = run_tritonize(
        "bench",
        "typed",
        "--data",
        '{"x": [1, 2, 3, 4]}',
        "--concurrency",
        "8",
        "--duration",
        "1s",
        "--url",
        server.http_url,
        "--engine",
        "builtin",
        "--json",
    )
    (row,) = json.loads(result.stdout)["results"]
    assert row["errors"] == 0 and row["throughput"] > 20, row
