import pytest

from edgeopt.candidates import CandidateRecord, leader, select
from edgeopt.errors import ManifestError
from edgeopt.gates import GatePolicy, evaluate, effective_policy, load_gate_policies, ratio_metrics
from edgeopt.manifest import GateOverrides

BASE = {"latency_ms": {"p50": 10.0}, "peak_rss_mb": 200.0, "size_mb": 100.0, "accuracy": {"score": 0.90}}


def metrics(p50, rss, size, score):
    return {"latency_ms": {"p50": p50}, "peak_rss_mb": rss, "size_mb": size, "accuracy": {"score": score}}


def test_ratios_for_a_higher_is_better_metric():
    r = ratio_metrics(metrics(4.0, 80.0, 25.0, 0.88), BASE, higher_is_better=True)
    assert r["speedup"] == pytest.approx(2.5)
    assert r["peak_rss_cut"] == pytest.approx(0.6)
    assert r["size_cut"] == pytest.approx(0.75)
    assert r["accuracy_retained"] == pytest.approx(0.88 / 0.90)


def test_ratios_for_a_lower_is_better_metric():
    base = {**BASE, "accuracy": {"score": 0.02}}
    assert ratio_metrics(metrics(10, 200, 100, 0.04), base, False)["accuracy_retained"] == pytest.approx(0.5)
    assert ratio_metrics(metrics(10, 200, 100, 0.0), {**BASE, "accuracy": {"score": 0.0}}, False)["accuracy_retained"] == 1.0


def test_gates_report_value_threshold_and_verdict():
    policy = GatePolicy(name="t", accuracy_retained=0.95, speedup=2.0, memory_cut=0.5, memory_basis="size")
    results = evaluate({"accuracy_retained": 0.97, "speedup": 1.5, "size_cut": 0.75, "peak_rss_cut": 0.1}, policy)
    assert results["accuracy_retained"].passed and results["memory_cut"].passed
    assert not results["speedup"].passed and results["speedup"].shortfall == pytest.approx(0.5)
    assert results["memory_cut"].value == 0.75  # read from size, not peak RSS


def test_a_missing_figure_fails_its_gate():
    results = evaluate({"accuracy_retained": None}, GatePolicy(name="t", speedup=None, memory_cut=None))
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
    gates = evaluate({"accuracy_retained": 1.0 if passed[0] else 0.5, "speedup": 3.0 if passed[1] else 1.0,
                      "peak_rss_cut": 0.6}, GatePolicy(name="t"))
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
