# The typed-tensor variant: no JSON on the wire. `payload["text"]` is a (batch, 1) array of UTF-8
# bytes stacked over the batched requests; the (batch, 384) float32 answer is split back per request.
from embedder import Embedder


class PythonPredictor:
    def __init__(self, config):
        self.embedder = Embedder(config)

    def predict(self, payload):
        texts = [item.decode("utf-8") for item in payload["text"][:, 0]]
        return {"embedding": self.embedder.embed(texts)}
