"""From what the workers returned to a candidate's typed Measurements and its speedup over the baseline."""

from __future__ import annotations

import statistics

from edgeopt.builder.measurer import Timed
from edgeopt.measure import rounds
from edgeopt.measurements import Measurements, Ratios, TargetFigures, TimingStats
from edgeopt.protocol import AccuracyResult


class TimingRefused(ValueError):
    """The windows timed cannot support a speed figure (too few generated-token intervals)."""


def measurements(accuracy: AccuracyResult, timed: Timed, batch_size: int, min_intervals: int | None) -> Measurements:
    windows = list(timed.windows.values())
    latency = rounds.latency(windows)
    llm = _llm_figures(windows, min_intervals) if any(w.llm for w in windows) else None
    info = timed.info
    stats = TimingStats(
        rounds=len(windows), windows=len(windows), p50_per_round_ms=[rounds.window_median(w) for w in windows],
        speedup_per_round=rounds.paired_ratios(timed.baseline_windows, timed.windows), discarded=timed.discarded,
        interference_kept=timed.interference_kept,
        interfered_rounds=rounds.interfered_rounds(timed.baseline_windows, timed.windows))
    peaks = [w.peak_rss_mb for w in windows if w.peak_rss_mb is not None]
    accuracy_figures = dict(accuracy.accuracy)
    if accuracy_figures.get("reference"):
        accuracy_figures["provenance"] = "reference"
    return Measurements(
        latency_ms=latency, throughput_per_s=batch_size * 1000.0 / latency.p50 if latency and latency.p50 else None,
        peak_rss_mb=max(peaks) if peaks else None, runtime_import_rss_mb=info.runtime_import_rss_mb if info else None,
        edgeopt_rss_mb=info.edgeopt_rss_mb if info else None,
        size_mb=info.size_mb if info and info.size_mb is not None else accuracy.size_mb,
        load_s=info.load_s if info else None, threads=_threads(info, llm, accuracy),
        execution_precision=info.execution_precision if info else None, timed_on=info.machine if info else None,
        accuracy=accuracy_figures,
        peak_rss_with_eval_mb=accuracy.peak_rss_with_eval_mb, llm=llm,
        versions={**accuracy.versions, **(info.versions if info else {})}, timing=stats)


def with_all_windows(figures: Measurements, timed: Timed, batch_size: int) -> Measurements:
    """The baseline's figures over every window it was timed in: alone, then beside each batch."""
    windows = list(timed.windows.values())
    latency = rounds.latency(windows)
    if latency is None:
        return figures
    peaks = [w.peak_rss_mb for w in windows if w.peak_rss_mb is not None]
    stats = figures.timing.model_copy(update={
        "rounds": len(windows), "windows": len(windows),
        "p50_per_round_ms": [rounds.window_median(w) for w in sorted(windows, key=lambda w: w.started)]})
    return figures.model_copy(update={"latency_ms": latency, "throughput_per_s": batch_size * 1000.0 / latency.p50,
                                      "peak_rss_mb": max(peaks) if peaks else figures.peak_rss_mb, "timing": stats})


def _threads(info, llm, accuracy) -> int | None:
    if info is not None and info.threads is not None:
        return info.threads
    return (llm or {}).get("threads") or accuracy.threads


def _llm_figures(windows, min_intervals: int | None) -> dict:
    parts = [w.llm for w in windows if w.llm]
    intervals = sum(p["intervals"] for p in parts)
    if min_intervals is not None and intervals < min_intervals:
        raise TimingRefused(f"only {intervals} intervals between generated tokens were timed; a speed figure needs "
                            f"at least {min_intervals} (raise llm.max_new_tokens or measure.rounds)")
    return {"ttft_ms": statistics.median(x for p in parts for x in p["ttft_ms"]),
            "prompt_tokens_per_s": statistics.median(x for p in parts for x in p["prompt_tokens_per_s"]),
            "generation_tokens_per_s": statistics.median(x for p in parts for x in p["generation_tokens_per_s"]),
            "generated_tokens": sum(p["generated_tokens"] for p in parts), "intervals": intervals,
            "threads": parts[0].get("threads"), "runs": sum(len(p["ttft_ms"]) for p in parts)}


