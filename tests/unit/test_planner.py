from types import MappingProxyType

import pytest
from pydantic import ValidationError

from edgeopt.catalog import FrameworkChain, load_catalog
from edgeopt.errors import ManifestError, MissingDependency, PlanError
from edgeopt.gates import load_gate_policies
from edgeopt.manifest import Manifest
from edgeopt.planner import plan, require_installed
from edgeopt.recipes import Recipe
from edgeopt.registry import Availability, FrameworkEntry, Registry, default_registry

GRAPH = ("classification", "embedding", "generic")


def manifest(task="classification", fmt="onnx", **extra) -> Manifest:
    return Manifest(name="m", model={"path": "/m.onnx", "format": fmt, "task": task},
                    evaluation={"data": {"type": "npz", "path": "/e.npz"}, "metric": {"name": "top1"}}, **extra)


def registry(installed=("fake", "other")) -> Registry:
    entries = (
        FrameworkEntry("fake", "Fake", GRAPH, "tests.unit.fakes", "fake"),
        FrameworkEntry("other", "Other", GRAPH, "tests.unit.fakes", "other"),
        FrameworkEntry("future", "Future", GRAPH, None, "future", planned_in="issue #99"),
        FrameworkEntry("llm", "LLM only", ("causal-lm",), "tests.unit.fakes", "llm"),
    )
    availability = {n: Availability(n in installed, "1.0" if n in installed else None)
                    for n in ("fake", "other", "llm")}
    return Registry(entries, MappingProxyType(availability))


def recipe(framework="fake", **entry_overrides) -> Recipe:
    entry = {"id": f"{framework}-small", "pass": f"{framework}.shrink", "space": {"threads": [1, "cores"]},
             **entry_overrides}
    return Recipe(framework=framework, stages=[
        {"name": "convert", "passes": [{"id": f"{framework}-cal", "pass": f"{framework}.calibrated", "input": "source"}]},
        {"name": "quantize", "passes": [entry]},
        {"name": "accelerate", "passes": [{"id": f"{framework}-pick", "pass": f"{framework}.shrink", "input": "leader",
                                           "when": {"tasks": ["embedding"]}}]},
    ])


def target(chain=("future", "fake", "other", "llm"), target_id="rk3566"):
    base = load_catalog().resolve(target_id)
    return base.model_copy(update={"frameworks": FrameworkChain(preferred=list(chain), reason="test chain")})


def make_plan(task="classification", chain=("future", "fake", "other", "llm"), installed=("fake", "other"), recipes=None):
    recipes = recipes or {"fake": recipe("fake"), "other": recipe("other")}
    return plan(manifest(task), target(chain), recipes, registry(installed), load_gate_policies())


def test_chain_falls_back_past_unimplemented_and_says_why():
    p = make_plan()
    assert p.framework == "fake"
    reasons = {r.framework: r.reason for r in p.rejected}
    assert "not implemented yet" in reasons["future"] and "issue #99" in reasons["future"]
    assert "other" not in reasons  # installed and fitting: searched beside the preferred one
    assert p.frameworks == ("fake", "other") and "searched beside it" in p.framework_reason
    assert "causal-lm" in reasons["llm"]
    assert "future rejected" in p.framework_reason


def test_the_manifest_can_narrow_the_search_to_some_frameworks():
    p = plan(manifest(search={"frameworks": ["other"]}), target(), {"fake": recipe("fake"), "other": recipe("other")},
             registry(), load_gate_policies())
    assert p.frameworks == ("other",) and "search.frameworks" in {r.framework: r.reason for r in p.rejected}["fake"]
    with pytest.raises(ManifestError, match="did you mean: other"):
        plan(manifest(search={"frameworks": ["othr"]}), target(), {"fake": recipe("fake"), "other": recipe("other")},
             registry(), load_gate_policies())


def test_search_only_keeps_the_steps_asked_for_their_inputs_and_the_baseline():
    escalating = recipe("fake").model_dump(by_alias=True)
    escalating["stages"][1]["passes"] += [
        {"id": "fake-mid", "pass": "fake.shrink"}, {"id": "fake-int8", "pass": "fake.shrink"},
        {"id": "fake-safer", "pass": "fake.shrink", "input": "fake-mid", "escalates": "fake-int8"}]
    recipes = {"fake": Recipe(**escalating), "other": recipe("other")}
    p = plan(manifest(search={"only": ["fake-safer"]}), target(), recipes, registry(), load_gate_policies())
    # fake-safer reads fake-mid, which reads fake-cal (fake's baseline); the rest, other's too, is left out
    assert [s.id for s in p.steps] == ["fake-cal", "fake-mid", "fake-safer"]
    assert p.step("fake-safer").escalates is None  # the step it escalates is left out: nothing to wait for
    left_out = {s.id: s.reason for s in p.skipped}
    assert all("left out by search.only" in left_out[i] for i in ("fake-int8", "fake-small-t1", "other-cal"))
    with pytest.raises(ManifestError, match="search.only"):
        plan(manifest(search={"only": ["fake-safr"]}), target(), recipes, registry(), load_gate_policies())


def test_duplicate_step_ids_across_frameworks_are_refused():
    clash = {"fake": recipe("fake"), "other": recipe("other", id="fake-small")}
    with pytest.raises(PlanError, match="duplicate step ids"):
        make_plan(recipes=clash)


