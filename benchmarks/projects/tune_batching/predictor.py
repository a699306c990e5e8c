import time


class PythonPredictor:
    """CPU-bound with a large fixed cost per call (a model's setup per forward pass): batching wins.
    Takes a list (server_side_batching); spins the CPU for fixed_ms + item_ms per payload."""

    def __init__(self, config):
        self.fixed_s = float(config.get("fixed_ms", 6)) / 1000
        self.item_s = float(config.get("item_ms", 0.3)) / 1000

    def predict(self, payload):
        payloads = payload if isinstance(payload, list) else [payload]
        end = time.perf_counter() + self.fixed_s + self.item_s * len(payloads)
        spins = 0
        while time.perf_counter() < end:
            spins += 1
        answers = [{"n": len(payloads)} for _ in payloads]
        return answers if isinstance(payload, list) else answers[0]
