"""One request, start to finish: decode, predict, encode; never raises."""

import logging
import traceback
from dataclasses import dataclass

from .codec import decode_payload, encode_result, error_from_http_exception
from .errors import PredictorFailure, RequestError
from .params import split_parameters

log = logging.getLogger("tritonize")


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


def handle_request(predictor, body, parameters_json, rules):
    """Answer one request with `predictor`; every failure becomes a Reply."""
    try:
        query_params, headers, content_type = split_parameters(parameters_json, rules)
        if content_type is not None:
            headers["content-type"] = content_type
        payload = decode_payload(body, content_type) if predictor.wants_payload else None
    except RequestError as error:
        return error_reply(error)
    try:
        result = predictor.predict(payload, query_params, headers)
    except Exception as exc:
        error = error_from_http_exception(exc)
        if error is None:
            log.error("predict() failed:\n%s", traceback.format_exc())
            error = PredictorFailure(f"predict() failed: {type(exc).__name__}: {exc}")
        return error_reply(error)
    try:
        response_body, response_type = encode_result(result)
        reply = Reply(200, response_body, response_type)
    except RequestError as error:
        reply = error_reply(error)
    predictor.post_predict(result, payload, query_params, headers)
    return reply
