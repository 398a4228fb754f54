"""The whole Builder on the toy framework, in this process: waves, the leader, duplicates, skips and
failures, cheap-first and max_candidates, the cache, and a bug in a worker. No onnxruntime needed."""

import numpy as np
import pytest

from edgeopt.ci_gate import gate_report
from edgeopt.recipes import Recipe
from edgeopt.report import Report, build_report, render_summary
from edgeopt.report_html import render_html
from edgeopt.runners import WorkerBug
from tests.unit.builder_kit import build, recipe, registry, write_project


@pytest.fixture
def project(tmp_path):
    write_project(tmp_path)
    return tmp_path


def by_id(result):
    return {r.id: r for r in result.candidates}


def test_a_build_runs_every_stage_and_records_what_happened_to_each_step(project):
    result = build(project)
    records = by_id(result)
    assert result.baseline.status == "ok" and result.baseline.metrics.score == 1.0
    assert records["again"].status == "duplicate" and records["again"].same_as == "baseline"
    assert records["empty"].status == "skipped" and "quantized no node" in records["empty"].error
    assert records["broken"].status == "failed" and records["broken"].error == "RuntimeError: the toy pass broke"
    assert "second line of the story" in records["broken"].error_detail
    assert records["int8"].passed_all_gates
    assert not records["int2"].gates["accuracy_retained"].passed and records["int2"].gates["speedup"].passed
    # the candidate that lost most accuracy is diagnosed layer by layer against its float input
    assert result.diagnosis["candidate"] == "int2" and result.diagnosis["layers"][0]["layer"] == "matmul", \
        result.diagnosis
    # the accelerate stage builds on the fastest candidate that keeps accuracy: int8, not the faster int2
    assert records["tuned-dm0.5"].input == "int8" and records["tuned-dm3"].input == "int8"
    assert records["tuned-dm3"].gates["speedup"].verdict != "pass"  # 4 ms / 3 ms is nowhere near 2x
    assert result.selected.id == "tuned-dm0.5"
    assert (project / "out" / "selected" / "model.npy").exists()


def test_speedups_are_in_round_ratios_with_an_interval(project):
    result = build(project)
    int8 = by_id(result)["int8"]
    rounds = int8.metrics.timing
    assert rounds.rounds >= 3 and len(rounds.speedup_per_round) == rounds.rounds
    low, high = int8.ratios.speedup_ci
    assert low <= int8.ratios.speedup <= high and low > 2.0  # 4 ms vs 1 ms of sleep: about 4x, whatever the load
    # the baseline runs in every round of every batch: its per-round series spans the whole build
    assert result.baseline.metrics.timing.rounds >= 3 * 3


def test_timing_windows_never_overlap(project):
    windows = sorted(build(project).search["windows"], key=lambda w: w["started"])
    assert len(windows) > 10
    for earlier, later in zip(windows, windows[1:]):
        assert earlier["ended"] <= later["started"] + 1e-6, (earlier, later)


def test_cheap_first_stops_on_the_first_candidate_that_passes_every_gate(project):
    result = build(project, search={"strategy": "cheap-first"})
    records = by_id(result)
    assert "cheap-first" in result.search["stopped"] and records["int8"].passed_all_gates
    # a cheap-first batch holds three candidates (each batch times the baseline again): again, int8 and int2
    assert [records[i].status for i in ("again", "int8", "int2")] == ["duplicate", "ok", "ok"]
    assert {records[i].status for i in ("empty", "broken", "tuned-dm0.5")} == {"skipped"}
    assert all("not evaluated" in records[i].error for i in ("empty", "tuned-dm0.5"))


def test_max_candidates_bounds_the_search(project):
    result = build(project, search={"max_candidates": 2})
    started = [r for r in result.candidates if r.status != "skipped" or "not evaluated" not in (r.error or "")]
    assert [r.id for r in started] == ["again", "int8"]
    assert "max_candidates (2)" in result.search["stopped"]


