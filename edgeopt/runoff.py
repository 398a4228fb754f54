"""The run-off: the last word on which candidate is the fastest, when the build's figures cannot say.

Candidates timed in different batches are compared through their ratios to the baseline, each taken in
its own rounds; on a shared machine those intervals are wide (MiniLM: 2.08-3.42x for one candidate) and
the best point speedup is partly luck (two builds of the same code selected different candidates). Two
choices read it: the selected candidate (among those passing every gate) and each framework's leader,
the candidate later stages build on (among those keeping accuracy). When other candidates' speedup
intervals overlap the best one's, the best and up to two more of them are timed again side by side, in
the same rounds as the baseline and each other, and the choice follows those rounds: the fastest there
wins; where the in-round ratio between it and another contender does not clear 1 with its 95% interval
(widened by measure.speedup_margin, as every speedup interval is: a 1% edge measured with confidence in
one build's rounds is within what moves between builds), the two cannot be told apart on this machine,
and the one of least peak memory among them is chosen (then the smaller file) if it is lighter than the
fastest by more than MEMORY_MARGIN, else the fastest. Once measure.rounds rounds name a winner every other
contender surely trails, or the others it cannot surely beat are so close that no number of rounds could
(within the margin even at the top of their interval), the run-off stops there. Each comparison and how sure
it is goes into the report. Pure functions over window results; the builder does the timing.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.candidates import CandidateRecord, Preference
from edgeopt.measure import rounds
from edgeopt.protocol import WindowResult

MAX_CONTENDERS = 3
# a tie goes to a lighter contender only when it is lighter by more than this share of the fastest's peak RSS
# (measured: Fashion-MNIST's int8-dynamic peaked 1% below int8-static, 58.6 MB against 59.2, and a tie then
# chose it at 1.17x int8-static's latency on the run-off's median)
MEMORY_MARGIN = 0.05


class Contender(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    build_speedup: float = Field(description="the speedup the gates read, from the candidate's own batch")
    build_interval: tuple[float, float] | None = None
    speedup: float | None = Field(default=None, description="median in-round ratio to the baseline in the run-off")
    interval: tuple[float, float] | None = None
    rounds: int = 0


class Comparison(BaseModel):
    """The fastest contender against one other, in the rounds both were timed in."""

    model_config = ConfigDict(frozen=True)

    other: str
    ratio: float = Field(description="the other's latency over the fastest's, median over rounds (>1: slower)")
    interval: tuple[float, float] | None = Field(default=None, description="95%, widened by the between-builds margin")
    sure: bool = Field(description="the whole interval is above 1")
    resolvable: bool = Field(default=True, description="not sure yet, but more rounds could make it sure: the top "
                             "of its interval before widening still clears the between-builds margin")


class Runoff(BaseModel):
    model_config = ConfigDict(frozen=True)

    decides: str = Field(description="the choice it made: the selected candidate, or a framework's leader")
    contenders: list[Contender]
    fastest: str | None = Field(default=None, description="the best median speedup in the run-off's rounds")
    comparisons: list[Comparison] = Field(default_factory=list)
    chosen: str | None = None
    reason: str = ""


def contenders(pool: list[CandidateRecord], best: CandidateRecord | None, prefer: Preference,
               ) -> list[CandidateRecord]:
    """The best of `pool` and up to two others of it whose speedup interval reaches into the best's, when the
    choice is by speed and the gates read a speedup timed in rounds (an estimate for a target has no
    sampling spread, and timing again here would not tell the target's speeds apart)."""
    if best is None or prefer != "latency" or _timed_speedup(best) is None:
        return []
    low = _timed_speedup(best)[1][0]
    close = [r for r in pool if r.id != best.id and _timed_speedup(r) is not None and _timed_speedup(r)[1][1] >= low]
    close.sort(key=lambda r: -_timed_speedup(r)[0])
    return [best, *close[:MAX_CONTENDERS - 1]] if close else []


def _timed_speedup(record: CandidateRecord) -> tuple[float, tuple[float, float]] | None:
    gate = record.gates.get("speedup")
    if gate is None or gate.value is None or gate.interval is None:
        return None
    return gate.value, gate.interval


def decide(decides: str, entrants: list[CandidateRecord], windows: Mapping[str, Mapping[str, WindowResult]],
           baseline: Mapping[str, WindowResult], margin: float = 0.0) -> Runoff:
    """`windows`: each contender's run-off windows by round; `baseline`: the baseline's windows of the same
    rounds; `margin`: the between-builds margin every interval is widened by."""
    table = []
    for record in entrants:
        value, interval = rounds.speedup(rounds.paired_ratios(baseline, windows.get(record.id, {})), margin)
        build_value, build_interval = _timed_speedup(record)
        table.append(Contender(id=record.id, build_speedup=build_value, build_interval=build_interval,
                               speedup=value, interval=interval, rounds=len(windows.get(record.id, {}))))
    timed = [c for c in table if c.speedup is not None]
    if len(timed) < 2:
        return Runoff(decides=decides, contenders=table,
                      reason="fewer than two contenders could be timed again: the build's figures decide")
    fastest = max(timed, key=lambda c: c.speedup)
    comparisons = []
    for other in timed:
        if other.id == fastest.id:
            continue
        ratio, interval = rounds.speedup(rounds.paired_ratios(windows[other.id], windows[fastest.id]), margin)
        if ratio is not None:
            sure = interval is not None and interval[0] > 1.0
            comparisons.append(Comparison(other=other.id, ratio=ratio, interval=interval, sure=sure,
                                          resolvable=not sure and _resolvable(interval, margin)))
    tied = [fastest.id, *(c.other for c in comparisons if not c.sure)]
    by_id = {r.id: r for r in entrants}
    lightest = min(tied, key=lambda i: _lightness(by_id[i]))
    clearly = _clearly_lighter(by_id[lightest], by_id[fastest.id])
    chosen = lightest if clearly else fastest.id
    return Runoff(decides=decides, contenders=table, fastest=fastest.id, comparisons=comparisons, chosen=chosen,
                  reason=_reason(fastest.id, chosen, comparisons, tied, fastest_is_lightest=lightest == fastest.id))


def settled(runoff: Runoff) -> bool:
    """More rounds would not change what the run-off says: every other contender surely trails the fastest, or
    those that do not are within the between-builds margin of it even at the top of their interval (a tie that
    could still resolve goes on to measure.max_rounds)."""
    return (runoff.fastest is not None and bool(runoff.comparisons)
            and all(c.sure or not c.resolvable for c in runoff.comparisons))


def _resolvable(interval: tuple[float, float] | None, margin: float) -> bool:
    """Whether more rounds could still make a comparison sure. They narrow the sampling interval around the
    ratio but never the margin it is widened by: a ratio at the top of the unwidened interval (the most the
    rounds allow) that would still sit within the margin, r * (1 - margin) <= 1, can never clear 1."""
    if interval is None:
        return True
    top = interval[1] / (1 + margin)
    return top * (1 - margin) > 1.0


def _lightness(record: CandidateRecord) -> tuple:
    m = record.metrics
    return (m.peak_rss_mb if m and m.peak_rss_mb is not None else float("inf"),
            m.size_mb if m and m.size_mb is not None else float("inf"))


def _clearly_lighter(light: CandidateRecord, fastest: CandidateRecord) -> bool:
    """Lighter by more than MEMORY_MARGIN of peak RSS (or, where either lacks one, a smaller file by as much): a
    contender lighter by less is no lighter on a device."""
    if light.id == fastest.id:
        return False
    (light_rss, light_size), (fast_rss, fast_size) = _lightness(light), _lightness(fastest)
    if light_rss != float("inf") and fast_rss != float("inf"):
        return light_rss < fast_rss * (1 - MEMORY_MARGIN)
    return light_size < fast_size * (1 - MEMORY_MARGIN)


def _reason(fastest: str, chosen: str, comparisons: list[Comparison], tied: list[str],
            fastest_is_lightest: bool) -> str:
    said = "; ".join(f"{c.other} at {c.ratio:.2f}x {fastest}'s latency"
                     + (f" [{c.interval[0]:.2f}-{c.interval[1]:.2f}]" if c.interval else "") for c in comparisons)
    if len(tied) == 1:
        return f"{fastest} was the fastest side by side, with confidence ({said})"
    others = ", ".join(t for t in tied if t != fastest)
    if not any(c.resolvable for c in comparisons if not c.sure):
        said += "; within the between-builds margin, which more rounds would not narrow"
    if chosen == fastest and fastest_is_lightest:
        return (f"{fastest} was the fastest side by side but not surely faster than {others} ({said}); it is also "
                "the lightest of them")
    if chosen == fastest:
        return (f"{fastest} was the fastest side by side but not surely faster than {others} ({said}); none of "
                f"them is lighter by more than {MEMORY_MARGIN:.0%} of its peak RSS, so it is kept")
    return (f"{fastest} was the fastest side by side but not surely faster than {others} ({said}): speed cannot "
            f"tell them apart on this machine, so the one of least peak memory, {chosen}, is chosen")
