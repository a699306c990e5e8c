"""The batch logic of the runtime, in-process (pure functions, no Triton)."""

import json

import numpy as np
import pytest
from pipeline_helpers import answer_batch, answer_tensors

from tritonize.adapter.runtime.params import ParameterRules
from tritonize.adapter.runtime.predictor import LoadedPredictor
from tritonize.adapter.runtime.reply import Reply
from tritonize.adapter.runtime.tensors import check_outputs, to_numpy

RULES = ParameterRules(header_pattern="^x-", forward_sensitive=False)


class ListPredictor:
    def __init__(self, transform=None):
        self.calls = []
        self.transform = transform

    def predict(self, payload, query_params):
        self.calls.append(payload)
        if self.transform:
            return self.transform(payload)
        return [{"p": p, "q": q} for p, q in zip(payload, query_params)]


def test_one_predict_call_with_lists_and_bad_bodies_answered_alone():
    predictor = ListPredictor()
    items = [
        (b'{"a": 1}', '{"k": "1"}'),
        (b"{bad", "{}"),
        (Reply(400, b"no input", "text/plain"), "{}"),
        (b"[2]", "{}"),
    ]
    replies = answer_batch(LoadedPredictor(predictor), items, RULES)
    assert predictor.calls == [[{"a": 1}, [2]]]
    assert [r.status for r in replies] == [200, 400, 400, 200]
    assert json.loads(replies[0].body) == {"p": {"a": 1}, "q": {"k": "1"}}
    assert json.loads(replies[3].body) == {"p": [2], "q": {}}


@pytest.mark.parametrize(
    "transform, words",
    [
        (lambda p: p[:-1], "one result per request (batch of 2), got a list of 1"),
        (lambda p: {"not": "a list"}, "must return a list with one result per request (batch of 2), got dict"),
    ],
)
def test_wrong_return_fails_the_batch_with_the_reason(transform, words, monkeypatch, caplog):
    replies = answer_batch(LoadedPredictor(ListPredictor(transform)), [(b"1", "{}"), (b"2", "{}")], RULES)
    assert [r.status for r in replies] == [500, 500]
    # Cortex's answer: no reason for the client; the log has it under the same error id.
    assert replies[0].message.startswith("internal server error (error id ") and words not in replies[0].message
    error_id = replies[0].message.split("error id ")[1].rstrip(")")
    assert error_id in caplog.text and words in caplog.text
    monkeypatch.setenv("TRITONIZE_DEBUG_ERRORS", "1")  # serve --debug-errors, tritonize test
    replies = answer_batch(LoadedPredictor(ListPredictor(transform)), [(b"1", "{}"), (b"2", "{}")], RULES)
    assert all(words in r.message for r in replies)


def test_numpy_array_return_is_one_row_per_request():
    replies = answer_batch(
        LoadedPredictor(ListPredictor(lambda p: np.array(p) * 2)), [(b"1", "{}"), (b"2", "{}")], RULES
    )
    assert [r.body for r in replies] == [b"2", b"4"]


def test_one_unencodable_result_fails_only_its_request():
    replies = answer_batch(LoadedPredictor(ListPredictor(lambda p: [{1}, "ok"])), [(b"1", "{}"), (b"2", "{}")], RULES)
    assert [r.status for r in replies] == [500, 200]


class TensorPredictor:
    def __init__(self):
        self.seen = []

    def predict(self, payload, query_params):
        self.seen.append((payload["x"].shape, query_params))
        return {"y": payload["x"].sum(axis=1, keepdims=True)}


TENSORS = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": [-1], "ragged": False}],
    "outputs": [{"name": "y", "dtype": "float32", "shape": [1]}],
}


def test_tensor_batch_is_stacked_and_split_back():
    predictor = TensorPredictor()
    items = [({"x": np.ones((1, 3), np.float32)}, '{"a": "1"}'), ({"x": np.full((2, 3), 2, np.float32)}, "{}")]
    answers = answer_tensors(LoadedPredictor(predictor), items, TENSORS, RULES, batching=True)
    assert predictor.seen == [((3, 3), [{"a": "1"}, {}])]
    assert answers[0]["y"].tolist() == [[3.0]] and answers[1]["y"].tolist() == [[6.0], [6.0]]


def test_tensor_requests_without_batching_are_called_one_by_one():
    predictor = TensorPredictor()
    items = [({"x": np.ones((1, 3), np.float32)}, '{"a": "1"}'), ({"x": np.ones((1, 3), np.float32)}, "{}")]
    answer_tensors(LoadedPredictor(predictor), items, TENSORS, RULES, batching=False)
    assert predictor.seen == [((1, 3), {"a": "1"}), ((1, 3), {})]


def test_ragged_shapes_rejected_unless_declared():
    items = [({"x": np.ones((1, 3), np.float32)}, "{}"), ({"x": np.ones((1, 2), np.float32)}, "{}")]
    answers = answer_tensors(LoadedPredictor(TensorPredictor()), items, TENSORS, RULES, batching=True)
    assert all(isinstance(a, Reply) and a.status == 400 and "declare the input ragged" in a.message for a in answers)

    class RaggedPredictor:
        def predict(self, payload):
            return {"y": np.array([[a.sum()] for a in payload["x"]], np.float32)}

    ragged = {"inputs": [dict(TENSORS["inputs"][0], ragged=True)], "outputs": TENSORS["outputs"]}
    answers = answer_tensors(LoadedPredictor(RaggedPredictor()), items, ragged, RULES, batching=True)
    assert [a["y"].tolist() for a in answers] == [[[3.0]], [[2.0]]]


def test_check_outputs_and_torch_conversion():
    torch = pytest.importorskip("torch")
    declared = [{"name": "y", "dtype": "float32", "shape": [-1]}]
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    array = check_outputs({"y": tensor}, declared, 2)["y"]
    assert array.tolist() == tensor.tolist()
    assert array.ctypes.data == tensor.data_ptr()  # converted through DLPack: no copy on CPU
    assert to_numpy(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]
    with pytest.raises(Exception, match="expected shape \\[3, -1\\]"):
        check_outputs({"y": tensor}, declared, 3)
    with pytest.raises(Exception, match="undeclared outputs: z"):
        check_outputs({"y": tensor, "z": tensor}, declared, 2)
