"""Tiny random Marian translation models (opus-mt-*) and their tokenizers, made offline.

Cortex's model-caching translator loads each model with MarianMTModel.from_pretrained(folder)
and its tokenizer with MarianTokenizer.from_pretrained("Helsinki-NLP/opus-mt-<pair>") from the
hub: the tokenizer goes into a fabricated Hugging Face cache (hf_offline_cache.py's layout), the
model into a folder for S3.
"""

import json
import os
import tempfile

from hf_offline_cache import SENTENCES, snapshot_dir


def write_marian(hf_home, model_dir, pair):
    """Write opus-mt-<pair>: its tokenizer under hf_home, its model in model_dir."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    source, target = pair.split("-")
    with tempfile.TemporaryDirectory() as work:
        text = os.path.join(work, "text.txt")
        with open(text, "w") as f:
            f.write("\n".join(SENTENCES * 3))
        prefix = os.path.join(work, "sp")
        spm.SentencePieceTrainer.train(
            input=text,
            model_prefix=prefix,
            vocab_size=120,
            hard_vocab_limit=False,
            character_coverage=1.0,
            bos_id=-1,
            eos_id=-1,
            unk_id=0,
            minloglevel=2,
        )
        processor = spm.SentencePieceProcessor(model_file=prefix + ".model")
        vocab = {"</s>": 0, "<unk>": 1}  # Marian's order: eos, unk, the pieces, pad last
        for i in range(processor.get_piece_size()):
            vocab.setdefault(processor.id_to_piece(i), len(vocab))
        vocab["<pad>"] = len(vocab)
        with open(os.path.join(work, "vocab.json"), "w") as f:
            json.dump(vocab, f)
        tokenizer = MarianTokenizer(
            source_spm=prefix + ".model",
            target_spm=prefix + ".model",
            vocab=os.path.join(work, "vocab.json"),
            source_lang=source,
            target_lang=target,
            model_max_length=64,
        )
        tokenizer.save_pretrained(snapshot_dir(hf_home, f"Helsinki-NLP/opus-mt-{pair}", "main"))
    torch.manual_seed(0)
    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab),
        decoder_vocab_size=len(vocab),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=pad,
        eos_token_id=0,
        decoder_start_token_id=pad,
        forced_eos_token_id=0,
    )
    model = MarianMTModel(config)
    model.generation_config.max_length = 12  # a random model may never stop by itself
    model.save_pretrained(model_dir)
    return model_dir
