from scoring import score


class PythonPredictor:
    def __init__(self, config):
        self.config = config

    def predict(self, payload):
        return score(payload["text"])