def test_a_rebuild_comes_from_the_cache_with_the_same_figures_and_a_changed_model_misses(project, tmp_path):
    cache = tmp_path / "cache"
    first, second = build(project, "a", cache), build(project, "b", cache)
    # only the failing pass runs again (a failure may be transient); a pass with nothing to do is remembered
    assert second.cache["misses"] == {"pass": 1, "measure": 0}
    assert by_id(second)["empty"].status == "skipped" and by_id(second)["broken"].status == "failed"
    figures = lambda r: {c.id: (c.metrics.p50, c.ratios.speedup, c.ratios.speedup_ci) for c in r.candidates if c.metrics}  # noqa: E731
    assert figures(second) == figures(first)
    assert second.baseline.metrics.latency_ms == first.baseline.metrics.latency_ms
    np.save(project / "w.npy", np.load(project / "w.npy") * 2)
    third = build(project, "c", cache)
    assert third.cache["hits"]["pass"] == 0 and not any(c.cached.get("pass") for c in third.candidates)


def test_a_step_is_made_again_when_an_environment_it_runs_code_from_changes(project, tmp_path):
    cache = tmp_path / "cache"
    stages = recipe().model_dump(by_alias=True)["stages"]
    stages[0]["passes"][1]["config"] = {"environment": "toy-env"}  # the "again" step
    tooled = Recipe(framework="toy", stages=stages)
    build(project, "a", cache, the_recipe=tooled, env_keys={"toy-env": "made-from-v1"})
    same = build(project, "b", cache, the_recipe=tooled, env_keys={"toy-env": "made-from-v1"})
    changed = build(project, "c", cache, the_recipe=tooled, env_keys={"toy-env": "made-from-v2"})
    # the failing pass always runs again (as in the test above); with the environment changed, so does "again"
    assert same.cache["misses"]["pass"] == 1 and changed.cache["misses"]["pass"] == 2
    assert by_id(changed)["int8"].cached.get("pass")


def test_candidates_new_to_a_cached_build_are_timed_beside_the_baseline_again(project, tmp_path):
    cache = tmp_path / "cache"
    build(project, "a", cache, search={"max_candidates": 2})  # caches the baseline's timing and two candidates
    grown = build(project, "b", cache)
    fresh = [c for c in grown.candidates if c.status == "ok" and not c.cached["timing"]]
    assert fresh and all(c.ratios.speedup is not None and c.ratios.speedup_ci for c in fresh)


def test_an_adapter_that_breaks_the_contract_stops_the_build_as_an_internal_error(project):
    with pytest.raises(WorkerBug, match="internal error in an edgeopt worker"):
        build(project, module="tests.unit.toy_broken")


def test_cheap_first_runs_first_the_pass_that_was_quickest_on_this_model_in_earlier_builds(project, tmp_path):
    import json

    cache = tmp_path / "cache"
    build(project, "a", cache)
    recorded = list((cache / "costs").glob("*.json"))
    assert len(recorded) == 1 and {"import", "again", "int8", "int2"} <= set(json.loads(recorded[0].read_text()))
    # as if int2's pass had taken a fraction of int8's: the cheap-first search now tries int2 first, which keeps
    # too little accuracy, so int8 runs as well (declared costs alone put int8 first and stop there: see above)
    recorded[0].write_text(json.dumps({"int8": 5.0, "int2": 0.01}))
    result = build(project, "b", cache, search={"strategy": "cheap-first"})
    records = by_id(result)
    assert records["int2"].status == "ok" and records["int8"].passed_all_gates
    assert "2 of" in result.search["order"] and "cheap-first" in result.search["stopped"]


