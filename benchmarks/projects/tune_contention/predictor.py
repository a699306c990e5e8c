import fcntl
import os
import tempfile
import time


class PythonPredictor:
    """Contention-bound: every call holds one lock shared by all instances (a device, a memory bus),
    for fixed_ms + item_ms * n + square_ms * n^2 (a batch outgrowing its cache), and a call that had
    to wait for the lock pays refill_ms more. Per payload that is cheapest at medium batches
    (n = sqrt(fixed / square) = 10), and more instances only wait. Takes a list."""

    def __init__(self, config):
        self.fixed_s = float(config.get("fixed_ms", 4)) / 1000
        self.item_s = float(config.get("item_ms", 0.25)) / 1000
        self.square_s = float(config.get("square_ms", 0.04)) / 1000
        self.refill_s = float(config.get("refill_ms", 3)) / 1000
        path = config.get("lock_file") or os.path.join(tempfile.gettempdir(), "tritonize-tune-contention.lock")
        self.lock = open(path, "a")

    def predict(self, payload):
        payloads = payload if isinstance(payload, list) else [payload]
        n = len(payloads)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            fcntl.flock(self.lock, fcntl.LOCK_EX)
            waited = True
        try:
            time.sleep(self.fixed_s + self.item_s * n + self.square_s * n * n + (self.refill_s if waited else 0))
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
        answers = [{"n": n} for _ in payloads]
        return answers if isinstance(payload, list) else answers[0]
