"""Run requests through the runtime's one request pipeline (adapter/runtime/pipeline.py), in-process."""

from tritonize.adapter.runtime.pipeline import Pipeline
from tritonize.adapter.runtime.repository_model import ApiSettings, PredictorSettings


def api_settings(**kwargs):
    """An API's settings as build writes them (adapter/runtime/repository_model.py), defaults elsewhere."""
    return ApiSettings(name="api", predictor=PredictorSettings(path="predictor.py"), **kwargs)


def answer_one(predictor, body, parameters_json, rules, settings=None):
    """One body request, its own predict() call -> its Reply."""
    return Pipeline(predictor, settings or api_settings(), rules).answer([(body, parameters_json)])[0]


def answer_batch(predictor, items, rules):
    """Body requests [(body or Reply, parameters JSON)] with server_side_batching -> one Reply each."""
    return Pipeline(predictor, api_settings(predictor_batching=True), rules).answer(items)


def answer_tensors(predictor, items, tensors, rules, batching):
    """Typed requests [({name: array} or Reply, parameters JSON)] -> one answer each."""
    return Pipeline(predictor, api_settings(tensors=tensors, predictor_batching=batching), rules).answer(items)


def stream_one(predictor, body, parameters_json, rules):
    """A streaming body request without batching -> a generator of its Replies (closing it closes predict()'s)."""
    steps = Pipeline(predictor, api_settings(), rules).stream([(body, parameters_json)])
    try:
        for events in steps:
            for _, reply in events:
                if reply is None:  # finished
                    return
                yield reply
    finally:
        steps.close()


def stream_batch(predictor, items, rules):
    """Streaming body requests with batching -> the pipeline's steps [(index, Reply or None)]."""
    return Pipeline(predictor, api_settings(predictor_batching=True), rules).stream(items)
