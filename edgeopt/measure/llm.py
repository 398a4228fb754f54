"""Perplexity for language models from a runtime's own logits, the same for every runtime (generation
speed is timed in windows: edgeopt/measure/timing.py)."""

from __future__ import annotations

import numpy as np


def perplexity_from_logits(chunks: list[tuple[np.ndarray, np.ndarray]], context_length: int) -> dict:
    """chunks: (logits [n, vocab], tokens [n]) per evaluated window; each token after the first is
    scored by the logits of the position before it."""
    total, count = 0.0, 0
    for logits, tokens in chunks:
        logits = logits.astype(np.float64)
        shifted = logits[:-1] - logits[:-1].max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        total -= float(log_probs[np.arange(len(tokens) - 1), tokens[1:]].sum())
        count += len(tokens) - 1
    if count == 0:
        raise ValueError("the evaluation text gave no tokens to score")
    ppl = float(np.exp(total / count))
    return {"score": ppl, "perplexity": ppl, "tokens_scored": count, "chunks": len(chunks),
            "context_length": context_length}
