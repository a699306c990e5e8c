# Sentence embeddings with Cortex's server_side_batching contract: `payload` is the list of the
# batched requests' bodies, and predict returns one answer per body, in the same order.
from embedder import Embedder


class PythonPredictor:
    def __init__(self, config):
        self.embedder = Embedder(config)

    def predict(self, payload):
        embeddings = self.embedder.embed([body["text"] for body in payload])
        return [{"embedding": vector} for vector in embeddings.cpu().tolist()]
