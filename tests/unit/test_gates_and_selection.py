import pytest

from edgeopt.candidates import CandidateRecord, leader, select
from edgeopt.errors import ManifestError
from edgeopt.gates import GatePolicy, effective_policy, evaluate, load_gate_policies, ratio_metrics
from edgeopt.manifest import GateOverrides
from edgeopt.measure.metrics import metric
from edgeopt.measurements import Latency, Measurements, Ratios


def metrics(p50, rss, size, score) -> Measurements:
    latency = Latency(p50=p50, p90=p50, p99=p50, mean=p50, min=p50, max=p50, runs=1)
    return Measurements(latency_ms=latency, peak_rss_mb=rss, size_mb=size, accuracy={"score": score})


BASE = metrics(10.0, 200.0, 100.0, 0.90)


def test_ratios_for_a_higher_is_better_metric():
    r = ratio_metrics(metrics(4.0, 80.0, 25.0, 0.88), BASE, metric("top1"))
    assert r.peak_rss_cut == pytest.approx(0.6)
    assert r.size_cut == pytest.approx(0.75)
    assert r.accuracy_retained == pytest.approx(0.88 / 0.90)
    assert r.speedup is None  # speedups come from the timing rounds, never from two separate p50s


def test_ratios_for_a_lower_is_better_metric():
    assert ratio_metrics(metrics(10, 200, 100, 0.04), metrics(10, 200, 100, 0.02), metric("cer")).accuracy_retained == 0.5
    assert ratio_metrics(metrics(10, 200, 100, 0.0), metrics(10, 200, 100, 0.0), metric("cer")).accuracy_retained == 1.0


def test_a_speedup_with_an_interval_passes_fails_or_is_inconclusive():
    policy = GatePolicy(name="t", accuracy_retained=None, memory_cut=None, speedup=2.0)
    verdict = lambda value, ci: evaluate(Ratios(speedup=value, speedup_ci=ci), policy)["speedup"].verdict  # noqa: E731
    assert verdict(2.4, (2.1, 2.6)) == "pass"
    assert verdict(1.7, (1.5, 1.9)) == "fail"
    assert verdict(2.1, (1.8, 2.3)) == "inconclusive"
    assert verdict(2.0, (2.0, 2.2)) == "pass"  # exactly at the threshold
    assert verdict(2.1, None) == "pass"  # a single round: the value alone decides
    gate = evaluate(Ratios(speedup=2.1, speedup_ci=(1.8, 2.3)), policy)["speedup"]
    assert not gate.passed and gate.interval == (1.8, 2.3)


def test_gates_report_value_threshold_and_verdict():
    policy = GatePolicy(name="t", accuracy_retained=0.95, speedup=2.0, memory_cut=0.5, memory_basis="size")
    results = evaluate(Ratios(accuracy_retained=0.97, speedup=1.5, size_cut=0.75, peak_rss_cut=0.1), policy)
    assert results["accuracy_retained"].passed and results["memory_cut"].passed
    assert not results["speedup"].passed and results["speedup"].shortfall == pytest.approx(0.5)
    assert results["memory_cut"].value == 0.75  # read from size, not peak RSS


def test_a_missing_figure_fails_its_gate():
    results = evaluate(Ratios(), GatePolicy(name="t", speedup=None, memory_cut=None))
    assert not results["accuracy_retained"].passed and results["accuracy_retained"].detail == "not measured"
    assert set(results) == {"accuracy_retained"}


def test_default_policy_is_data_and_overridable():
    policies = load_gate_policies()
    assert policies["default"].speedup == 2.0 and policies["default"].accuracy_retained == 0.95
    effective = effective_policy(GateOverrides(speedup=1.2, memory_basis="size"), policies)
    assert effective.speedup == 1.2 and effective.memory_basis == "size" and effective.accuracy_retained == 0.95


def test_unknown_policy_suggests_the_closest():
    with pytest.raises(ManifestError) as caught:
        effective_policy(GateOverrides(policy="defualt"), load_gate_policies())
    assert caught.value.choices == ["default"]


def record(rid, p50, passed=(True, True), rss=100.0):
    gates = evaluate(Ratios(accuracy_retained=1.0 if passed[0] else 0.5, speedup=3.0 if passed[1] else 1.0,
                            peak_rss_cut=0.6), GatePolicy(name="t"))
    return CandidateRecord(id=rid, framework="f", stage="quantize", status="ok", provenance="measured-host",
                           metrics=metrics(p50, rss, 1.0, 1.0), gates=gates)


def test_selection_takes_the_preferred_among_those_passing_every_gate():
    records = [record("fast-but-wrong", 1.0, (False, True)), record("slow", 5.0), record("fast", 2.0, rss=300)]
    assert select(records, "latency").id == "fast"
    assert select(records, "memory").id == "slow"
    assert select([record("x", 1.0, (True, False))], "latency") is None


def test_leader_ignores_speed_gates_but_not_accuracy():
    records = [record("wrong", 1.0, (False, True)), record("slow-ok", 3.0, (True, False))]
    assert leader(records, "latency").id == "slow-ok"
    failed = CandidateRecord(id="f", framework="f", stage="q", status="failed", provenance="measured-host")
    assert leader([failed], "latency") is None


def test_a_build_for_a_board_picks_what_is_fastest_and_most_accurate_there():
    here = record("fast-here", 1.0).model_copy(update={
        "ratios": Ratios(speedup=3.0, accuracy_retained=1.0),
        "target_ratios": Ratios(speedup=1.2, accuracy_retained=0.96)})
    there = record("fast-there", 2.0).model_copy(update={
        "ratios": Ratios(speedup=1.5, accuracy_retained=0.97),
        "target_ratios": Ratios(speedup=2.5, accuracy_retained=0.99)})
    assert select([here, there], "latency").id == "fast-there"
    assert leader([here, there], "latency").id == "fast-there"
    assert select([here, there], "accuracy").id == "fast-there"
    # a host build ranks by the in-round speedups, not by p50s timed in different rounds
    host_only = [r.model_copy(update={"target_ratios": None}) for r in (here, there)]
    assert select(host_only, "latency").id == "fast-here" and select(host_only, "accuracy").id == "fast-here"
