"""Telling a hung predictor from a busy one, from Triton's own metrics.

Triton 2.51 keeps a model READY while its instance is stuck in predict() (an endless loop, a
deadlock): every later request waits in its queue for ever. From outside, a stuck API is one whose
requests wait (nv_inference_pending_request_count > 0) while none finishes
(nv_inference_exec_count unchanged) for `after_s`. The same rule runs in `serve`'s watchdog and,
as stdlib code, in the Kubernetes liveness check (deploy/liveness.py).
"""

import os
import re

STUCK_AFTER_ENV = "TRITONIZE_STUCK_AFTER_S"
# Long enough for slow predictors (a 5-minute batch job is not stuck); set the variable to change it.
DEFAULT_STUCK_AFTER_S = 300.0
_SAMPLE = re.compile(
    r'^(nv_inference_pending_request_count|nv_inference_exec_count)\{[^}]*model="([^"]*)"[^}]*\} (\S+)'
)


def stuck_after_s(environ=None):
    try:
        return float((environ or os.environ).get(STUCK_AFTER_ENV, DEFAULT_STUCK_AFTER_S))
    except ValueError:
        return DEFAULT_STUCK_AFTER_S


def queue_samples(metrics_text):
    """{model: (pending requests, executions so far)} from Prometheus text."""
    found = {}
    for line in metrics_text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            pending, executions = found.get(match.group(2), (0, 0))
            value = int(float(match.group(3)))
            if match.group(1) == "nv_inference_pending_request_count":
                pending += value
            else:
                executions += value
            found[match.group(2)] = (pending, executions)
    return found


class StuckDetector:
    """update(samples, now) -> {model: seconds it has been stuck}, for models stuck >= after_s."""

    def __init__(self, after_s):
        self.after_s = after_s
        self._since = {}  # model -> (executions, when its requests started waiting without progress)

    def update(self, samples, now):
        stuck = {}
        for model, (pending, executions) in samples.items():
            seen = self._since.get(model)
            if pending <= 0 or seen is None or seen[0] != executions:
                self._since[model] = (executions, now) if pending > 0 else None
                continue
            if now - seen[1] >= self.after_s:
                stuck[model] = now - seen[1]
        return stuck
