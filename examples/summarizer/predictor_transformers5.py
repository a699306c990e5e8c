# The summarizer for transformers 5, which removed the "summarization" pipeline: the same model,
# loaded with AutoModelForSeq2SeqLM and driven with generate(). It also runs on transformers 4.
# Pin the model and revision (the pipeline used to pick them): these are its old defaults.
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

MODEL, REVISION = "sshleifer/distilbart-cnn-12-6", "a4f8f3e"


class PythonPredictor:
    def __init__(self, config):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        print(f"using device: {self.device}")
        self.tokenizer = AutoTokenizer.from_pretrained(MODEL, revision=REVISION)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(MODEL, revision=REVISION).to(self.device).eval()

    def predict(self, payload):
        inputs = self.tokenizer(payload["text"], truncation=True, max_length=1024, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, num_beams=4, length_penalty=2.0, max_length=142, no_repeat_ngram_size=3)
        return self.tokenizer.decode(ids[0], skip_special_tokens=True)
