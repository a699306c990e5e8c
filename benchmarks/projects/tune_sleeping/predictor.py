import time


class PythonPredictor:
    """I/O-bound (a remote call per payload): every payload sleeps item_ms, batched or not, so only
    more instances serve more. Takes a list (server_side_batching)."""

    def __init__(self, config):
        self.item_s = float(config.get("item_ms", 25)) / 1000

    def predict(self, payload):
        payloads = payload if isinstance(payload, list) else [payload]
        time.sleep(self.item_s * len(payloads))
        answers = [{"n": len(payloads)} for _ in payloads]
        return answers if isinstance(payload, list) else answers[0]
