"""A tiny random-weight GPT-2 under the hub id "gpt2", for examples/text-generator-stream.

Cortex's text-generator loads `GPT2Tokenizer.from_pretrained("gpt2")` and
`GPT2LMHeadModel.from_pretrained("gpt2")`; this writes both in the hub cache layout
(like tests/hf_offline_cache.py does for the pipeline defaults), so the example runs
unchanged with HF_HOME pointing here and HF_HUB_OFFLINE=1.
"""

import os
import tempfile

from hf_offline_cache import SENTENCES, snapshot_dir

GPT2_MODEL = ("gpt2", "main")


def write_gpt2_model(hf_home):
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(SENTENCES, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    with tempfile.TemporaryDirectory() as workdir:
        trainer.save_model(workdir)
        tokenizer = GPT2Tokenizer(
            vocab_file=os.path.join(workdir, "vocab.json"), merges_file=os.path.join(workdir, "merges.txt")
        )
    torch.manual_seed(0)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=1, n_head=2, bos_token_id=eos, eos_token_id=eos
    )
    target = snapshot_dir(hf_home, *GPT2_MODEL)
    GPT2LMHeadModel(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return hf_home


if __name__ == "__main__":  # python tests/hf_gpt2_cache.py HF_HOME  (for the example's README)
    import sys

    print(write_gpt2_model(sys.argv[1]))
