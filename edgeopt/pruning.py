"""Pruning by similar steps, as pure logic: an option that lost on one pair of steps is not tried again on
another pair that differs the same way.

Two steps are *similar* when one pass of one framework makes them and their settings (config and input)
differ in a few keys only: int8-dynamic-pc and int8-dynamic-pc-emb differ in `embeddings`, int8-fused-pc and
int8-fused-pc-emb too; the points of an option space differ in one option or several. When the candidate with
one value of those keys *lost* to its twin with the other value (see `lost_to`), a pending step that has the
losing value and whose own twin, with the winning value, has been measured, is pruned: that twin runs in its
place. A cheap-first search applies it; an exhaustive one runs everything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edgeopt.candidates import CandidateRecord, decision_ratio
from edgeopt.planner import Step

# Peak RSS of a fresh process varies by a few MB from run to run (allocator, page cache): a peak-RSS cut this
# much (a share of the baseline's peak) above another candidate's is not counted as a gain.
RSS_SPREAD = 0.02


def settings(step: Step) -> dict:
    """What tells similar steps apart: the pass's whole config (defaults filled in by the plan) and its input."""
    return {**step.config, "input": step.input}


def differing(a: Step, b: Step) -> frozenset[str]:
    """The settings two steps of one pass differ in (empty when they are not comparable or the same)."""
    if a.framework != b.framework or a.pass_name != b.pass_name or a.id == b.id:
        return frozenset()
    sa, sb = settings(a), settings(b)
    return frozenset(k for k in sa.keys() | sb.keys() if sa.get(k) != sb.get(k))


def lost_to(loser: CandidateRecord, winner: CandidateRecord) -> str | None:
    """Why `winner` beats `loser` on everything the gates and the frontier weigh, or None where it does not:
    faster beyond both 95% intervals (noise alone does not prune), at least as accurate, no larger on disk,
    and no heavier in peak memory beyond the run-to-run spread. Ratios to the baseline, on the target's figures
    where the build has them (as the gates read them)."""
    if loser.status != "ok" or winner.status != "ok":
        return None
    if _on_target(loser) != _on_target(winner):  # one judged on the board's figures, one on the host's: no verdict
        return None
    slow, fast = decision_ratio(loser, "speedup"), decision_ratio(winner, "speedup")
    if slow is None or fast is None:
        return None
    slow_high, fast_low = _interval(loser, slow)[1], _interval(winner, fast)[0]
    if not slow_high < fast_low:
        return None
    for key, tolerance in (("accuracy_retained", 0.0), ("size_cut", 0.0), ("peak_rss_cut", RSS_SPREAD)):
        mine, theirs = decision_ratio(loser, key), decision_ratio(winner, key)
        if mine is None or theirs is None:
            if mine is not theirs:  # one has the figure and the other not: not comparable
                return None
            continue
        if mine > theirs + tolerance:
            return None
    return (f"{loser.id} {slow:.2f}x (95% interval up to {slow_high:.2f}) against {winner.id} {fast:.2f}x (from "
            f"{fast_low:.2f}), no more accurate, no smaller, no lighter")


def _interval(record: CandidateRecord, speedup: float) -> tuple[float, float]:
    """The speedup's 95% interval as the gates read it; an estimate (the target's, no sampling spread) is a
    point."""
    ci = record.ratios.speedup_ci if record.ratios is not None else None
    return (speedup, speedup) if _on_target(record) or ci is None else ci


def _on_target(record: CandidateRecord) -> bool:
    return record.target_ratios is not None and record.target_ratios.speedup is not None


@dataclass(frozen=True)
class Evidence:
    loser: Step
    winner: Step
    keys: frozenset[str]
    why: str

    def option(self, step: Step) -> str:
        return ", ".join(f"{k}: {json.dumps(settings(step).get(k))}" for k in sorted(self.keys))


def evidence(steps: Iterable[Step], record: Callable[[str], CandidateRecord | None]) -> list[Evidence]:
    """Every measured pair of similar steps where one lost to the other."""
    measured = [(s, r) for s in steps if (r := record(s.id)) is not None and r.status == "ok"]
    found = []
    for loser, lost in measured:
        for winner, won in measured:
            keys = differing(loser, winner)
            if keys and (why := lost_to(lost, won)) is not None:
                found.append(Evidence(loser, winner, keys, why))
    return found


def pruned_by(step: Step, steps: Iterable[Step], found: list[Evidence],
              record: Callable[[str], CandidateRecord | None]) -> str | None:
    """Why `step` is not worth running, or None: it has an option that lost on a similar pair, and its own twin
    with the winning option was measured. A step other steps read by id runs in any case (they need its model)."""
    steps = list(steps)
    if step.role == "baseline" or any(s.input == step.id for s in steps):
        return None
    mine = settings(step)
    for seen in found:
        lost_values = {k: settings(seen.loser).get(k) for k in seen.keys}
        won_values = {k: settings(seen.winner).get(k) for k in seen.keys}
        if step.id == seen.loser.id or any(mine.get(k) != v for k, v in lost_values.items()):
            continue
        for twin in steps:
            twin_settings = settings(twin)
            if (differing(step, twin) == seen.keys and all(twin_settings.get(k) == v for k, v in won_values.items())
                    and (measured := record(twin.id)) is not None and measured.status == "ok"):
                return (f"pruned: {seen.option(seen.loser)} lost to {seen.option(seen.winner)} on a similar pair "
                        f"({seen.why}), and {twin.id}, which differs from this step the same way, was measured "
                        "(cheap-first)")
    return None
