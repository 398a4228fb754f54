"""Timing in rounds, as statistics: which windows to trust, latency over the kept windows, the speedup
as the median of in-round ratios to the baseline, and a bootstrap interval saying how sure it is.

Pure functions over window results, so the verdict logic is tested with injected noise and no process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeopt.measurements import Latency
from edgeopt.protocol import WindowRequest, WindowResult

# A window is suspect when, while it ran, other processes kept this much CPU busy (in cores, on average),
# or a hypervisor stole this share of the machine: the candidate did not have the CPU it would have alone.
OTHER_BUSY_CORES = 0.5
STEAL_SHARE = 0.10
BOOTSTRAP_SAMPLES = 2000


def interference(window: WindowResult) -> str | None:
    """Why a window cannot be trusted as a quiet-machine figure, or None."""
    if window.steal_share is not None and window.steal_share > STEAL_SHARE:
        return f"the hypervisor took {window.steal_share:.0%} of the CPU time"
    if window.other_busy_cores is not None and window.other_busy_cores > OTHER_BUSY_CORES:
        return f"other processes kept {window.other_busy_cores:.2f} cores busy"
    return None


@dataclass(frozen=True)
class WindowPlan:
    """How each model is timed in each round: the manifest's totals spread over the rounds."""

    first: WindowRequest
    later: WindowRequest

    @classmethod
    def from_measure(cls, spec, rounds: int) -> WindowPlan:
        min_runs = max(3, math.ceil(spec.min_runs / rounds))
        max_runs = max(min_runs, math.ceil(spec.max_runs / rounds))
        budget = spec.time_budget_s / rounds
        first = WindowRequest(warmup_runs=spec.warmup_runs, min_runs=min_runs, max_runs=max_runs, time_budget_s=budget)
        # later windows warm the caches again (another model ran in between) with a few runs
        later = first.model_copy(update={"warmup_runs": max(1, spec.warmup_runs // 3) if spec.warmup_runs else 0})
        return cls(first, later)

    def window(self, index: int) -> WindowRequest:
        return self.first if index == 0 else self.later


def window_median(window: WindowResult) -> float:
    return float(np.median(window.samples_ms))


def latency(windows: Sequence[WindowResult]) -> Latency | None:
    samples = np.asarray([s for w in windows for s in w.samples_ms], dtype=np.float64)
    if samples.size == 0:
        return None
    p50, p90, p95, p99 = (float(np.percentile(samples, q)) for q in (50, 90, 95, 99))
    return Latency(p50=p50, p90=p90, p95=p95, p99=p99, mean=float(samples.mean()), min=float(samples.min()),
                   max=float(samples.max()), runs=int(samples.size))


def paired_ratios(baseline: dict[str, WindowResult], candidate: dict[str, WindowResult]) -> list[float]:
    """The baseline's window median over the candidate's, for every round both were timed in."""
    rounds = [r for r in candidate if r in baseline]
    return [window_median(baseline[r]) / window_median(candidate[r]) for r in rounds]


def bootstrap_interval(values: Sequence[float], level: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the median. Seeded: the same rounds always give the same interval
    (a rebuild from the cache reports what the build it reuses reported)."""
    if len(values) < 2:
        return None
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    medians = np.median(data[rng.integers(0, len(data), size=(BOOTSTRAP_SAMPLES, len(data)))], axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(medians, tail)), float(np.percentile(medians, 100 - tail))


def speedup(ratios: Sequence[float], margin: float = 0.0) -> tuple[float | None, tuple[float, float] | None]:
    """Median of the in-round ratios, and its bootstrap interval widened by `margin` on each side: rounds
    taken one after another share the machine's state of that minute, so they say little about how much
    the same ratio moves between builds (measured: a few percent between two quiet builds here)."""
    if not ratios:
        return None, None
    interval = bootstrap_interval(ratios)
    if interval is not None:
        interval = (interval[0] * (1 - margin), interval[1] * (1 + margin))
    return float(np.median(ratios)), interval


def interfered_rounds(baseline: dict[str, WindowResult], candidate: dict[str, WindowResult]) -> int:
    """Rounds in which the candidate's window or the baseline's beside it ran while the CPU was taken."""
    return sum(1 for r, window in candidate.items()
               if interference(window) or (r in baseline and interference(baseline[r])))
