"""Telling a hung predictor from a busy one, from Triton's own metrics.

Triton 2.51 keeps a model READY while its instance is stuck in predict() (an endless loop, a
deadlock): every later request waits in its queue for ever. From outside, a stuck API is one whose
requests wait (nv_inference_pending_request_count > 0) while none finishes
(nv_inference_exec_count unchanged) for `after_s`. serve's watchdog, the image's supervisor and the
liveness check of a pod without one all run this rule.
"""

import math
import os

from .prometheus import parse_metrics

STUCK_AFTER_ENV = "TRITONIZE_STUCK_AFTER_S"
# Long enough for slow predictors (a 5-minute batch job is not stuck); set the variable to change it.
DEFAULT_STUCK_AFTER_S = 300.0
PENDING_METRIC = "nv_inference_pending_request_count"
EXECUTIONS_METRIC = "nv_inference_exec_count"


def stuck_after_s(environ=None):
    try:
        value = float((os.environ if environ is None else environ).get(STUCK_AFTER_ENV, DEFAULT_STUCK_AFTER_S))
    except ValueError:
        return DEFAULT_STUCK_AFTER_S
    return value if math.isfinite(value) and value > 0 else DEFAULT_STUCK_AFTER_S


def queue_samples(metrics_text):
    """{model: (pending requests, executions so far)} from Prometheus text."""
    found = {}
    for name, labels, value in parse_metrics(metrics_text):
        if name not in (PENDING_METRIC, EXECUTIONS_METRIC) or "model" not in labels or value != value:
            continue
        pending, executions = found.get(labels["model"], (0, 0))
        if name == PENDING_METRIC:
            pending += int(value)
        else:
            executions += int(value)
        found[labels["model"]] = (pending, executions)
    return found


class StuckDetector:
    """update(samples, now) -> {model: seconds it has been stuck}, for models stuck >= after_s.

    state() / StuckDetector(after_s, state) carry what it saw across processes (the liveness check
    of a pod without a supervisor runs once per probe and keeps it in a file)."""

    def __init__(self, after_s, state=None):
        self.after_s = after_s
        # model -> (executions, when its requests started waiting without progress), or None
        self._since = {model: tuple(seen) for model, seen in (state or {}).items() if seen}

    def state(self):
        return {model: list(seen) for model, seen in self._since.items() if seen}

    def update(self, samples, now):
        stuck = {}
        for model, (pending, executions) in samples.items():
            seen = self._since.get(model)
            if pending <= 0 or seen is None or seen[0] != executions:
                self._since[model] = (executions, now) if pending > 0 else None
                continue
            if now - seen[1] >= self.after_s:
                stuck[model] = now - seen[1]
        for model in self._since.keys() - samples.keys():  # unloaded: forget it
            self._since[model] = None
        return stuck