def speedup(timed: Timed, margin: float = 0.0) -> tuple[float | None, tuple[float, float] | None]:
    return rounds.speedup(rounds.paired_ratios(timed.baseline_windows, timed.windows), margin)


def with_speedup(ratios: Ratios, timed: Timed, margin: float) -> Ratios:
    """The speedup with its interval; when most of its rounds ran beside other work, it cannot decide a
    gate: a busy machine favours the candidates that need fewer cores, which says nothing about a quiet
    one (measured: under a one-core hog, 1-thread candidates looked 2-3x better than on a quiet run)."""
    value, interval = speedup(timed, margin)
    busy = rounds.interfered_rounds(timed.baseline_windows, timed.windows)
    total = len(timed.windows)
    unreliable = None
    if total and busy * 2 > total:
        unreliable = (f"timed while other processes kept the CPU busy in {busy} of {total} rounds: rerun on a quiet "
                      "machine")
    return ratios.model_copy(update={"speedup": value, "speedup_ci": interval, "speedup_unreliable": unreliable})


# -- the target's figures ----------------------------------------------------------------------------------
FP32_ROUNDING = 1e-4  # relative RMS difference below which two runtimes' fp32 outputs count as the same


def target_figures(device: str, emulated, estimate, host: Measurements) -> TargetFigures:
    """A candidate's figures for the target: latency estimated from its counted instructions, accuracy
    simulated by its emulated outputs against the host's on the same samples."""
    from edgeopt.measurements import Figure

    result, scored, counts = emulated.result, emulated.score, emulated.counts
    accuracy = None
    differs = None
    if scored is not None and host.score is not None:
        agreement = scored.agreement
        differs = (agreement["relative_rms"] > FP32_ROUNDING
                   or agreement.get("argmax_agreement", 1.0) < 1.0)
        samples = agreement["samples"]
        if not differs:
            value = host.score
            source = (f"the target's runtime build under emulation gave the host's outputs on {samples} samples "
                      f"(relative RMS difference {agreement['relative_rms']:.1e}): the host's score holds")
        else:
            shift = scored.accuracy["score"] - scored.host_accuracy["score"]
            value = host.score + shift
            source = (f"the target's kernels move the outputs (relative RMS {agreement['relative_rms']:.1e}, max |Δ| "
                      f"{agreement['max_abs_diff']:.3g}, argmax agreement {agreement.get('argmax_agreement', 1.0):.0%} on "
                      f"{samples} emulated samples): the host's score shifted by the emulated samples' difference "
                      f"({shift:+.4f})")
        accuracy = Figure(value=value, unit="score", provenance="simulated", source=source)
    latency = None
    if estimate is not None:
        latency = Figure(value=estimate.latency_ms, unit="ms", provenance="estimated", source=estimate.method,
                         interval=estimate.interval)
    return TargetFigures(
        device=device, latency_ms=latency, accuracy=accuracy,
        emulated=({"score": scored.accuracy.get("score"), "host_score": scored.host_accuracy.get("score"),
                   "agreement": scored.agreement, "runtime": result.versions} if result and scored else None),
        outputs_differ=differs, instructions=counts.instructions if counts else None,
        instruction_classes=counts.classes if counts else None,
        estimator=estimate.as_dict() if estimate is not None else None,
        execution_precision=result.execution_precision if result else None)


def target_ratios(candidate: TargetFigures | None, baseline: TargetFigures | None, metric) -> Ratios | None:
    """The candidate against the baseline, both on the target: the decisions' ratios."""
    if candidate is None or baseline is None:
        return None
    speedup = None
    if candidate.latency_ms is not None and baseline.latency_ms is not None and candidate.latency_ms.value > 0:
        speedup = baseline.latency_ms.value / candidate.latency_ms.value
    retained = None
    if candidate.accuracy is not None and baseline.accuracy is not None:
        retained = metric.retained(candidate.accuracy.value, baseline.accuracy.value)
    return Ratios(accuracy_retained=retained, speedup=speedup)
