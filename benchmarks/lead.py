"""edgeopt's lead over a peer, read from the rounds both were timed in, with how sure it is.

The peers benchmarks pick edgeopt's fastest and the fastest peer by their median speedups; the ratio of those
two medians says nothing of its spread, and on a shared host identical files have timed 1.15x apart in one run.
Here each round gives one ratio (the peer's time over edgeopt's, taken minutes apart at most), and the verdict
on the issue's bar reads the median's 95% bootstrap interval, as edgeopt's own speedup gates do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edgeopt.measure.rounds import bootstrap_interval

BAR = 1.2  # the goal: edgeopt's best at least 1.2x faster than the best peer


def lead(edgeopt_ms: Sequence[float], peer_ms: Sequence[float], bar: float = BAR) -> dict:
    """Per round, the peer's latency over edgeopt's (>1: edgeopt faster); their median, its 95% interval, and
    whether the bar is surely met, surely missed, or within what the rounds cannot tell."""
    ratios = np.asarray(peer_ms, dtype=np.float64) / np.asarray(edgeopt_ms, dtype=np.float64)
    interval = bootstrap_interval(list(ratios))
    if interval is None:
        verdict = "cannot tell"
    elif interval[0] >= bar:
        verdict = "met"
    elif interval[1] < bar:
        verdict = "not met"
    else:
        verdict = "cannot tell"
    return {"median": round(float(np.median(ratios)), 3),
            "interval_95": [round(v, 3) for v in interval] if interval else None,
            "rounds": len(ratios), "bar": bar, "verdict": verdict}


def head_to_head(results: dict, eligible: Callable[[dict], bool], speedup: Callable[[dict], float],
                 rounds_of: Callable[[str], Sequence[float]]) -> dict:
    """edgeopt's fastest variant against the fastest peer, each among the `eligible` ones (the accuracy floor),
    ranked by `speedup`; `lead` then reads the pair from the rounds they were timed in (`rounds_of`: ms per round).
    `results` maps a variant's name to its figures, whose "origin" is "peer" or "edgeopt"."""
    best: dict = {}
    for origin in ("peer", "edgeopt"):
        pool = {name: figures for name, figures in results.items() if figures["origin"] == origin and eligible(figures)}
        if pool:
            name = max(pool, key=lambda n: speedup(pool[n]))
            best[origin] = {"name": name, "speedup": speedup(pool[name])}
    if len(best) == 2:
        best["edgeopt_over_peer"] = round(best["edgeopt"]["speedup"] / best["peer"]["speedup"], 3)
        best["lead"] = lead(rounds_of(best["edgeopt"]["name"]), rounds_of(best["peer"]["name"]))
    return best
