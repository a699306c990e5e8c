class PythonPredictor:
    """P1/P2: the JSON echo. The runtime parses the body and encodes the result."""

    def __init__(self, config):
        pass

    def predict(self, payload):
        return payload
