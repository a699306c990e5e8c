import time


class PythonPredictor:
    """Head-of-line benchmark: a predictor whose every request takes 50 ms (I/O or a slow model)."""

    def __init__(self, config):
        self.seconds = float(config.get("sleep_ms", 50)) / 1000

    def predict(self, payload):
        time.sleep(self.seconds)
        return {"slept_ms": self.seconds * 1000}
