"""The stream bench's predictor: payload["n"] small JSON chunks, no work between them."""


class PythonPredictor:
    def predict(self, payload):
        for i in range(payload["n"]):
            yield {"i": i}
