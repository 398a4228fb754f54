"""The candidate search: the order steps run in, when it stops, and the Pareto frontier of the results."""

from __future__ import annotations

from edgeopt.candidates import CandidateRecord
from edgeopt.planner import Plan, Step

STAGES = ("convert", "quantize", "accelerate")


def ordered_steps(plan: Plan) -> list[Step]:
    """Exhaustive search keeps the recipe order; cheap-first runs the cheapest passes of each stage first,
    so that a candidate passing every gate is found before the costly calibrated ones are tried."""
    steps = list(plan.steps)
    if plan.search.strategy == "exhaustive":
        return steps
    position = {s.id: i for i, s in enumerate(steps)}
    return sorted(steps, key=lambda s: (s.role != "baseline", STAGES.index(s.stage), s.cost, position[s.id]))


def objectives(record: CandidateRecord, higher_is_better: bool) -> tuple[float, ...] | None:
    """What the frontier trades off, each to be minimised: latency, peak RSS, size, accuracy loss."""
    m = record.metrics
    try:
        score = m["accuracy"]["score"]
        values = (m["latency_ms"]["p50"], m["peak_rss_mb"], m["size_mb"], -score if higher_is_better else score)
    except (KeyError, TypeError):
        return None
    return None if any(v is None for v in values) else values


def pareto_frontier(records: list[CandidateRecord], higher_is_better: bool) -> list[str]:
    """Ids of the measured records that no other record beats on every objective at once."""
    points = {r.id: objectives(r, higher_is_better) for r in records if r.status == "ok"}
    points = {k: v for k, v in points.items() if v is not None}

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return [k for k, v in points.items() if not any(dominates(o, v) for j, o in points.items() if j != k)]
