"""Log predictor failures without flooding: one traceback per distinct failure and window.

A broken predictor under load fails every request the same way; formatting and writing the
whole traceback each time costs more than the request (benchmarks/NOTES.md) and buries the log.
Failures are the same when their exception type and the code locations of their frames are; the
message may differ (it often holds the request's data).
"""

import logging
import time
import traceback

from .constants import FAILURE_LOG_WINDOW_S

# Distinct failures remembered at once; past this the memory is cleared (a few tracebacks repeat).
_MAX_KINDS = 256


def _failure_key(what, exc):
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code, tb.tb_lineno))
        tb = tb.tb_next
    return what, type(exc), tuple(frames)


class FailureLog:
    def __init__(self, logger, window_s=FAILURE_LOG_WINDOW_S, clock=time.monotonic):
        self.logger, self.window_s, self.clock = logger, window_s, clock
        self._seen = {}  # failure key -> [when its traceback was last logged, repeats since]

    def failed(self, what, exc):
        """Log `what failed` with exc's traceback, unless the same failure was logged within the window."""
        key, now = _failure_key(what, exc), self.clock()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.window_s:
            entry[1] += 1
            return
        repeats = entry[1] if entry is not None else 0
        if len(self._seen) >= _MAX_KINDS:
            self._seen.clear()
        self._seen[key] = [now, 0]
        note = f" ({repeats} more times like this in the last {self.window_s:g} s, not logged)" if repeats else ""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.logger.error("%s failed%s:\n%s", what, note, text)


failures = FailureLog(logging.getLogger("tritonize"))
