"""Body APIs (JSON/text/bytes/form in, Cortex's return values out): their stages of the pipeline.

pipeline.py runs every request through read -> decode -> predict -> split -> encode; this is what
those stages mean for an API whose request is one body: the body is read from the `payload`
tensor, decoded by its content type (codec.py) into predict()'s payload, and each result is
encoded back into a Reply. With server_side_batching predict() receives lists and returns a list
(Cortex's contract); post_predict is queued once per request with that request's own result.
"""

from .codec import (
    JSON,
    decode_payload,
    encode_json,
    encode_result,
    is_json_media_type,
    parse_content_type,
    success_status,
)
from .constants import INPUT_NAME
from .errors import PredictorFailure, RequestError, internal_error
from .params import split_parameters
from .post_predict import held_arguments, json_held_bytes
from .reply import Reply, error_reply, text_reply


def reply_for_result(result):
    """-> (Reply, encoded): encoded is False when the result could not be sent (no post_predict then, as Cortex)."""
    try:
        if type(result) is dict or type(result) is list:  # the common answer: JSON, 200, nothing to look into
            return Reply(200, encode_json(result), JSON), True
        response_body, response_type = encode_result(result)
        return Reply(success_status(result), response_body, response_type), True
    except RequestError as error:  # a Response / HTTP error status the predictor chose, or a contract violation
        return error_reply(error), not isinstance(error, PredictorFailure)
    except BaseException as exc:
        return error_reply(internal_error("encoding the result of predict() failed", exc)), False


def one_per_request(results, expected, streaming=False):
    """With server_side_batching: the list predict() returned (or a stream yielded) with one item per
    request; raises PredictorFailure naming what was wrong."""
    if hasattr(results, "tolist") and not isinstance(results, (list, tuple)):
        results = results.tolist()  # a numpy array / torch tensor with one row per request
    if isinstance(results, (list, tuple)) and len(results) == expected:
        return results
    got = f"a list of {len(results)}" if isinstance(results, (list, tuple)) else type(results).__name__
    contract = (
        f"a streaming predict() must yield a list with one item per request (None for a finished request; "
        f"batch of {expected})"
        if streaming
        else f"predict() must return a list with one result per request (batch of {expected})"
    )
    raise PredictorFailure(f"with server_side_batching, {contract}, got {got}")


def _held_bytes(body, content_type):
    """About the memory a decoded body (or an encoded result's object) holds while post_predict waits."""
    if content_type is None or is_json_media_type(parse_content_type(content_type)[0]):
        return json_held_bytes(body)
    return len(body)


class BodyStages:
    """The body API's read, decode, arguments, split and encode (see pipeline.Pipeline)."""

    def __init__(self, predictor, rules, max_body_bytes=0):
        self.predictor, self.rules, self.max_body_bytes = predictor, rules, max_body_bytes
        self.wants_payload = predictor.wants_payload
        self.posts, self.posts_payload, self.posts_response = held_arguments(predictor)

    def read(self, request, input_array):
        """read: the one body held by the request's `payload` tensor -> bytes, or an error Reply.

        input_array(request, name) -> the tensor's numpy array, or None when the request has none."""
        return self.body(input_array(request, INPUT_NAME))

    def body(self, values):
        """The `payload` tensor's array (or None) -> the body bytes, or an error Reply."""
        if values is None:
            return text_reply(400, f"missing input tensor {INPUT_NAME!r}")
        if values.size != 1:
            return text_reply(
                400, f"input {INPUT_NAME!r} must hold exactly one body (shape [1, 1]), got shape {list(values.shape)}"
            )
        body = values.reshape(-1)[0]
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes):
            return text_reply(400, f"input {INPUT_NAME!r} must be BYTES")
        if self.max_body_bytes and len(body) > self.max_body_bytes:
            return text_reply(
                400,
                f"request body too large: {len(body)} bytes, this server accepts at most "
                f"{self.max_body_bytes} (tritonize serve --max-body-size)",
            )
        return body

    def decode(self, body, parameters_json):
        """-> (payload, query_params, headers, body, content type); raises RequestError (400) if undecodable."""
        query_params, headers, content_type = split_parameters(parameters_json, self.rules)
        payload = decode_payload(body, content_type) if self.wants_payload else None
        return payload, query_params, headers, body, content_type

    @staticmethod
    def arguments(members, batching):
        """predict()'s (payload, query_params, headers): one request's, or lists of them (batching)."""
        if not batching:
            return members[0][:3]
        return [m[0] for m in members], [m[1] for m in members], [m[2] for m in members]

    @staticmethod
    def rows(result, members, batching, streaming=False):
        """predict()'s result (or one step of a stream) -> one result per request, in order."""
        return one_per_request(result, len(members), streaming) if batching else (result,)

    def encode(self, result, decoded):
        """One request's result -> its Reply; post_predict queued if it was sent."""
        reply, encoded = reply_for_result(result)
        if encoded and self.posts:
            held = _held_bytes(decoded[3], decoded[4]) if self.posts_payload else 0
            if self.posts_response:
                held += json_held_bytes(reply.body) if reply.content_type == JSON else len(reply.body)
            self.predictor.post_predict(result, decoded[0], decoded[1], decoded[2], held)
        return reply

    @staticmethod
    def chunk(result):
        """encode, for one item a streaming predict() yielded (no post_predict: Cortex had no streams)."""
        return reply_for_result(result)[0]
