"""Pruning by similar steps, as pure logic: when a candidate counts as beaten, which pending step an option
that lost makes pointless, and the order an option space is tried in."""

from edgeopt.candidates import CandidateRecord
from edgeopt.measurements import Ratios
from edgeopt.planner import Step
from edgeopt.pruning import differing, evidence, lost_to, pruned_by
from edgeopt.recipes import RecipeEntry


def record(id, speedup, ci=None, accuracy=1.0, size_cut=0.7, rss_cut=0.5, status="ok", target_speedup=None):
    ratios = Ratios(accuracy_retained=accuracy, speedup=speedup, speedup_ci=ci, size_cut=size_cut, peak_rss_cut=rss_cut)
    on_target = Ratios(speedup=target_speedup) if target_speedup is not None else None
    return CandidateRecord(id=id, framework="onnxruntime", stage="quantize", status=status, provenance="measured-host",
                           ratios=ratios, target_ratios=on_target)


def step(id, input="fp32-opt", **config):
    return Step(id=id, framework="onnxruntime", stage="quantize", pass_name="onnxruntime.quantize_dynamic",
                config={"per_channel": True, "embeddings": False, **config}, input=input, role="candidate",
                needs_calibration=False)


def test_a_candidate_is_beaten_only_when_slower_beyond_both_intervals_and_better_at_nothing():
    fast = record("fast", 2.0, (1.9, 2.2))
    assert "slow 1.50x (95% interval up to 1.70) against fast 2.00x (from 1.90)" in lost_to(
        record("slow", 1.5, (1.3, 1.7)), fast)
    assert lost_to(record("close", 1.7, (1.5, 1.95)), fast) is None  # the intervals overlap: noise could do that
    assert lost_to(record("accurate", 1.5, (1.3, 1.7), accuracy=1.01), fast) is None
    assert lost_to(record("smaller", 1.5, (1.3, 1.7), size_cut=0.8), fast) is None
    assert lost_to(record("lighter", 1.5, (1.3, 1.7), rss_cut=0.55), fast) is None
    # a peak-RSS cut within the run-to-run spread is no gain
    assert lost_to(record("as-light", 1.5, (1.3, 1.7), rss_cut=0.51), fast) is not None
    assert lost_to(record("failed", 1.5, (1.3, 1.7), status="failed"), fast) is None


def test_on_the_targets_figures_an_estimate_is_a_point_and_decides_over_the_hosts_speedup():
    # faster here, slower on the board: the board's estimate decides, as the gates read it
    assert lost_to(record("a", 3.0, (2.8, 3.2), target_speedup=1.2), record("b", 2.0, (1.9, 2.1), target_speedup=1.3))
    assert lost_to(record("a", 3.0, (2.8, 3.2), target_speedup=1.3), record("b", 2.0, (1.9, 2.1), target_speedup=1.2)) \
        is None
    # one with the board's figure and one without (its emulation failed): host and target are never mixed
    assert lost_to(record("a", 3.0, (2.8, 3.2), target_speedup=1.2), record("b", 2.0, (1.9, 2.1))) is None


def test_similar_steps_are_one_pass_of_one_framework_and_differ_in_the_settings_named():
    assert differing(step("pc"), step("pc-emb", embeddings=True)) == {"embeddings"}
    assert differing(step("pc"), step("fused-pc", input="fp32-fused", op_types=["Attention"])) == {"input", "op_types"}
    other_pass = step("x").model_copy(update={"pass_name": "onnxruntime.quantize_static"})
    assert differing(step("pc"), other_pass) == frozenset()


def _quantize_stage():
    return [step("int8-dynamic-pc"), step("int8-dynamic-pc-emb", embeddings=True),
            step("int8-fused-pc", input="fp32-fused"), step("int8-fused-pc-emb", input="fp32-fused", embeddings=True)]


def test_an_option_that_lost_on_one_pair_prunes_the_step_that_repeats_it_once_its_twin_is_measured():
    steps = _quantize_stage()
    records = {"int8-dynamic-pc": record("int8-dynamic-pc", 2.0, (1.9, 2.1)),
               "int8-dynamic-pc-emb": record("int8-dynamic-pc-emb", 1.5, (1.4, 1.6))}
    found = evidence(steps, records.get)
    assert [(e.loser.id, e.winner.id, set(e.keys)) for e in found] == [
        ("int8-dynamic-pc-emb", "int8-dynamic-pc", {"embeddings"})]
    pending = steps[3]
    # its twin (int8-fused-pc) has not been measured: nothing says the option would lose on the fused graph too
    assert pruned_by(pending, steps, found, records.get) is None
    records["int8-fused-pc"] = record("int8-fused-pc", 2.2, (2.0, 2.4))
    why = pruned_by(pending, steps, found, records.get)
    assert why.startswith("pruned: embeddings: true lost to embeddings: false on a similar pair (int8-dynamic-pc-emb")
    assert "int8-fused-pc, which differs from this step the same way, was measured" in why
    # the option with the winning value is never pruned by it
    assert pruned_by(steps[2], steps, found, records.get) is None


def test_a_step_whose_model_other_steps_read_is_never_pruned():
    steps = [*_quantize_stage(), step("reads-it", input="int8-fused-pc-emb")]
    records = {"int8-dynamic-pc": record("int8-dynamic-pc", 2.0, (1.9, 2.1)),
               "int8-dynamic-pc-emb": record("int8-dynamic-pc-emb", 1.5, (1.4, 1.6)),
               "int8-fused-pc": record("int8-fused-pc", 2.2, (2.0, 2.4))}
    assert pruned_by(steps[3], steps, evidence(steps, records.get), records.get) is None


def test_an_option_space_tries_each_option_on_its_own_before_combinations():
    entry = RecipeEntry(id="tuned", **{"pass": "onnxruntime.session"},
                        space={"threads": [1, 2, 4], "arena": [True, False]})
    assert [point for point, _ in entry.expand()] == [
        "tuned-t1-aon", "tuned-t1-aoff", "tuned-t2-aon", "tuned-t4-aon", "tuned-t2-aoff", "tuned-t4-aoff"]
