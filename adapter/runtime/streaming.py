"""Streaming APIs: a predict() that yields becomes a stream of responses (Triton decoupled mode).

Each yielded item is encoded exactly like a non-streaming return value (codec.encode_result),
one response per item, in order, then the final flag. An exception mid-stream ends the stream
with one error response; a generator that yields nothing is a valid empty stream. Streams run
on a small pool of threads per instance, so a slow stream does not hold up the next request,
and stop (the predictor's generator is closed, its `finally` runs) when the client goes away.

Stdlib only: model.py hands in how to build Triton responses, `tritonize test` its own printer.
"""

import logging
import queue
import threading
import time
import traceback

from .constants import CANCEL_CHECK_INTERVAL_S, STREAM_ERROR_FORMAT
from .errors import PredictorFailure, client_error
from .handler import Reply, error_for_exception, error_reply, reply_for_result, safe_decode
from .stream_errors import parse_error_chunk  # noqa: F401 (tests and callers import it from here)

log = logging.getLogger("tritonize")


def error_chunk(reply):
    """An error Reply as it travels in a stream: the HTTP-style status leads the message,
    because neither gRPC streams nor SSE events carry a status code of their own."""
    message = STREAM_ERROR_FORMAT.format(status=reply.status, message=reply.message)
    return Reply(reply.status, message.encode("utf-8"), reply.content_type)


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
    except Exception:
        log.error("closing the predictor's generator failed:\n%s", traceback.format_exc())


def stream_replies(predictor, body, parameters_json, rules):
    """One request -> a generator of Replies; an error Reply is always the last one.

    Closing this generator closes the predictor's generator.
    """
    if isinstance(body, Reply):
        yield body
        return
    decoded = safe_decode(predictor, body, parameters_json, rules)
    if isinstance(decoded, Reply):
        yield decoded
        return
    payload, query_params, headers = decoded
    try:
        items = _items_of(predictor.predict(payload, query_params, headers))
    except BaseException as exc:  # SystemExit too: this stream fails, the server stays
        yield error_reply(error_for_exception(exc))
        return
    try:
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except BaseException as exc:
                yield error_reply(error_for_exception(exc))
                return
            reply, _ = reply_for_result(item)
            yield reply
            if not reply.ok:
                return
    finally:
        _close(items)


def _batch_results(step, expected):
    if hasattr(step, "tolist") and not isinstance(step, (list, tuple)):
        step = step.tolist()
    if not isinstance(step, (list, tuple)) or len(step) != expected:
        got = f"a list of {len(step)}" if isinstance(step, (list, tuple)) else type(step).__name__
        raise PredictorFailure(
            f"with server_side_batching, a streaming predict() must yield a list with one item per request "
            f"(None for a finished request; batch of {expected}), got {got}"
        )
    return step


def batch_stream_replies(predictor, items, rules):
    """items: [(body or an error Reply, parameters_json)] -> a generator of steps, each a list of
    (index, Reply or None); None: that request has finished. Every index ends with None or an
    error Reply. Undecodable requests end at the first step and never reach predict()."""
    first, indices, payloads, queries, headers_list = [], [], [], [], []
    for index, (body, parameters_json) in enumerate(items):
        if isinstance(body, Reply):
            first.append((index, body))
            continue
        decoded = safe_decode(predictor, body, parameters_json, rules)
        if isinstance(decoded, Reply):
            first.append((index, decoded))
            continue
        payload, query_params, headers = decoded
        indices.append(index)
        payloads.append(payload)
        queries.append(query_params)
        headers_list.append(headers)
    if first:
        yield first
    if not indices:
        return
    try:
        steps = _items_of(predictor.predict(payloads, queries, headers_list))
    except BaseException as exc:
        error = error_reply(error_for_exception(exc))
        yield [(index, error) for index in indices]
        return
    active = set(indices)
    try:
        while active:
            try:
                step = _batch_results(next(steps), len(indices))
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
            for index, result in zip(indices, step):
                if index not in active:
                    continue  # finished earlier: later items are ignored
                reply = None if result is None else reply_for_result(result)[0]
                if reply is None or not reply.ok:
                    active.discard(index)
                events.append((index, reply))
            yield events
        if active:
            yield [(index, None) for index in indices if index in active]
    finally:
        _close(steps)


