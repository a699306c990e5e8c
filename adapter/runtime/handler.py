"""Answering body (JSON/text/bytes) requests: decode, predict, encode; never raises.

Without server_side_batching each request gets its own predict() call; with it,
one predict() call receives lists (Cortex's contract) and returns a list.
"""

from dataclasses import dataclass

from .codec import decode_payload, encode_result, error_from_http_exception
from .errors import PredictorFailure, RequestError
from .failure_log import failures
from .params import split_parameters


@dataclass
class Reply:
    """What goes back to the client: a 2xx body or an error message."""

    status: int
    body: bytes
    content_type: str

    @property
    def ok(self):
        return 200 <= self.status < 300

    @property
    def message(self):
        return self.body.decode("utf-8", errors="replace")


def error_reply(error):
    return Reply(error.status, error.message.encode("utf-8"), "text/plain; charset=utf-8")


def decode_request(predictor, body, parameters_json, rules):
    """-> (payload, query_params, headers); raises RequestError (400) if undecodable."""
    query_params, headers, content_type = split_parameters(parameters_json, rules)
    if content_type is not None:
        headers["content-type"] = content_type
    payload = decode_payload(body, content_type) if predictor.wants_payload else None
    return payload, query_params, headers


def error_for_exception(exc, what="predict()"):
    """An exception from the predictor -> the RequestError the client sees."""
    error = error_from_http_exception(exc)
    if error is None:
        failures.failed(what, exc)
        error = PredictorFailure(f"{what} failed: {type(exc).__name__}: {exc}")
    return error


def reply_for_result(result):
    try:
        response_body, response_type = encode_result(result)
        return Reply(200, response_body, response_type)
    except RequestError as error:
        return error_reply(error)


def handle_request(predictor, body, parameters_json, rules):
    """Answer one request with its own predict() call."""
    try:
        payload, query_params, headers = decode_request(predictor, body, parameters_json, rules)
    except RequestError as error:
        return error_reply(error)
    try:
        result = predictor.predict(payload, query_params, headers)
    except Exception as exc:
        return error_reply(error_for_exception(exc))
    reply = reply_for_result(result)
    predictor.post_predict(result, payload, query_params, headers)
    return reply


def _as_result_list(results, expected):
    if hasattr(results, "tolist") and not isinstance(results, (list, tuple)):
        results = results.tolist()  # a numpy array / torch tensor with one row per request
    if not isinstance(results, (list, tuple)):
        raise PredictorFailure(
            f"with server_side_batching, predict() must return a list with one result per request "
            f"(batch of {expected}), got {type(results).__name__}"
        )
    if len(results) != expected:
        raise PredictorFailure(
            f"with server_side_batching, predict() must return one result per request: "
            f"got a list of {len(results)} for a batch of {expected}"
        )
    return results


def handle_batch(predictor, items, rules):
    """items: [(body bytes or an error Reply, parameters_json)] -> one Reply per item.

    Undecodable requests are answered 400 on their own and never reach predict();
    the rest go to a single predict() call as lists, in order.
    """
    replies = [body if isinstance(body, Reply) else None for body, _ in items]
    indices, payloads, queries, headers_list = [], [], [], []
    for index, (body, parameters_json) in enumerate(items):
        if replies[index] is not None:
            continue
        try:
            payload, query_params, headers = decode_request(predictor, body, parameters_json, rules)
        except RequestError as error:
            replies[index] = error_reply(error)
            continue
        indices.append(index)
        payloads.append(payload)
        queries.append(query_params)
        headers_list.append(headers)
    if not indices:
        return replies
    try:
        results = _as_result_list(predictor.predict(payloads, queries, headers_list), len(indices))
    except PredictorFailure as error:
        results, failure = None, error
    except Exception as exc:
        results, failure = None, error_for_exception(exc)
    if results is None:
        for index in indices:
            replies[index] = error_reply(failure)
        return replies
    for index, result in zip(indices, results):
        replies[index] = reply_for_result(result)
    predictor.post_predict(list(results), payloads, queries, headers_list)
    return replies
