"""edgeopt's lead over a peer, read from the rounds both were timed in, with how sure it is.

The peers benchmarks pick edgeopt's fastest and the fastest peer by their median speedups; the ratio of those
two medians says nothing of its spread, and on a shared host identical files have timed 1.15x apart in one run.
Here each round gives one ratio (the peer's time over edgeopt's, taken minutes apart at most), and the verdict
on the issue's bar reads the median's 95% bootstrap interval, as edgeopt's own speedup gates do.
"""

from __future__ import annotations

from collections.abc import Sequence

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
