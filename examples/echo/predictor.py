"""A minimal Cortex predictor: echoes the payload and what came with it."""


class PythonPredictor:
    def __init__(self, config):
        self.greeting = config.get("greeting", "hello")

    def predict(self, payload, query_params, headers):
        return {
            "greeting": self.greeting,
            "payload": payload,
            "query_params": dict(query_params),
            "headers": dict(headers),
        }
