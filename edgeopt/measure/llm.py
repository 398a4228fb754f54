"""Figures for language models, the same for every runtime: perplexity from logits, and
time to first token / prompt and generation tokens per second from token timestamps."""

from __future__ import annotations

import statistics

import numpy as np

from edgeopt.measure.stats import latency_summary


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


def speed_summary(runs: list[tuple[int, float, list[float]]]) -> dict:
    """runs: (prompt tokens, start time, the time each generated token arrived). Latency is the
    interval between generated tokens, so a gate's speedup is the generation speedup."""
    intervals, ttft, prompt_rate, generation_rate, generated = [], [], [], [], 0
    for prompt_tokens, started, stamps in runs:
        if not stamps:
            continue
        first = stamps[0] - started
        ttft.append(first * 1000)
        prompt_rate.append(prompt_tokens / first)  # includes decoding the first token: a slight underestimate
        gaps = np.diff(stamps)
        intervals.extend(gaps.tolist())
        if len(stamps) > 1:
            generation_rate.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
        generated += len(stamps)
    if not intervals:
        raise ValueError("no tokens were generated")
    return {
        **latency_summary(intervals, 1),
        "llm": {"ttft_ms": statistics.median(ttft), "prompt_tokens_per_s": statistics.median(prompt_rate),
                "generation_tokens_per_s": statistics.median(generation_rate) if generation_rate else None,
                "generated_tokens": generated, "runs": len(runs)},
    }
