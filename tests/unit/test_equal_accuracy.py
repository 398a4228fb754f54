"""Pure pieces of winning at equal accuracy: recipe entries that take an earlier entry's output, the
least-memory leader, whole-sentence text samples."""

import numpy as np
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


def padded_samples():
    from edgeopt.datafiles import InputLayout, Samples

    ids = np.array([[5, 6, 0, 0, 0], [7, 8, 9, 4, 0], [3, 0, 0, 0, 0]])
    mask = (ids > 0).astype(np.int64)
    layout = {name: InputLayout(padded_by="attention_mask") for name in ("input_ids", "attention_mask")}
    return Samples({"input_ids": ids, "attention_mask": mask}, None, layout)


def test_padded_text_is_fed_cut_to_each_runs_longest_real_sequence():
    samples = padded_samples()
    assert samples.feed(0, 1)["input_ids"].tolist() == [[5, 6]]  # one sentence: as a user feeds it, unpadded
    assert samples.feed(0, 2)["attention_mask"].shape == (2, 4)  # a batch: to its longest
    assert samples.feed(2, 3)["input_ids"].tolist() == [[3]]
    from edgeopt.datafiles import Samples

    unmarked = Samples(samples.arrays, None)  # the timed batch: stored width, the data's longest case
    assert unmarked.feed(0, 1)["input_ids"].shape == (1, 5)


def test_a_model_with_a_fixed_sequence_length_gets_padded_inputs_padded_to_it():
    from edgeopt.frameworks.base import GraphSession, InputInfo

    class Fixed(GraphSession):
        inputs = [InputInfo("input_ids", (1, 4), np.dtype(np.int64)), InputInfo("attention_mask", (1, 4), None)]
        output_names = ["y"]

        def run(self, feeds):
            return [feeds["input_ids"]]

    feeds = Fixed().feeds(padded_samples(), 0, 1)
    assert feeds["input_ids"].tolist() == [[5, 6, 0, 0]] and feeds["attention_mask"].tolist() == [[1, 1, 0, 0]]


def test_the_text_loaders_padding_survives_the_manifests_layout_but_not_on_constants():
    from edgeopt.datafiles import InputLayout
    from edgeopt.datasets import Dataset

    padded = InputLayout(padded_by="attention_mask")
    data = Dataset({"input_ids": np.zeros((2, 3)), "attention_mask": np.ones((2, 3)), "token_type_ids": np.zeros((2, 3))},
                   None, {"input_ids": padded, "attention_mask": padded, "token_type_ids": padded})
    merged = data.with_layout({"input_ids": InputLayout(), "token_type_ids": InputLayout(batch_axis=None, value=0)})
    assert merged.layout["input_ids"].padded_by == "attention_mask" and merged.layout["attention_mask"] == padded
    assert merged.layout["token_type_ids"].padded_by is None and "token_type_ids" not in merged.inputs


def test_token_sequences_are_timed_on_the_median_length_samples():
    from edgeopt.datafiles import InputLayout
    from edgeopt.datasets import Dataset

    lengths = [9, 2, 5, 7, 3]  # median 5
    mask = np.array([[1] * n + [0] * (10 - n) for n in lengths])
    padded = InputLayout(padded_by="attention_mask")
    data = Dataset({"input_ids": mask * 7, "attention_mask": mask}, None, {"input_ids": padded, "attention_mask": padded})
    assert data.typical(1).inputs["attention_mask"].sum(axis=1).tolist() == [5]
    assert sorted(data.typical(3).inputs["attention_mask"].sum(axis=1).tolist()) == [3, 5, 7]
    assert data.typical(1).layout == data.layout  # still fed unpadded
    images = Dataset({"x": np.arange(5)}, None)
    assert images.typical(2).inputs["x"].tolist() == [0, 1]  # anything else: the first samples


def test_per_token_outputs_of_batches_of_different_lengths_are_joined_zero_padded():
    from edgeopt.measure.accuracy import _joined

    joined = _joined([np.ones((2, 3, 4)), np.ones((1, 5, 4))])
    assert joined.shape == (3, 5, 4) and joined[:2, 3:].sum() == 0 and joined[2].sum() == 20
    assert _joined([np.ones((2, 4)), np.ones((1, 4))]).shape == (3, 4)


def test_mixed_precision_ranks_first_the_node_whose_activations_have_outliers():
    from edgeopt.measure.diagnosis import quantization_sensitivity

    rng = np.random.default_rng(0)
    smooth = rng.normal(size=(8, 64))
    spiky = smooth.copy()
    spiky[:, 3] *= 60  # one outlier feature, as after a GELU: int8 steps sized to it crush the rest
    weights = rng.normal(size=(64, 16))
    nodes = [("calm", "a", weights), ("hurt", "b", weights), ("unmeasured", "graph-input", weights)]
    ranked = quantization_sensitivity(nodes, {"a": smooth, "b": spiky}, {"calm": None, "hurt": None})
    assert [name for name, _ in ranked] == ["hurt", "calm"]
    # per-channel weight scales: a weight outlier in one column costs less than over the whole tensor
    skewed = weights.copy()
    skewed[0, 5] = 40.0
    per_tensor = quantization_sensitivity([("w", "a", skewed)], {"a": smooth}, {"w": None})[0][1]
    per_channel = quantization_sensitivity([("w", "a", skewed)], {"a": smooth}, {"w": -1})[0][1]
    assert per_channel < per_tensor


def test_dynamic_quantization_reads_calibration_data_only_when_mixed_precision_asks():
    from edgeopt.frameworks.onnxruntime.passes import QuantizeDynamic, QuantizeDynamicConfig

    assert not QuantizeDynamic.calibrates(QuantizeDynamicConfig())
    assert QuantizeDynamic.calibrates(QuantizeDynamicConfig(keep_float=4))