class Stream:
    """One request's way back: send(reply) per chunk, finish() once; cancelled() asks the client side."""

    def __init__(self, sender, respond, final_flag):
        self.sender, self.respond, self.final_flag = sender, respond, final_flag
        self.open = True

    def send(self, reply):
        if not reply.ok:
            reply = error_chunk(reply)
        self.sender.send(self.respond(reply))
        if not reply.ok:
            self.finish()

    def finish(self):
        if self.open:
            self.open = False
            self.sender.send(flags=self.final_flag)

    def cancelled(self):
        return self.sender.is_cancelled()


def pump(replies, stream):
    """Send one request's replies until the end, the client's cancel or a failed send."""
    last_check = time.monotonic()
    try:
        for reply in replies:
            now = time.monotonic()
            if now - last_check >= CANCEL_CHECK_INTERVAL_S:
                last_check = now
                if stream.cancelled():
                    log.info("stream cancelled by the client; closing the predictor's generator")
                    break
            stream.send(reply)
            if not stream.open:
                break
    except Exception:  # the send failed: the client is gone or the server is stopping
        log.warning("sending a stream chunk failed; closing the stream:\n%s", traceback.format_exc())
    finally:
        replies.close()
        _finish(stream)


def pump_batch(steps, streams):
    """streams: {index: Stream}; steps from batch_stream_replies."""
    last_check = time.monotonic()
    active = dict(streams)
    try:
        for events in steps:
            for index, reply in events:
                stream = active.get(index)
                if stream is None:
                    continue
                if reply is None:
                    stream.finish()
                else:
                    stream.send(reply)
                if not stream.open:
                    del active[index]
            now = time.monotonic()
            if active and now - last_check >= CANCEL_CHECK_INTERVAL_S:
                last_check = now
                for index, stream in list(active.items()):
                    if stream.cancelled():
                        stream.finish()
                        del active[index]
            if not active:
                break
    except Exception:
        log.warning("sending a batched stream chunk failed; closing the streams:\n%s", traceback.format_exc())
    finally:
        steps.close()
        for stream in streams.values():
            _finish(stream)


def _finish(stream):
    try:
        stream.finish()
    except Exception:
        log.warning("sending a stream's final flag failed:\n%s", traceback.format_exc())


class StreamExecutor:
    """Runs an instance's streams on `threads` daemon threads; execute() waits for a free one,
    so requests beyond that wait in Triton's queue (and are batched there, with batching).

    body_of(request) -> body bytes or an error Reply; respond(reply) -> a Triton response.
    """

    def __init__(self, dispatcher, threads, body_of, respond, final_flag):
        self.predictor, self.rules, self.batching = dispatcher.predictor, dispatcher.rules, dispatcher.batching
        self.body_of, self.respond, self.final_flag = body_of, respond, final_flag
        self.slots = threading.BoundedSemaphore(threads)
        self.jobs = queue.SimpleQueue()
        for number in range(threads):
            threading.Thread(target=self._work, name=f"tritonize-stream-{number}", daemon=True).start()

    def _work(self):
        while True:
            job = self.jobs.get()
            try:
                job()
            except Exception:
                log.error("stream worker failed:\n%s", traceback.format_exc())
            finally:
                self.slots.release()

    def execute(self, requests):
        """Decoupled execute(): hands each request (or, with batching, the batch) to a stream thread."""
        if self.batching:
            waited = self._slot()
            self.jobs.put(lambda: self._run_batch(requests, waited))
        else:
            for request in requests:
                waited = self._slot()
                self.jobs.put(lambda request=request, waited=waited: self._run_one(request, waited))
        return None

    def _slot(self):
        """Wait for a free stream thread; True if that meant waiting (the client may have left meanwhile)."""
        if self.slots.acquire(blocking=False):
            return False
        self.slots.acquire()
        return True

    def _stream(self, request):
        return Stream(request.get_response_sender(), self.respond, self.final_flag)

    def _run_one(self, request, waited):
        stream = self._stream(request)
        if waited and stream.cancelled():  # gone while queued: predict() is never called
            _finish(stream)
            return
        replies = stream_replies(self.predictor, self.body_of(request), request.parameters(), self.rules)
        pump(replies, stream)

    def _run_batch(self, requests, waited):
        pairs = [(request, self._stream(request)) for request in requests]
        if waited:  # drop the requests whose clients left while the batch was queued
            for _, stream in pairs:
                if stream.cancelled():
                    _finish(stream)
            pairs = [(request, stream) for request, stream in pairs if stream.open]
        if not pairs:
            return
        streams = {index: stream for index, (_, stream) in enumerate(pairs)}
        items = [(self.body_of(request), request.parameters()) for request, _ in pairs]
        pump_batch(batch_stream_replies(self.predictor, items, self.rules), streams)
