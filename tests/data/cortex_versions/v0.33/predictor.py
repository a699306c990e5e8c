class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        return [{"n": len(payload)} for _ in payload]