def _escalating_recipe() -> Recipe:
    stages = recipe().model_dump(by_alias=True)["stages"]
    stages[1]["passes"] += [  # each can only buy accuracy back from the step it escalates
        {"id": "int8-safer", "pass": "toy.round", "input": "baseline", "config": {"bits": 10, "delay_ms": 1},
         "escalates": "int8"},
        {"id": "int2-back", "pass": "toy.round", "input": "baseline", "config": {"delay_ms": 1},
         "space": {"bits": [6, 12]}, "escalates": "int2"},
        {"id": "int8-back", "pass": "toy.round", "input": "baseline", "config": {"delay_ms": 1},
         "space": {"bits": [11, 13]}, "escalates": "int8"},
        {"id": "int8-same", "pass": "toy.round", "input": "baseline", "config": {"bits": 8, "delay_ms": 1}},
        {"id": "int8-same-safer", "pass": "toy.round", "input": "baseline", "config": {"bits": 9, "delay_ms": 1},
         "escalates": "int8-same"}]
    return Recipe(framework="toy", stages=stages)


def test_cheap_first_prunes_an_escalation_once_the_step_before_it_keeps_accuracy(project):
    # no candidate can pass a 100x speedup gate, so the search does not stop early: what it skips, it pruned
    result = build(project, search={"strategy": "cheap-first"}, gates={"speedup": 100.0},
                   the_recipe=_escalating_recipe())
    records = by_id(result)
    assert records["int8"].keeps_accuracy and not records["int2"].keeps_accuracy
    assert records["int8-safer"].status == "skipped"
    assert records["int8-safer"].error.startswith("pruned: int8 keeps accuracy (accuracy retained 1")
    assert "measured-host" in records["int8-safer"].error
    # every point of an escalation of int8 is pruned, the second one too (it escalates the first, never run)
    assert [records[i].error.split(",")[0] for i in ("int8-back-b11", "int8-back-b13")] == [
        "pruned: int8 keeps accuracy (accuracy retained 1"] * 2
    # int2 lost accuracy: its escalation runs, 6 bits first; 6 bits keeps it, so 12 bits is pruned
    assert records["int2-back-b6"].status == "ok" and records["int2-back-b6"].keeps_accuracy
    assert records["int2-back-b12"].status == "skipped" and "pruned: int2-back-b6 keeps" in records["int2-back-b12"].error
    # a step that made the same model as an earlier one is judged by that one's figures
    assert records["int8-same"].status == "duplicate" and records["int8-same"].same_as == "int8"
    assert records["int8-same-safer"].error.startswith("pruned: int8 keeps accuracy")


def test_an_exhaustive_search_runs_every_escalation_and_the_plan_says_what_each_escalates(project):
    from edgeopt.plan_text import render_plan

    result = build(project, gates={"speedup": 100.0}, the_recipe=_escalating_recipe())
    records = by_id(result)
    assert all(records[i].status == "ok" for i in ("int8-safer", "int2-back-b6", "int2-back-b12", "int8-same-safer"))
    steps = {s.id: s for s in result.plan.steps}
    assert (steps["int8-safer"].escalates, steps["int2-back-b6"].escalates, steps["int2-back-b12"].escalates) == (
        "int8", "int2", "int2-back-b6")
    assert "escalates int2-back-b6: buys accuracy back from it; run here in any case" in render_plan(result.plan, registry())


def test_an_escalation_names_an_earlier_entry_and_steps_through_one_option():
    from pydantic import ValidationError

    stages = recipe().model_dump(by_alias=True)["stages"]
    stages[1]["passes"].append({"id": "later", "pass": "toy.round", "escalates": "tuned"})
    with pytest.raises(ValidationError, match="escalates 'tuned', which is not an earlier entry"):
        Recipe(framework="toy", stages=stages)
    with pytest.raises(ValidationError, match="a space of one option at most"):
        Recipe(framework="toy", stages=[{"name": "quantize", "passes": [
            {"id": "a", "pass": "toy.round"},
            {"id": "b", "pass": "toy.round", "space": {"bits": [4, 8], "delay_ms": [1, 2]}, "escalates": "a"}]}])


