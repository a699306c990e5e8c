"""End an instance process whose execute() has run longer than the API's request timeout.

Triton 2.51 has no way to stop one execute() of a python-backend model (its queue policy's
timeout only drops requests still waiting, and costs throughput). So a daemon thread watches
`model.busy_since`, the monotonic time the running execute() began (None between calls, one
attribute write per call in model.py), and when it is older than the timeout, logs why and ends
the process: Triton fails the requests it holds at once instead of letting every later request
wait forever, and `tritonize serve`'s watchdog (or the pod's liveness check) brings a fresh
instance. Streaming (decoupled) APIs return from execute() at once: not covered.
"""

import logging
import os
import sys
import threading
import time

from .constants import REQUEST_TIMEOUT_CHECK_S, REQUEST_TIMEOUT_EXIT_CODE

log = logging.getLogger("tritonize")


class RequestTimeout:
    """Checks `model.busy_since` every check_s; past timeout_s, calls end(REQUEST_TIMEOUT_EXIT_CODE)."""

    def __init__(self, model, api, instance, timeout_s, end=os._exit, clock=time.monotonic):
        self.model, self.api, self.instance, self.timeout_s = model, api, instance, timeout_s
        self.check_s = min(REQUEST_TIMEOUT_CHECK_S, max(timeout_s / 4, 0.05))
        self.end, self.clock = end, clock
        self._stop = threading.Event()

    def start(self):
        threading.Thread(target=self._run, name="tritonize-request-timeout", daemon=True).start()
        return self

    def stop(self):
        self._stop.set()

    def _run(self):
        while not self._stop.wait(self.check_s):
            self.check()

    def check(self):
        """True if the running execute() was over its time (and end() was called)."""
        since = self.model.busy_since
        if since is None:
            return False
        took = self.clock() - since
        if took <= self.timeout_s:
            return False
        log.error(
            "API %r, instance %s: a request has run %.1f s, over the request timeout of %s s; ending this "
            "instance process so that its requests fail now (serve reloads it)",
            self.api,
            self.instance,
            took,
            f"{self.timeout_s:g}",
        )
        for handler in log.handlers:
            handler.flush()
        sys.stderr.flush()
        self._stop.set()
        self.end(REQUEST_TIMEOUT_EXIT_CODE)
        return True
