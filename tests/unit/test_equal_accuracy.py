"""Pure pieces of winning at equal accuracy: recipe entries that take an earlier entry's output, the
least-memory leader, whole-sentence text samples."""

import pytest
from pydantic import ValidationError

from edgeopt.candidates import leader
from edgeopt.datasets import sentences
from edgeopt.gates import load_gate_policies
from edgeopt.planner import plan
from edgeopt.recipes import Recipe
from tests.unit.test_gates_and_selection import record
from tests.unit.test_planner import manifest, registry, target


def fused_recipe(fused_when=None) -> Recipe:
    fused = {"id": "fake-fused", "pass": "fake.calibrated", "input": "source", **({"when": fused_when} if fused_when else {})}
    return Recipe(framework="fake", stages=[
        {"name": "convert", "passes": [fused, {"id": "fake-cal", "pass": "fake.calibrated", "input": "source"}]},
        {"name": "quantize", "passes": [{"id": "fake-small", "pass": "fake.shrink"},
                                        {"id": "fake-small-fused", "pass": "fake.shrink", "input": "fake-fused"}]},
        {"name": "accelerate", "passes": [{"id": "fake-lean", "pass": "fake.shrink", "input": "leader-memory"}]},
    ])


def plan_for(recipe: Recipe, task="classification"):
    return plan(manifest(task), target(("fake",)), {"fake": recipe}, registry(("fake",)), load_gate_policies())


def test_an_entry_can_take_an_earlier_entrys_output_and_the_least_memory_leader():
    p = plan_for(fused_recipe())
    assert p.step("fake-small").input == "fake-cal"  # the default: the last convert output
    assert p.step("fake-small-fused").input == "fake-fused"
    assert p.step("fake-lean").input == "@leader-memory"


def test_an_entry_whose_named_input_is_not_planned_is_skipped_with_the_reason():
    p = plan_for(fused_recipe(fused_when={"tasks": ["embedding"]}))
    skipped = {s.id: s.reason for s in p.skipped}
    assert "fake-fused" in skipped and skipped["fake-small-fused"] == "its input, fake-fused, is not planned"
    assert "fake-small-fused" not in {s.id for s in p.steps}


@pytest.mark.parametrize("named, why", [("nowhere", "nor an earlier entry"), ("fake-small-fused", "nor an earlier")])
def test_a_recipe_input_must_name_an_earlier_entry(named, why):
    stages = [{"name": "convert", "passes": [{"id": "fake-cal", "pass": "fake.calibrated", "input": "source"}]},
              {"name": "quantize", "passes": [{"id": "fake-small", "pass": "fake.shrink", "input": named},
                                              {"id": "fake-small-fused", "pass": "fake.shrink"}]}]
    with pytest.raises(ValidationError, match=why):
        Recipe(framework="fake", stages=stages)


def test_an_entry_with_a_space_cannot_be_named_as_an_input():
    # it makes several steps: which one would be meant?
    stages = [{"name": "convert", "passes": [{"id": "fake-cal", "pass": "fake.calibrated", "input": "source",
                                              "space": {"threads": [1, 2]}}]},
              {"name": "quantize", "passes": [{"id": "fake-small", "pass": "fake.shrink", "input": "fake-cal"}]}]
    with pytest.raises(ValidationError, match="without a space"):
        Recipe(framework="fake", stages=stages)


def test_the_memory_leader_is_the_least_peak_memory_among_those_keeping_accuracy():
    records = [record("fast", 1.0, rss=300), record("small", 3.0, rss=90), record("smallest-but-wrong", 2.0, (False, True), rss=50)]
    assert leader(records, "latency").id == "fast"
    assert leader(records, "memory").id == "small"


def test_text_is_split_into_whole_sentences_across_line_breaks():
    text = ("The licence grants you the right to\nrun the program. It also says \"do no harm.\" Then\n"
            "it ends (mostly).\n\n3. Definitions\nA heading without a full stop stays whole")
    assert sentences(text) == ["The licence grants you the right to run the program.", 'It also says "do no harm."',
                               "Then it ends (mostly).", "3.", "Definitions A heading without a full stop stays whole"]
