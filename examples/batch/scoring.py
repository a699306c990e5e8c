"""A tiny lexicon sentiment model, shared by the realtime and the batch predictor."""

import re

DEFAULT_LEXICON = {
    "positive": ["good", "great", "love", "excellent", "wonderful"],
    "negative": ["bad", "awful", "hate", "terrible", "boring"],
}


def score(text, lexicon=None):
    """'I love it' -> {"label": "positive", "score": 1}."""
    lexicon = lexicon or DEFAULT_LEXICON
    words = re.findall(r"[a-z']+", text.lower())
    value = sum(w in lexicon["positive"] for w in words) - sum(w in lexicon["negative"] for w in words)
    label = "positive" if value > 0 else "negative" if value < 0 else "neutral"
    return {"label": label, "score": value}
