"""post_predict as Cortex v0.33 ran it: after the response, in the background, once per request.

Cortex submitted it to the request thread pool; here one daemon thread per instance
runs the calls in order. The queue is bounded (POST_PREDICT_QUEUE_SIZE): when a slow
post_predict falls that far behind, new calls are dropped, counted in the
tritonize_post_predict_dropped metric and logged (at most every POST_PREDICT_WARN_EVERY_S).
"""

import logging
import queue
import threading
import time

from .constants import POST_PREDICT_QUEUE_SIZE, POST_PREDICT_WARN_EVERY_S
from .errors import log_failure

log = logging.getLogger("tritonize")


class PostPredictWorker:
    def __init__(self, function, on_drop=None, max_pending=POST_PREDICT_QUEUE_SIZE):
        self._function = function
        self._on_drop = on_drop
        self._queue = queue.Queue(max_pending)
        self._thread = None
        self._lock = threading.Lock()
        self.dropped = 0
        self._last_warning = 0.0

    def submit(self, kwargs):
        """Queue one call; never blocks, never raises."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(kwargs)
        except queue.Full:
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
                "post_predict is falling behind: %d calls dropped so far (queue of %d full)",
                self.dropped,
                self._queue.maxsize,
            )

    def _run(self):
        while True:
            kwargs = self._queue.get()
            if kwargs is None:
                return
            try:
                self._function(**kwargs)
            except BaseException as exc:  # SystemExit too: the worker must keep running
                log_failure("post_predict() failed (its response was already sent)", exc)
            finally:
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
