# Cortex's multi-model example (examples/model-caching/python/multi-model style): one API,
# two models, routed by the `model` query parameter. Unchanged Cortex code.
import torch
from starlette.responses import JSONResponse
from transformers import pipeline


class PythonPredictor:
    def __init__(self, config):
        device = 0 if torch.cuda.is_available() else -1
        print(f"using device: {'cuda' if device == 0 else 'cpu'}")

        self.analyzer = pipeline(task="sentiment-analysis", device=device)
        self.summarizer = pipeline(task="summarization", device=device)

    def predict(self, query_params, payload):
        model_name = query_params.get("model")

        if model_name == "sentiment":
            return self.analyzer(payload["text"])[0]
        elif model_name == "summarizer":
            return self.summarizer(payload["text"])[0]
        else:
            return JSONResponse({"error": f"unknown model: {model_name}"}, status_code=400)
