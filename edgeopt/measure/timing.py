"""The worker side of timing: a model loaded once, then timed window by window on request, each window
bracketed by readings of what else the machine was doing."""

from __future__ import annotations

import time

from edgeopt.datafiles import load_samples
from edgeopt.frameworks.base import Generator, GraphSession
from edgeopt.measure.system import between, peak_rss_mb, snapshot
from edgeopt.protocol import LlmJob, WindowRequest, WindowResult


def time_graph_window(session: GraphSession, feeds: dict, window: WindowRequest) -> WindowResult:
    for _ in range(window.warmup_runs):
        session.run(feeds)
    samples: list[float] = []
    before = snapshot()
    budget_end = before.wall + window.time_budget_s
    while len(samples) < window.max_runs and (len(samples) < window.min_runs or time.perf_counter() < budget_end):
        t0 = time.perf_counter()
        session.run(feeds)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return _window(samples, before, None)


def timing_feeds(session: GraphSession, timing_data: str, batch_size: int) -> dict:
    return session.feeds(load_samples(timing_data), 0, batch_size)


def time_generation_window(generator: Generator, job: LlmJob, warmup: bool) -> WindowResult:
    """One pass over the prompts. Latency samples are the intervals between generated tokens, so a
    gate's speedup is the generation speedup; every prompt must give the tokens asked for."""
    if warmup:
        for prompt in job.prompts:
            generator.generate(prompt, job.max_new_tokens)
    intervals, ttft, prompt_rates, generation_rates, generated = [], [], [], [], 0
    before = snapshot()
    for prompt in job.prompts:
        prompt_tokens = generator.prompt_tokens(prompt)
        started = time.perf_counter()
        stamps = generator.generate(prompt, job.max_new_tokens)
        if len(stamps) < job.max_new_tokens:
            raise RuntimeError(f"generation stopped after {len(stamps)} of {job.max_new_tokens} tokens "
                               "(end-of-sequence is suppressed while timing; the context may be too short)")
        ttft.append((stamps[0] - started) * 1000.0)
        prompt_rates.append(prompt_tokens / (stamps[0] - started))  # includes the first token's decode
        intervals += [(b - a) * 1000.0 for a, b in zip(stamps, stamps[1:])]
        generation_rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
        generated += len(stamps)
    llm = {"ttft_ms": ttft, "prompt_tokens_per_s": prompt_rates, "generation_tokens_per_s": generation_rates,
           "generated_tokens": generated, "intervals": len(intervals), "threads": generator.threads}
    return _window(intervals, before, llm)


def _window(samples_ms: list[float], before, llm: dict | None) -> WindowResult:
    seen = between(before, snapshot())
    return WindowResult(samples_ms=tuple(samples_ms), started=time.time() - seen.wall_s, wall_s=seen.wall_s, cpu_s=seen.cpu_s,
                        involuntary_switches=seen.involuntary_switches, other_busy_cores=seen.other_busy_cores,
                        steal_share=seen.steal_share, load_average=seen.load_average, peak_rss_mb=peak_rss_mb(),
                        llm=llm)