def _grid_recipe() -> Recipe:
    # four points; the toy's speed is its delay: 3 ms loses to 1 ms at equal bits, whatever the bits. The three
    # one option away from the first fill one cheap-first batch, the combination comes after
    return Recipe(framework="toy", stages=[
        {"name": "convert", "passes": [
            {"id": "import", "pass": "toy.load", "role": "baseline", "input": "source", "config": {"delay_ms": 4}}]},
        {"name": "quantize", "passes": [{"id": "grid", "pass": "toy.round", "input": "baseline",
                                         "space": {"bits": [12, 10], "delay_ms": [1, 3]}}]}])


def test_cheap_first_prunes_a_point_that_repeats_an_option_which_lost_on_a_similar_pair(project):
    # a 100x speedup gate: nothing passes every gate, so the search does not stop early
    result = build(project, search={"strategy": "cheap-first"}, gates={"speedup": 100.0}, the_recipe=_grid_recipe())
    records = by_id(result)
    # the points one option away from the first ran; delay 3 lost to delay 1 at 12 bits, so it is not tried at 10
    assert [records[i].status for i in ("grid-b12-dm1", "grid-b12-dm3", "grid-b10-dm1")] == ["ok"] * 3
    pruned = records["grid-b10-dm3"]
    assert pruned.status == "skipped", pruned
    assert pruned.error.startswith("pruned: delay_ms: 3.0 lost to delay_ms: 1.0 on a similar pair (grid-b12-dm3 ")
    assert "grid-b10-dm1, which differs from this step the same way, was measured" in pruned.error
    # an exhaustive search runs it
    assert by_id(build(project, "exhaustive", gates={"speedup": 100.0}, the_recipe=_grid_recipe()))[
        "grid-b10-dm3"].status == "ok"


def _twins_recipe() -> Recipe:
    # two candidates as fast as each other (the toy's speed is its delay): no build can rank them by speed
    return Recipe(framework="toy", stages=[
        {"name": "convert", "passes": [
            {"id": "import", "pass": "toy.load", "role": "baseline", "input": "source", "config": {"delay_ms": 4}}]},
        {"name": "quantize", "passes": [
            {"id": "int8", "pass": "toy.round", "input": "baseline", "config": {"bits": 8, "delay_ms": 1}},
            {"id": "int12", "pass": "toy.round", "input": "baseline", "config": {"bits": 12, "delay_ms": 1}}]}])


def test_passing_candidates_with_overlapping_speedups_are_timed_again_side_by_side_to_choose(project, tmp_path):
    # the margin widens every interval by 20%, so the twins' intervals overlap however quiet the sleeps are
    cache = tmp_path / "cache"
    result = build(project, "a", cache, the_recipe=_twins_recipe(), measure={"speedup_margin": 0.2})
    records = by_id(result)
    assert records["int8"].passed_all_gates and records["int12"].passed_all_gates
    (runoff,) = result.runoffs
    assert runoff.decides == "the selected candidate" and {c.id for c in runoff.contenders} == {"int8", "int12"}
    assert all(3.0 < c.speedup < 5.0 for c in runoff.contenders)  # 4 ms against 1 ms of sleep
    (comparison,) = runoff.comparisons
    assert comparison.other != runoff.fastest and 0.8 < comparison.ratio < 1.25
    # twins stay within the 20% margin at the top of their interval: more rounds could not tell them apart, so
    # the run-off stops at measure.rounds (3) of its own rather than measure.max_rounds (5), and says why
    assert not comparison.sure and not comparison.resolvable
    assert all(c.rounds == 3 for c in runoff.contenders)
    assert "which more rounds would not narrow" in runoff.reason
    assert result.selected.id == runoff.chosen
    report = build_report(result, "test cpu")
    assert f"run-off for the selected candidate: {runoff.reason}" in render_summary(report)
    assert "Run-off for the selected candidate: " in render_html(report)
    assert Report.model_validate_json(report.model_dump_json()).runoffs == [runoff]  # report.json keeps it, typed
    # the run-off's windows are its own: each candidate keeps the rounds its gates read
    assert all(records[i].metrics.timing.rounds < 3 + 3 for i in ("int8", "int12"))
    windows = [w for w in result.search["windows"]]
    assert sum(1 for w in windows if w["id"] in ("int8", "int12")) >= 2 * 3 + 2 * 3
    # a rebuild from the cache reads the same run-off and makes the same choice, timing nothing
    again = build(project, "b", cache, the_recipe=_twins_recipe(), measure={"speedup_margin": 0.2})
    assert again.runoffs == (runoff,) and again.selected.id == result.selected.id and not again.search["windows"]


