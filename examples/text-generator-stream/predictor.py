# Cortex's text generator (test/apis/pytorch/text-generator), made to stream its tokens:
# `generate` runs in a thread and writes into a TextIteratorStreamer; predict() yields the text as
# it comes. The only changes from Cortex's predictor are in predict().
import threading

import torch
from transformers import GPT2LMHeadModel, GPT2Tokenizer, StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer


class _StopWhen(StoppingCriteria):
    """Ends generate() early once the client has gone (the stream closed the generator)."""

    def __init__(self, event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class PythonPredictor:
    def __init__(self, config):
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        print(f"using device: {self.device}")
        self.tokenizer = GPT2Tokenizer.from_pretrained("gpt2")
        self.model = GPT2LMHeadModel.from_pretrained("gpt2").to(self.device)

    def predict(self, payload):
        input_length = len(payload["text"].split())
        tokens = self.tokenizer.encode(payload["text"], return_tensors="pt").to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, timeout=60)
        stop = threading.Event()
        generation = threading.Thread(
            target=self.model.generate,
            kwargs=dict(
                input_ids=tokens,
                attention_mask=torch.ones_like(tokens),
                max_length=input_length + 20,
                do_sample=True,
                pad_token_id=self.tokenizer.eos_token_id,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_StopWhen(stop)]),
            ),
        )
        generation.start()
        try:
            for text in streamer:
                if text:
                    yield text
        finally:  # also when the client went away: stop generating, free the thread
            stop.set()
            generation.join()
