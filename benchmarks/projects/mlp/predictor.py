"""P3/P4: an MLP (256 -> 2048 -> 2048 -> 16, ~4.7M parameters), random weights, seed 0."""

import numpy as np
import torch


def make_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 2048),
        torch.nn.ReLU(),
        torch.nn.Linear(2048, 2048),
        torch.nn.ReLU(),
        torch.nn.Linear(2048, 16),
    )
    return model.eval()


class PythonPredictor:
    """server_side_batching: a list of {"x": [256 floats]} in, a list of results out."""

    def __init__(self, config):
        torch.set_num_threads(int(config.get("threads", 2)))
        self.model = make_model()

    def predict(self, payload):
        x = torch.tensor(np.asarray([p["x"] for p in payload], dtype=np.float32))
        with torch.inference_mode():
            scores = self.model(x)
        best, index = scores.max(dim=1)
        return [{"argmax": int(i), "score": float(s)} for i, s in zip(index, best)]


class TypedPredictor:
    """Typed tensors: {"x": float32 [n, 256]} -> {"y": float32 [n, 16]}."""

    def __init__(self, config):
        torch.set_num_threads(int(config.get("threads", 2)))
        self.model = make_model()

    def predict(self, payload):
        with torch.inference_mode():
            return {"y": self.model(torch.from_numpy(payload["x"]))}
