"""Latency statistics from repeated timed runs."""

from __future__ import annotations

import numpy as np


def latency_summary(samples_s: list[float], batch_size: int) -> dict:
    if not samples_s:
        raise ValueError("no timed runs")
    ms = np.asarray(samples_s) * 1000.0
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    return {
        "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "mean": float(ms.mean()), "min": float(ms.min()),
                       "max": float(ms.max()), "runs": len(ms)},
        "throughput_per_s": batch_size * 1000.0 / p50,
    }
