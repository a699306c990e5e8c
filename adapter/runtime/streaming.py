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
from .reply import Reply, internal_reply
from .stream_errors import parse_error_chunk  # noqa: F401 (tests and callers import it from here)

log = logging.getLogger("tritonize")


def error_chunk(reply):
    """An error Reply as it travels in a stream: the HTTP-style status leads the message,
    because neither gRPC streams nor SSE events carry a status code of their own."""
    message = STREAM_ERROR_FORMAT.format(status=reply.status, message=reply.message)
    return Reply(reply.status, message.encode("utf-8"), reply.content_type)


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


def pump(steps, streams):
    """Send each request's replies until its end, its client's cancel or a failed send.

    streams: {index: Stream}; steps from Pipeline.stream()."""
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
                        log.info("stream cancelled by the client; closing the predictor's generator")
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

    Each request is read on its stream thread through pipeline.read (input_array(request, name)
    -> array or None); respond(reply) -> a Triton response.
    """

    def __init__(self, pipeline, threads, input_array, respond, final_flag):
        self.pipeline, self.batching = pipeline, pipeline.batching
        self.input_array, self.respond, self.final_flag = input_array, respond, final_flag
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
        groups = [requests] if self.batching else [[request] for request in requests]
        for group in groups:
            waited = self._slot()
            self.jobs.put(lambda group=group, waited=waited: self._run(group, waited))
        return None

    def _slot(self):
        """Wait for a free stream thread; True if that meant waiting (the client may have left meanwhile)."""
        if self.slots.acquire(blocking=False):
            return False
        self.slots.acquire()
        return True

    def _stream(self, request):
        return Stream(request.get_response_sender(), self.respond, self.final_flag)

    def _run(self, requests, waited):
        streams = {}
        try:
            pairs = [(request, self._stream(request)) for request in requests]
            if waited:  # drop the requests whose clients left while queued: predict() never sees them
                for _, stream in pairs:
                    if stream.cancelled():
                        _finish(stream)
                pairs = [(request, stream) for request, stream in pairs if stream.open]
            if not pairs:
                return
            streams = {index: stream for index, (_, stream) in enumerate(pairs)}
            items = [self.pipeline.read(request, self.input_array) for request, _ in pairs]
            steps = self.pipeline.stream(items)
        except BaseException as exc:  # never leave a client waiting for a final flag
            _fail(streams, internal_reply("starting the stream failed", exc))
            return
        pump(steps, streams)


def _fail(streams, reply):
    for stream in streams.values():
        if stream.open:
            try:
                stream.send(reply)
            except Exception:
                log.warning("sending a stream's error failed:\n%s", traceback.format_exc())
            _finish(stream)