def test_no_runoff_when_one_candidate_is_plainly_the_fastest(project):
    result = build(project)
    assert result.selected.id == "tuned-dm0.5" and result.runoffs == ()


def test_the_leader_later_steps_build_on_comes_from_a_runoff_when_speedups_overlap(project):
    stages = _twins_recipe().model_dump(by_alias=True)["stages"]
    stages.append({"name": "accelerate", "passes": [
        {"id": "tuned", "pass": "toy.settings", "input": "leader", "config": {"delay_ms": 0.5}}]})
    result = build(project, the_recipe=Recipe(framework="toy", stages=stages), measure={"speedup_margin": 0.2})
    leader_runoff = next(r for r in result.runoffs if r.decides == "the toy candidate later steps build on")
    assert {c.id for c in leader_runoff.contenders} == {"int8", "int12"}
    assert by_id(result)["tuned"].input == leader_runoff.chosen
    assert result.selected.id == "tuned"  # 8x: plainly the fastest, no run-off for the selection
    assert all(r.decides != "the selected candidate" for r in result.runoffs)


def test_a_memory_gate_no_model_can_pass_on_the_runtime_is_said_so(project):
    # timed in this process, the toy's runtime alone holds about all of the baseline's peak RSS: no model
    # could cut nine tenths of it, and the build says so beside the closest candidates' shortfalls
    result = build(project, gates={"memory_cut": 0.9})
    report = build_report(result, "test cpu")
    note = next(n for n in report.notes if n.startswith("memory_cut cannot pass on toy whatever the model"))
    assert f"of the baseline's {result.baseline.metrics.peak_rss_mb:.1f} MB peak RSS" in note
    assert report.selected is None and "memory_cut" in report.verdict and "(out of reach on toy: see the note)" \
        in report.verdict
    assert note in render_summary(report) and "out of reach on toy" in render_html(report)
    # the CI gate step says it too, in the memory case's JUnit failure message and the Markdown summary
    case = next(c for c in gate_report(report).cases if c.name == "memory_cut")
    assert not case.passed and case.message.endswith(note)
    # the same gate at a cut a model could reach says nothing
    assert not any(n.startswith("memory_cut cannot pass") for n in build_report(build(project, "out2"), "test cpu").notes)


def test_a_runoff_stops_after_measure_rounds_once_its_winner_is_sure(project):
    # int8 (1 ms) and int12 (2 ms) against a 4 ms baseline: a 40% margin makes their build intervals overlap,
    # so the leader goes to a run-off; side by side int12 takes about twice int8's time, sure in 3 rounds
    stages = _twins_recipe().model_dump(by_alias=True)["stages"]
    stages[1]["passes"][1]["config"]["delay_ms"] = 2
    stages.append({"name": "accelerate", "passes": [
        {"id": "tuned", "pass": "toy.settings", "input": "leader", "config": {"delay_ms": 0.5}}]})
    result = build(project, the_recipe=Recipe(framework="toy", stages=stages), measure={"speedup_margin": 0.4})
    (leader,) = [r for r in result.runoffs if r.decides == "the toy candidate later steps build on"]
    assert {c.id for c in leader.contenders} == {"int8", "int12"} and leader.chosen == "int8"
    assert all(c.sure for r in result.runoffs for c in r.comparisons)
    # measure.rounds (3), not measure.max_rounds (5): more rounds would not have changed the choice
    assert {c.rounds for r in result.runoffs for c in r.contenders} == {3}
