"""Predictor failures without flooding the log: one traceback per distinct failure and window.

A broken predictor under load fails every request the same way; formatting and writing the
whole traceback each time costs more than the request (benchmarks/NOTES.md) and buries the log.
Failures are the same when their exception type and the code locations of their frames are; the
message may differ (it often holds the request's data). Repeats get one line each, naming the
error id whose log entry holds the traceback (errors.log_failure).
"""

import time

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
    def __init__(self, window_s=FAILURE_LOG_WINDOW_S, clock=time.monotonic):
        self.window_s, self.clock = window_s, clock
        # failure key -> [when its traceback was last logged, repeats since, that entry's error id]
        self._seen = {}
        self._notes = {}

    def repeat_of(self, what, exc, error_id=None):
        """None if this failure's traceback is to be logged now (new, or its window passed), else
        a description of the earlier entry that has it (the repeat is counted)."""
        key, now = _failure_key(what, exc), self.clock()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.window_s:
            entry[1] += 1
            return f"error id {entry[2]}" if entry[2] else "the first one"
        repeats = entry[1] if entry is not None else 0
        if len(self._seen) >= _MAX_KINDS:
            self._seen.clear()
        self._seen[key] = [now, 0, error_id]
        self._notes[key] = (
            f" ({repeats} more like this in the last {self.window_s:g} s, without traceback)" if repeats else ""
        )
        return None

    def repeats_note(self, what, exc):
        """For the entry being logged: how many repeats the previous window had ('' if none)."""
        return self._notes.pop(_failure_key(what, exc), "")


failures = FailureLog()
