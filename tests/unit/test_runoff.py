"""The run-off among candidates whose speedup intervals overlap: who enters, and how the rounds timed side
by side decide (pure logic on synthetic windows; test_builder runs them in toy builds)."""

import numpy as np

from edgeopt.candidates import CandidateRecord
from edgeopt.gates import GateResult
from edgeopt.measurements import Measurements
from edgeopt.protocol import WindowResult
from edgeopt.runoff import contenders, decide, settled


def record(record_id, speedup, interval, passed=True, rss=100.0):
    verdict = "pass" if passed else "fail"
    gates = {"accuracy_retained": GateResult(verdict="pass", value=1.0, threshold=0.95),
             "speedup": GateResult(verdict=verdict, value=speedup, threshold=2.0, interval=interval)}
    return CandidateRecord(id=record_id, framework="toy", stage="quantize", status="ok", provenance="measured-host",
                           gates=gates, metrics=Measurements(peak_rss_mb=rss, size_mb=1.0))


def windows(latencies_ms):
    return {f"r{i}": WindowResult(samples_ms=(ms,), wall_s=0.1, cpu_s=0.1) for i, ms in enumerate(latencies_ms)}


def test_the_selected_and_the_passing_ones_whose_interval_reaches_it_enter_up_to_three():
    best = record("best", 2.4, (2.1, 3.4))
    close = record("close", 2.3, (2.05, 2.6))
    closer = record("closer", 2.35, (2.2, 2.5))
    also = record("also", 2.2, (2.1, 2.3))
    apart = record("apart", 2.05, (2.01, 2.09))  # its interval ends below the best's: no need to time it again
    records = [best, close, closer, also, apart]
    assert [r.id for r in contenders(records, best, "latency")] == ["best", "closer", "close"]
    assert contenders(records, best, "memory") == []  # chosen by memory: speed's noise does not decide
    assert contenders([best, apart], best, "latency") == []  # nobody to compare with
    estimated = best.model_copy(update={"gates": {"speedup": GateResult(verdict="pass", value=2.4, threshold=2.0)}})
    assert contenders([estimated, close], estimated, "latency") == []  # an estimate has no sampling spread


def test_the_fastest_side_by_side_wins_when_the_rounds_are_sure():
    noise = np.random.default_rng(0).normal(0, 0.05, size=10)
    entrants = [record("a", 2.4, (2.1, 3.4)), record("b", 2.3, (2.0, 2.6))]
    timed = {"a": windows(5.0 + noise), "b": windows(4.0 + noise[::-1])}
    runoff = decide("the selected candidate", entrants, timed, windows([10.0] * 10))
    assert runoff.fastest == runoff.chosen == "b"
    (comparison,) = runoff.comparisons
    assert comparison.other == "a" and comparison.sure and 1.2 < comparison.ratio < 1.3
    assert {c.id: c.rounds for c in runoff.contenders} == {"a": 10, "b": 10}
    assert runoff.reason.startswith("b was the fastest side by side, with confidence")
    assert settled(runoff)  # more rounds would not change the choice: the run-off may stop here


def test_contenders_the_rounds_cannot_tell_apart_go_to_the_one_of_least_peak_memory():
    latencies = [4.0, 4.2, 3.9, 4.1, 4.0, 4.3, 3.8, 4.1]
    entrants = [record("heavy", 2.4, (2.1, 3.4), rss=180.0), record("light", 2.3, (2.0, 2.6), rss=90.0)]
    # light is 2% slower on the median, within the rounds' noise
    timed = {"heavy": windows(latencies), "light": windows([ms * 1.02 for ms in latencies[1:] + latencies[:1]])}
    runoff = decide("the selected candidate", entrants, timed, windows([10.0] * 8))
    assert runoff.fastest == "heavy" and not runoff.comparisons[0].sure
    assert runoff.chosen == "light" and not settled(runoff)  # a tie may still resolve: all rounds are timed
    assert runoff.reason.endswith("speed cannot tell them apart on this machine, so the one of least peak memory, "
                                  "light, is chosen")


def test_a_tie_keeps_the_fastest_when_no_other_is_clearly_lighter():
    # Fashion-MNIST's figures: int8-dynamic peaked 1% below int8-static and was 17% slower on the median, unsurely
    latencies = [4.0, 4.6, 3.7, 4.4, 4.0, 4.8, 3.6, 4.1]
    entrants = [record("int8-static", 1.7, (1.5, 1.9), rss=59.2), record("int8-dynamic", 1.3, (1.1, 1.6), rss=58.6)]
    timed = {"int8-static": windows(latencies),
             "int8-dynamic": windows([ms * 1.17 for ms in latencies[3:] + latencies[:3]])}
    runoff = decide("the leader", entrants, timed, windows([10.0] * 8), margin=0.05)
    assert runoff.fastest == "int8-static" and not runoff.comparisons[0].sure
    assert runoff.chosen == "int8-static"
    assert runoff.reason.endswith("none of them is lighter by more than 5% of its peak RSS, so it is kept")
    assert runoff.comparisons[0].resolvable and not settled(runoff)  # 17% apart: more rounds may resolve it
    lighter = [entrants[0], entrants[1].model_copy(update={"metrics": Measurements(peak_rss_mb=50.0, size_mb=1.0)})]
    assert decide("the leader", lighter, timed, windows([10.0] * 8), margin=0.05).chosen == "int8-dynamic"


def test_with_fewer_than_two_timed_again_the_build_figures_decide():
    entrants = [record("a", 2.4, (2.1, 3.4)), record("b", 2.3, (2.0, 2.6))]
    runoff = decide("the selected candidate", entrants, {"a": windows([4.0, 4.1])}, windows([10.0, 10.0]))
    assert runoff.chosen is None and "the build's figures decide" in runoff.reason and not settled(runoff)


def test_an_edge_within_the_between_builds_margin_is_a_tie():
    # 1% faster in every round: sure within these rounds, not beyond the 5% that moves between builds
    entrants = [record("fast-heavy", 2.4, (2.1, 3.4), rss=160.0), record("light", 2.3, (2.0, 2.6), rss=90.0)]
    timed = {"fast-heavy": windows([4.0, 4.1, 3.9, 4.0, 4.05, 3.95]),
             "light": windows([4.04, 4.14, 3.94, 4.04, 4.09, 3.99])}
    sure = decide("the leader", entrants, timed, windows([10.0] * 6))
    assert sure.chosen == "fast-heavy" and sure.comparisons[0].sure
    tied = decide("the leader", entrants, timed, windows([10.0] * 6), margin=0.05)
    assert tied.fastest == "fast-heavy" and not tied.comparisons[0].sure and tied.chosen == "light"
    # no number of rounds could clear a 1% edge past the 5% margin: the run-off stops, and says why
    assert not tied.comparisons[0].resolvable and settled(tied)
    assert "within the between-builds margin, which more rounds would not narrow" in tied.reason
    assert sure.comparisons[0].sure and settled(sure)
