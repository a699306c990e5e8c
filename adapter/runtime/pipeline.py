"""The one request pipeline: every request of every API goes through the same named stages.

    read     a Triton request -> an item (inputs or an error Reply, parameters JSON);
             request.parameters() and every input read guarded (never raises)
    decode   item -> (payload, query_params, headers, ...) or that request's own 400
    predict  one predictor.predict() call per group: one request, or the whole batch as lists
             (server_side_batching) / stacked tensors (typed APIs)
    split    predict()'s result -> one result per request, checked (or every request of the
             group gets the same error)
    encode   each result -> its answer, post_predict queued for it

Body and typed APIs differ only in what their stages do (handler.BodyStages,
tensors.TensorStages); plain and streaming APIs only in how the answers leave: `answer()`
returns them, `stream()` yields them step by step (streaming.py sends them). model.py's
execute() and `tritonize test` (server/dry_run.py) both run requests through a Pipeline, so
the server and the test command answer alike. A request's failure never fails its
batch-mates, and nothing here raises.
"""

import numpy as np

from .errors import PredictorFailure, RequestError, client_error, internal_error, log_failure
from .handler import BodyStages
from .reply import BAD_PARAMETERS_REPLY, Reply, error_for_exception, error_reply, internal_reply


class Pipeline:
    """One API's predictor and the settings that choose its stages (body or typed, batched or not)."""

    def __init__(self, predictor, settings, rules, max_body_bytes=0):
        self.predictor = predictor
        self.rules = rules
        self.batching = settings.predictor_batching
        self.tensors = settings.tensors
        if self.tensors:
            from .tensors import TensorStages  # typed APIs only: a body API's instance never imports it

            self.stages = TensorStages(predictor, rules, self.tensors)
        else:
            self.stages = BodyStages(predictor, rules, max_body_bytes)

    # --- read -----------------------------------------------------------------------------------

    def read(self, request, input_array):
        """A Triton request -> (inputs or an error Reply, parameters JSON); never raises.

        input_array(request, name) -> that input's numpy array, or None."""
        try:
            parameters = request.parameters()
        except UnicodeDecodeError:  # a forwarded header or gRPC metadata value that is not UTF-8
            return BAD_PARAMETERS_REPLY, "{}"
        except BaseException as exc:
            return internal_reply("reading the request parameters failed", exc), "{}"
        try:
            return self.stages.read(request, input_array), parameters
        except BaseException as exc:
            return internal_reply("reading the request's input tensors failed", exc), parameters

    def body(self, values):
        """read, for a body API's caller without a Triton request: the `payload` array (or None) ->
        the body bytes, or an error Reply."""
        return self.stages.body(values)

    # --- decode ---------------------------------------------------------------------------------

    def _decode(self, inputs, parameters_json):
        """One item -> its decoded request, or its own error Reply."""
        if isinstance(inputs, Reply):
            return inputs
        try:
            return self.stages.decode(inputs, parameters_json)
        except RequestError as error:
            return error_reply(error)
        except BaseException as exc:  # a bug in decoding must not fail the batch either
            return error_reply(internal_error("decoding the request failed", exc))

    # --- predict, split, encode -----------------------------------------------------------------

    def _predict(self, group):
        """The one predict() call for a group of decoded requests (raises what predict() raises)."""
        return self.predictor.predict(*self.stages.arguments(group, self.batching))

    def answer(self, items):
        """items: [(inputs or an error Reply, parameters JSON)] -> one answer per item: a Reply,
        or for typed APIs a dict of output arrays. Without batching each request is its own group."""
        if not self.batching:
            decode, answer_one = self._decode, self._answer_one
            answers = []
            for inputs, parameters_json in items:
                decoded = decode(inputs, parameters_json)
                answers.append(decoded if isinstance(decoded, Reply) else answer_one(decoded))
            return answers
        answers = [self._decode(inputs, parameters_json) for inputs, parameters_json in items]
        positions = [position for position, decoded in enumerate(answers) if not isinstance(decoded, Reply)]
        if positions:
            group = [answers[position] for position in positions]
            for position, answer in zip(positions, self._answer_group(group)):
                answers[position] = answer
        return answers

    def _rows(self, group, batching):
        """predict, then split: one result per request of the group, or the Reply they all get."""
        try:
            return self.stages.rows(self._predict(group), group, batching)
        except RequestError as error:  # stacking refused, or the contract violated (the reason: logged)
            return error_reply(error)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: these requests fail, the server stays
            return error_reply(error_for_exception(exc))

    def _answer_one(self, decoded):
        """A group of one (without batching, every request): predict, split, encode."""
        rows = self._rows((decoded,), False)
        return rows if isinstance(rows, Reply) else self.stages.encode(rows[0], decoded)

    def _answer_group(self, group):
        """predict, split and encode for one group of decoded requests -> one answer each."""
        rows = self._rows(group, self.batching)
        if isinstance(rows, Reply):
            return [rows] * len(group)
        encode = self.stages.encode
        return [encode(row, decoded) for row, decoded in zip(rows, group)]

    # --- stream: predict once, then split and encode each step ----------------------------------

    def stream(self, items):
        """items as for answer() -> a generator of steps, each a list of (index, Reply or None).

        Without batching each item is its own stream (give one item); every yielded item is one
        chunk. With batching, each step predict() yields is split into one item per request, None
        for a request that has finished. Every index ends with None or an error Reply (a request's
        stream ends at its first error). Closing the generator closes the predictor's generator.
        """
        decoded = [self._decode(inputs, parameters_json) for inputs, parameters_json in items]
        early = [(index, reply) for index, reply in enumerate(decoded) if isinstance(reply, Reply)]
        if early:
            yield early
        indices = [index for index, reply in enumerate(decoded) if not isinstance(reply, Reply)]
        if not indices:
            return
        if not self.batching and len(indices) > 1:
            raise ValueError("without batching, stream one request at a time")
        decoded = [decoded[index] for index in indices]
        try:
            steps = _items_of(self._predict(decoded))
        except BaseException as exc:  # SystemExit too: these streams fail, the server stays
            error = error_reply(error_for_exception(exc))
            yield [(index, error) for index in indices]
            return
        active = set(indices)
        try:
            while active:
                try:
                    rows = self.stages.rows(next(steps), decoded, self.batching, streaming=True)
                except StopIteration:
                    break
                except PredictorFailure as failure:
                    error = error_reply(client_error(failure))  # the reason goes to the log
                    yield [(index, error) for index in indices if index in active]
                    return
                except BaseException as exc:
                    error = error_reply(error_for_exception(exc))
                    yield [(index, error) for index in indices if index in active]
                    return
                events = []
                for index, row in zip(indices, rows):
                    if index not in active:
                        continue  # finished earlier: later items are ignored
                    reply = None if (row is None and self.batching) else self.stages.chunk(row)
                    if reply is None or not reply.ok:
                        active.discard(index)
                    events.append((index, reply))
                yield events
            if active:
                yield [(index, None) for index in indices if index in active]
        finally:
            _close(steps)


def _items_of(result):
    # A generator (or any iterator) is a stream; a plain return value is a stream of one chunk.
    if hasattr(result, "__next__"):
        return result
    return iter((result,))


def _close(items):
    close = getattr(items, "close", None)
    if close is None:
        return
    try:
        close()  # runs the predictor's finally blocks
    except Exception as exc:
        log_failure("closing the predictor's generator failed", exc)


def bytes_input(value):
    """A Python value as Triton hands a BYTES element to the model (bytes)."""
    return value.encode("utf-8") if isinstance(value, str) else value


def as_triton_input(values, dtype):
    """JSON values -> the array Triton would hand the model for this declared dtype, batch dim added."""
    if dtype == "bytes":
        array = np.asarray(values, dtype=np.object_)
        flat = [bytes_input(v) for v in array.reshape(-1)]
        out = np.empty(len(flat), dtype=np.object_)
        out[:] = flat
        return out.reshape(array.shape)[None]
    return np.asarray(values, dtype=dtype)[None]
