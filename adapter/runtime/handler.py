"""Answering body (JSON/text/bytes/form) requests: decode, predict, encode; never raises.

Without server_side_batching each request gets its own predict() call; with it,
one predict() call receives lists (Cortex's contract) and returns a list. Either
way post_predict is queued once per request with that request's own result.
"""

from dataclasses import dataclass

from .codec import decode_payload, encode_result, error_from_http_exception, success_status
from .errors import PredictorFailure, RequestError, client_error, internal_error, printable
from .params import split_parameters

TEXT = "text/plain; charset=utf-8"


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
    error = client_error(error)
    return Reply(error.status, printable(error.message).encode("utf-8"), TEXT)


def decode_request(predictor, body, parameters_json, rules):
    """-> (payload, query_params, headers); raises RequestError (400) if undecodable."""
    query_params, headers, content_type = split_parameters(parameters_json, rules)
    payload = decode_payload(body, content_type) if predictor.wants_payload else None
    return payload, query_params, headers


def safe_decode(predictor, body, parameters_json, rules):
    """decode_request, or an error Reply: a bug in decoding must not fail the batch either."""
    try:
        return decode_request(predictor, body, parameters_json, rules)
    except RequestError as error:
        return error_reply(error)
    except BaseException as exc:
        return error_reply(internal_error("decoding the request failed", exc))


def error_for_exception(exc, what="predict()"):
    """An exception from the predictor -> the RequestError the client sees (HTTPException's own, else 500)."""
    try:
        error = error_from_http_exception(exc)
    except BaseException:  # an HTTPException look-alike whose attributes raise
        error = None
    return internal_error(f"{what} failed", exc) if error is None else error


def reply_for_result(result):
    """-> (Reply, encoded): encoded is False when the result could not be sent (no post_predict then, as Cortex)."""
    try:
        response_body, response_type = encode_result(result)
        return Reply(success_status(result), response_body, response_type), True
    except RequestError as error:  # a Response / HTTP error status the predictor chose, or a contract violation
        return error_reply(error), not isinstance(error, PredictorFailure)
    except BaseException as exc:
        return error_reply(internal_error("encoding the result of predict() failed", exc)), False


def handle_request(predictor, body, parameters_json, rules):
    """Answer one request with its own predict() call."""
    decoded = safe_decode(predictor, body, parameters_json, rules)
    if isinstance(decoded, Reply):
        return decoded
    payload, query_params, headers = decoded
    try:
        result = predictor.predict(payload, query_params, headers)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: this request fails, the server stays
        return error_reply(error_for_exception(exc))
    reply, encoded = reply_for_result(result)
    if encoded:
        predictor.post_predict(result, payload, query_params, headers, len(body))
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
        decoded = safe_decode(predictor, body, parameters_json, rules)
        if isinstance(decoded, Reply):
            replies[index] = decoded
            continue
        indices.append(index)
        payloads.append(decoded[0])
        queries.append(decoded[1])
        headers_list.append(decoded[2])
    if not indices:
        return replies
    try:
        results = _as_result_list(predictor.predict(payloads, queries, headers_list), len(indices))
    except RequestError as error:
        failure = error_reply(error)
        results = None
    except BaseException as exc:
        failure = error_reply(error_for_exception(exc))
        results = None
    if results is None:
        for index in indices:
            replies[index] = failure
        return replies
    for position, (index, result) in enumerate(zip(indices, results)):
        replies[index], encoded = reply_for_result(result)
        if encoded:  # each request's own item, as Cortex's batcher handed it to post_predict
            size = len(items[index][0])
            predictor.post_predict(result, payloads[position], queries[position], headers_list[position], size)
    return replies
