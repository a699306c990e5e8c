"""A fabricated Hugging Face cache: tiny random-weight models under the ids pipelines default to.

There is no model hub here or in CI. Cortex-era predictors call `pipeline("summarization")`
and `pipeline("sentiment-analysis")` with no model id, so transformers asks the hub for its
default model at a pinned revision. This writes those models in the hub cache layout
(`hub/models--org--name/refs/<revision>` -> `snapshots/<commit>/`), with the real
architectures, tokenizers trained on a few sentences and random weights, so the examples'
code runs unchanged with HF_HOME pointing here and HF_HUB_OFFLINE=1. Building it takes seconds.
"""

import hashlib
import os
import tempfile

# transformers 4.57's defaults (transformers/pipelines/__init__.py, SUPPORTED_TASKS).
SENTIMENT_MODEL = ("distilbert/distilbert-base-uncased-finetuned-sst-2-english", "714eb0f")
SUMMARIZATION_MODEL = ("sshleifer/distilbart-cnn-12-6", "a4f8f3e")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Triton serves models over HTTP and gRPC with dynamic batching.",
    "Cortex predictors load a model once and answer one request at a time.",
    "I love this movie, it was wonderful and moving.",
    "This was a terrible, boring film and I hated it.",
    "The summary of a long article should be short and keep the main points.",
    "Scientists discovered a new species of frog in the rain forest last year.",
    "The city council approved the budget for new parks and libraries.",
]


def offline_env(hf_home):
    """Environment for a process that must load these models and never reach a hub."""
    return {
        "HF_HOME": hf_home,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def snapshot_dir(hf_home, model_id, revision):
    """Create refs/<revision> pointing at a fake commit; return that commit's snapshot folder."""
    repo = os.path.join(hf_home, "hub", "models--" + model_id.replace("/", "--"))
    commit = hashlib.sha1(f"{model_id}@{revision}".encode()).hexdigest()
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    with open(os.path.join(repo, "refs", revision), "w") as f:
        f.write(commit)
    snapshot = os.path.join(repo, "snapshots", commit)
    os.makedirs(snapshot, exist_ok=True)
    return snapshot


def _wordpiece_tokenizer():
    from tokenizers import BertWordPieceTokenizer
    from transformers import DistilBertTokenizerFast

    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(SENTENCES, vocab_size=400, min_frequency=1)
    with tempfile.TemporaryDirectory() as workdir:
        trainer.save_model(workdir)
        return DistilBertTokenizerFast(
            vocab_file=os.path.join(workdir, "vocab.txt"), do_lower_case=True, model_max_length=512
        )


def _bpe_tokenizer():
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartTokenizerFast

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        SENTENCES, vocab_size=600, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    with tempfile.TemporaryDirectory() as workdir:
        trainer.save_model(workdir)
        return BartTokenizerFast(
            vocab_file=os.path.join(workdir, "vocab.json"),
            merges_file=os.path.join(workdir, "merges.txt"),
            model_max_length=1024,
        )


def _save(hf_home, model_ref, model, tokenizer):
    target = snapshot_dir(hf_home, *model_ref)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def write_sentiment_model(hf_home):
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    tokenizer = _wordpiece_tokenizer()
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=32,
        n_layers=1,
        n_heads=2,
        hidden_dim=64,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
        pad_token_id=tokenizer.pad_token_id,
    )
    return _save(hf_home, SENTIMENT_MODEL, DistilBertForSequenceClassification(config), tokenizer)


def write_summarization_model(hf_home):
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = _bpe_tokenizer()
    torch.manual_seed(0)
    bos, pad, eos = tokenizer.convert_tokens_to_ids(["<s>", "<pad>", "</s>"])
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=1024,
        bos_token_id=bos,
        pad_token_id=pad,
        eos_token_id=eos,
        decoder_start_token_id=eos,
        # Like distilbart-cnn's, so a random model still writes a few tokens before it may stop.
        task_specific_params={
            "summarization": {
                "min_length": 8,
                "max_length": 40,
                "num_beams": 2,
                "no_repeat_ngram_size": 3,
                "length_penalty": 2.0,
            }
        },
    )
    model = BartForConditionalGeneration(config)
    model.generation_config.forced_bos_token_id = bos  # as distilbart-cnn's
    model.generation_config.forced_eos_token_id = eos
    return _save(hf_home, SUMMARIZATION_MODEL, model, tokenizer)


def build(hf_home):
    """Write both default models under `hf_home`; return it."""
    write_sentiment_model(hf_home)
    write_summarization_model(hf_home)
    return hf_home
