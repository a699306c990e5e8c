"""post_predict as Cortex v0.33 ran it: after the response, in the background, once per request.

Cortex submitted it to the request thread pool; here one daemon thread per instance
runs the calls in order. The queue is bounded, in calls (POST_PREDICT_QUEUE_SIZE) and in the
memory the waiting calls hold (POST_PREDICT_QUEUE_BYTES): their payloads and results as Python
objects, not the bytes they came from (a parsed JSON body holds up to ~25 times its size:
`[{},{},...]`); when a slow post_predict falls that far behind, new calls are dropped, counted
in the tritonize_post_predict_dropped metric and logged (at most every POST_PREDICT_WARN_EVERY_S).
"""

import logging
import queue
import threading
import time

from .constants import POST_PREDICT_QUEUE_BYTES, POST_PREDICT_QUEUE_SIZE, POST_PREDICT_WARN_EVERY_S
from .errors import log_failure

log = logging.getLogger("tritonize")

# Bytes of Python objects per JSON token (`,` `:` `[` `{`), the worst measured: `[{"a":0},...]` holds
# 64 bytes per token on CPython 3.11 (a dict 64+, its table, a list slot) and 80 on 3.10 (larger dicts).
HELD_BYTES_PER_JSON_TOKEN = 88
# A str holds up to 4 bytes per character (one character outside the BMP makes it UCS-4).
HELD_BYTES_PER_NON_ASCII_CHAR = 4
WORST_HELD_BYTES_PER_BYTE = HELD_BYTES_PER_NON_ASCII_CHAR + HELD_BYTES_PER_JSON_TOKEN
_SMALL_DOCUMENT = 1024


def held_arguments(predictor):
    """(post_predict defined?, it takes the payload?, it takes the response?): what a queued call holds."""
    names = getattr(predictor, "post_predict_args", None)
    return names is not None, "payload" in (names or ()), "response" in (names or ())


def json_held_bytes(document):
    """An upper estimate of the memory json.loads(document) holds, from the bytes alone (no walk
    over the objects: it runs per request). Reading a few counts costs well under a microsecond
    for a typical body; a small one is not even read: at most every byte is a token)."""
    if len(document) <= _SMALL_DOCUMENT:
        return WORST_HELD_BYTES_PER_BYTE * (len(document) + 1)
    size = len(document) if document.isascii() else HELD_BYTES_PER_NON_ASCII_CHAR * len(document)
    tokens = 1 + document.count(b",") + document.count(b":") + document.count(b"[") + document.count(b"{")
    return size + HELD_BYTES_PER_JSON_TOKEN * tokens


class PostPredictWorker:
    def __init__(self, function, on_drop=None, max_pending=POST_PREDICT_QUEUE_SIZE, max_bytes=POST_PREDICT_QUEUE_BYTES):
        self._function = function
        self._on_drop = on_drop
        self._queue = queue.Queue(max_pending)
        self._thread = None
        self._lock = threading.Lock()
        self._max_bytes = max_bytes
        self.pending_bytes = 0
        self.dropped = 0
        self._last_warning = 0.0

    def submit(self, kwargs, nbytes=0):
        """Queue one call holding about nbytes (its payload and result as objects); never blocks, never raises."""
        if self._thread is None:
            self._start()
        with self._lock:
            full = self.pending_bytes > 0 and self.pending_bytes + nbytes > self._max_bytes
            if not full:
                self.pending_bytes += nbytes
        if not full:
            try:
                self._queue.put_nowait((kwargs, nbytes))
                return
            except queue.Full:
                with self._lock:
                    self.pending_bytes -= nbytes
        self._drop()

    def _start(self):
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tritonize-post-predict", daemon=True)
                self._thread.start()

    def _drop(self):
        self.dropped += 1
        if self._on_drop is not None:
            try:
                self._on_drop()
            except Exception:
                pass
        now = time.monotonic()
        if now - self._last_warning >= POST_PREDICT_WARN_EVERY_S:
            self._last_warning = now
            log.warning(
                "post_predict is falling behind: %d calls dropped so far (queue of %d calls / %d bytes full)",
                self.dropped,
                self._queue.maxsize,
                self._max_bytes,
            )

    def _run(self):
        while True:
            job = self._queue.get()
            if job is None:
                return
            kwargs, nbytes = job
            try:
                self._function(**kwargs)
            except BaseException as exc:  # SystemExit too: the worker must keep running
                log_failure("post_predict() failed (its response was already sent)", exc)
            finally:
                del kwargs, job  # drop this request's data before waiting for the next
                with self._lock:
                    self.pending_bytes -= nbytes
                self._queue.task_done()

    def stop(self, timeout_s):
        """Run what is queued for at most timeout_s (instance shutdown), then stop."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