def test_an_installed_framework_is_preferred_over_a_missing_one_and_the_missing_is_explained():
    p = make_plan(installed=("other",))
    assert p.framework == "other"
    assert "not installed" in {r.framework: r.reason for r in p.rejected}["fake"]


def test_nothing_installed_still_plans_but_lists_what_to_install():
    p = make_plan(installed=())
    assert p.framework == "fake" and p.missing == ("pip install 'edgeopt[fake]'",)
    with pytest.raises(MissingDependency, match=r"pip install 'edgeopt\[fake\]'"):
        require_installed(p)


def test_no_framework_for_the_task_is_a_plan_error():
    with pytest.raises(PlanError, match="causal-lm"):
        make_plan(task="generic", chain=("llm", "future"))


def test_steps_expand_spaces_resolve_cores_and_link_inputs():
    p = make_plan(installed=("fake",))
    ids = [s.id for s in p.steps]
    assert ids == ["fake-cal", "fake-small-t1", "fake-small-t4"]  # rk3566 has 4 cores
    assert p.step("fake-small-t4").config == {"bits": 8, "threads": 4}
    assert p.step("fake-small-t1").input == "fake-cal" and p.step("fake-cal").needs_calibration
    assert [s.id for s in p.skipped] == ["fake-pick"]  # only for embedding models
    assert {s.framework for s in p.steps} == {"fake"}


def test_each_framework_gets_its_own_steps_in_chain_order():
    p = make_plan()
    assert [s.id for s in p.steps] == ["fake-cal", "fake-small-t1", "fake-small-t4",
                                       "other-cal", "other-small-t1", "other-small-t4"]
    assert p.step("other-small-t1").framework == "other" and p.step("other-small-t1").input == "other-cal"


def test_leader_input_and_task_filter():
    p = make_plan(task="embedding")
    assert p.step("fake-pick").input == "@leader"


def test_plan_is_frozen():
    p = make_plan()
    with pytest.raises(ValidationError, match="frozen"):
        p.framework = "other"


def test_invalid_pass_config_in_a_recipe_is_caught_before_running():
    bad = {"fake": recipe("fake", config={"bits": 3}), "other": recipe("other")}
    with pytest.raises(PlanError, match="bits"):
        make_plan(recipes=bad)


def test_unknown_pass_name_suggests_the_closest():
    bad = {"fake": recipe("fake", **{"pass": "fake.shrnk"}), "other": recipe("other")}
    with pytest.raises(PlanError, match="did you mean fake.shrink"):
        make_plan(recipes=bad)


def test_measurements_for_another_device_are_labelled_host():
    assert make_plan().provenance == "measured-host"
    assert any("not on" in n for n in make_plan().notes)


def test_real_recipes_plan_for_every_catalog_target():
    from edgeopt.hostinfo import detect_host
    from edgeopt.recipes import load_recipes

    reg = default_registry()
    for t in load_catalog(host=detect_host()).targets:
        p = plan(manifest("embedding", "sentence-transformers"), t, load_recipes(), reg, load_gate_policies())
        assert p.frameworks[0] == p.framework and p.baseline_framework == "onnxruntime"
        assert p.baseline == "export" and p.steps[0].pass_name == "hf.export_onnx"
        assert all(s.role == "candidate" for s in p.steps[1:])


def _everything_installed() -> Registry:
    reg = default_registry()
    return Registry(reg.entries, MappingProxyType({e.name: Availability(True, "1.0") for e in reg.entries if e.implemented}))


def test_intel_targets_prefer_openvino_and_search_onnx_runtime_beside_it():
    from edgeopt.recipes import load_recipes

    p = plan(manifest("classification"), load_catalog().resolve("intel-n100"), load_recipes(), _everything_installed(),
             load_gate_policies())
    assert p.framework == "openvino" and p.frameworks == ("openvino", "onnxruntime")
    assert "OpenVINO" in p.framework_reason and "searched beside it" in p.framework_reason
    assert p.baseline_framework == "onnxruntime"  # the ONNX model as given is the reference for both
    by_id = {s.id: s for s in p.steps}
    assert by_id["ov-int8"].input == "ov-fp32" and by_id["ov-fp32"].input == "source"
    # accuracy control is driven by the accuracy gate: 0.95 retained → at most a 5% relative drop
    assert by_id["ov-int8-acc"].config["max_drop"] == 0.05 and by_id["ov-int8-acc"].needs_validation
    strict = plan(manifest("classification", gates={"accuracy_retained": 0.99}), load_catalog().resolve("intel-n100"),
                  load_recipes(), _everything_installed(), load_gate_policies())
    assert {s.id: s for s in strict.steps}["ov-int8-acc"].config["max_drop"] == 0.01
    lossless = plan(manifest("classification", gates={"accuracy_retained": 1.0}), load_catalog().resolve("intel-n100"),
                    load_recipes(), _everything_installed(), load_gate_policies())
    assert {s.id: s for s in lossless.steps}["ov-int8-acc"].config["max_drop"] == 0.0001


def test_arm_boards_do_not_get_openvino():
    from edgeopt.recipes import load_recipes

    p = plan(manifest("classification"), load_catalog().resolve("rk3566"), load_recipes(), _everything_installed(),
             load_gate_policies())
    assert "openvino" not in p.frameworks and not any(s.id.startswith("ov-") for s in p.steps)
