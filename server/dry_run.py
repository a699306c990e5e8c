"""`tritonize test`: load a predictor in this process and answer one request, no Triton."""

import contextlib
import json
import os
import sys

import numpy as np

from tritonize.adapter.build import load_apis
from tritonize.adapter.repository import api_settings, check_api_sources
from tritonize.adapter.runtime.batch import OK_BODY, BatchRequest, BatchWorker, dry_run_job_spec
from tritonize.adapter.runtime.constants import DEBUG_ERRORS_ENV
from tritonize.adapter.runtime.device import device_config
from tritonize.adapter.runtime.params import ParameterRules, request_parameters
from tritonize.adapter.runtime.pipeline import Pipeline, as_triton_input
from tritonize.adapter.runtime.predictor import load_predictor
from tritonize.adapter.runtime.reply import Reply, text_reply
from tritonize.client.headers import http_headers
from tritonize.errors import SpecError


def select_api(apis, api_name):
    if api_name is None:
        if len(apis) > 1:
            raise SpecError(f"the spec has {len(apis)} APIs ({', '.join(a.name for a in apis)}); pick one with --api")
        return apis[0]
    for api in apis:
        if api.name == api_name:
            return api
    raise SpecError(f"no API named {api_name!r} (found: {', '.join(a.name for a in apis)})")


def _prepare(source, content_type, query_params, headers, api_name, class_name, config, header_pattern):
    """-> (api, rules, parameters JSON, warnings), without touching this process."""
    apis = load_apis(source, class_name=class_name, config=config)
    api = select_api(apis, api_name)
    check_api_sources([api])
    rules = ParameterRules(header_pattern=header_pattern)
    warnings = list(api.warnings)
    pairs = request_parameters(query_params, content_type)
    for key, value in http_headers(headers).items():  # as `predict` sends them over HTTP
        if rules.is_header(key):
            pairs[key] = value
        else:
            warnings.append(
                f"header {key!r} would not be forwarded by the server (pattern {rules.header_regex.pattern!r})"
            )
    return api, rules, json.dumps(pairs), warnings


@contextlib.contextmanager
def _predictor_process(api, rules, job_spec=None):
    """The API's request Pipeline (a BatchAPI: its BatchWorker for job_spec), loaded here; the predictor
    changes cwd, sys.path and the environment as in a server process: undone after."""
    cwd, path, environ = os.getcwd(), list(sys.path), dict(os.environ)
    os.environ[DEBUG_ERRORS_ENV] = "1"  # a development tool: 500 answers show the exception text
    try:
        settings = api_settings(api)
        # No instance process to pin here: the predictor runs in this process, told "cpu".
        predictor = load_predictor(
            api.project_dir, settings, extra_config=device_config(settings, "cpu"), job_spec=job_spec
        )
        try:
            yield BatchWorker(predictor, api.name, job_spec) if api.batch else Pipeline(predictor, settings, rules)
        finally:
            predictor.stop()  # post_predict runs in the background: let it finish before this process exits
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        os.environ.clear()
        os.environ.update(environ)


def dry_run(
    source,
    body,
    content_type=None,
    query_params=None,
    headers=None,
    api_name=None,
    class_name="PythonPredictor",
    config=None,
    header_pattern=None,
):
    """Returns (Reply, warnings). Uses the same decode/predict/encode code as the server."""
    api, rules, parameters_json, warnings = _prepare(
        source, content_type, query_params, headers, api_name, class_name, config, header_pattern
    )
    if api.streaming:
        raise SpecError(f"{api.name} is a streaming API (its predict() yields): use `tritonize test --stream`")
    if api.batch:
        return run_one_batch(api, rules, body), warnings
    with _predictor_process(api, rules) as pipeline:
        return answer_one(api, pipeline, body, parameters_json), warnings


def dry_run_stream(
    source,
    body,
    content_type=None,
    query_params=None,
    headers=None,
    api_name=None,
    class_name="PythonPredictor",
    config=None,
    header_pattern=None,
):
    """Returns (an iterator of Replies, one per chunk, warnings), through the server's own stream code."""
    api, rules, parameters_json, warnings = _prepare(
        source, content_type, query_params, headers, api_name, class_name, config, header_pattern
    )
    if api.tensors:
        raise SpecError(f"{api.name} is a typed tensor API; those do not stream")
    if api.batch:
        raise SpecError(f"{api.name} is a BatchAPI; nothing streams: `tritonize test` without --stream runs one batch")
    return _stream(api, rules, body, parameters_json), warnings


def _stream(api, rules, body, parameters_json):
    with _predictor_process(api, rules) as pipeline:
        # One request (with batching: a batch of one), as Triton would hand it; None (finished) ends it.
        steps = pipeline.stream([(pipeline.body(np.array([[body]], dtype=np.object_)), parameters_json)])
        try:
            for events in steps:
                for _, reply in events:
                    if reply is None:
                        return
                    yield reply
        finally:
            steps.close()


def run_one_batch(api, rules, body):
    """A BatchAPI: --data is one batch (a JSON list of items); one worker of a one-batch job (job_id "dry-run")
    runs it through the server's own BatchWorker, then on_job_complete(). The answer is what the job engine
    gets: {"ok": true}, or the error (query params and headers do not reach a BatchAPI)."""
    body = body if isinstance(body, bytes) else str(body).encode("utf-8")
    with _predictor_process(api, rules, job_spec=dry_run_job_spec(api.name)) as worker:
        outcome = worker.run(BatchRequest(body, "dry-run-batch", False))
        if outcome.ok:
            outcome = worker.run(BatchRequest(None, "", True))
    if outcome.ok:
        return Reply(200, OK_BODY, "application/json")
    return text_reply(outcome.status, outcome.message)


def answer_one(api, pipeline, body, parameters_json):
    """One request, shaped as Triton would hand it to the model, through the server's own pipeline."""
    if not api.tensors:
        (reply,) = pipeline.answer([(pipeline.body(np.array([[body]], dtype=np.object_)), parameters_json)])
        return reply
    try:
        values = json.loads(body)
        arrays = {t["name"]: as_triton_input(values[t["name"]], t["dtype"]) for t in api.tensors["inputs"]}
    except RecursionError:
        return text_reply(400, "--data is JSON nested too deeply")
    except (ValueError, KeyError, TypeError) as exc:
        names = ", ".join(t["name"] for t in api.tensors["inputs"])
        return text_reply(400, f"--data for a typed API must be JSON {{tensor: values}} with inputs {names}: {exc!r}")
    (answer,) = pipeline.answer([(arrays, parameters_json)])
    if isinstance(answer, Reply):
        return answer
    out = {name: array[0].tolist() for name, array in answer.items()}  # one request: drop the batch dim
    return Reply(200, json.dumps(out, default=lambda b: b.decode("utf-8", "replace")).encode(), "application/json")
