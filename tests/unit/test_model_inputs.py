"""Inputs as the model declares them: batch axes, scalars and constants, and the data checked against them.
Pure logic: declared inputs are written out, no model file or runtime is needed."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeopt.datafiles import InputLayout, load_samples, save_arrays
from edgeopt.errors import ExitStatus, ManifestError
from edgeopt.frameworks.base import GraphSession, InputInfo
from edgeopt.inputs import DeclaredInput, batch_symbol, input_layouts
from edgeopt.manifest import load_manifest

STREAMING = [DeclaredInput("input", ("batch", 64), "float32"), DeclaredInput("state", (2, "batch", 16), "float32"),
             DeclaredInput("sr", (), "int64")]


def manifest(tmp_path: Path, inputs: list | None = None):
    data = {"name": "vad", "model": {"path": "vad.onnx", "format": "onnx"},
            "evaluation": {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "fidelity"}}}
    if inputs is not None:
        data["inputs"] = inputs
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_manifest(path)


def data(samples: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"input": rng.normal(size=(samples, 64)).astype(np.float32),
            "state": rng.normal(size=(samples, 2, 16)).astype(np.float32)}


def problems(caught) -> str:
    return "\n".join(p.render() for p in caught.value.problems)


def test_a_recurrent_state_takes_its_batch_where_the_model_names_it_and_a_constant_comes_from_the_manifest(tmp_path):
    layouts = input_layouts(manifest(tmp_path, [{"name": "sr", "value": 16000}]), STREAMING, data(), "evaluation.data")
    assert layouts["input"] == InputLayout(batch_axis=0)
    assert layouts["state"] == InputLayout(batch_axis=1)
    assert layouts["sr"] == InputLayout(batch_axis=None, value=16000, dtype="int64")


def test_samples_are_fed_with_each_batch_on_its_axis_and_constants_added(tmp_path):
    arrays = data()
    layout = {"input": InputLayout(0), "state": InputLayout(1), "sr": InputLayout(None, 16000, "int64")}
    path = save_arrays(tmp_path / "eval.npz", arrays, np.arange(8), layout)
    samples = load_samples(path, limit=5)
    assert samples.count == 5 and list(samples.labels) == [0, 1, 2, 3, 4]
    feeds = samples.feed(1, 4)
    assert feeds["input"].shape == (3, 64)
    assert feeds["state"].shape == (2, 3, 16)
    np.testing.assert_array_equal(feeds["state"][:, 0], arrays["state"][1])  # sample 1 is batch entry 0
    assert feeds["sr"].shape == () and feeds["sr"].dtype == np.int64 and int(feeds["sr"]) == 16000


def test_a_scalar_read_from_the_data_takes_the_batchs_first_value():
    from edgeopt.datafiles import Samples

    samples = Samples({"x": np.zeros((4, 3), np.float32), "gain": np.array([2.0, 3.0, 4.0, 5.0])}, None,
                      {"gain": InputLayout(batch_axis=None)})
    feeds = samples.feed(2, 4)
    assert feeds["gain"].shape == () and float(feeds["gain"]) == 4.0


def test_an_unnamed_batch_axis_is_the_free_one_and_a_wrong_batch_axis_gives_the_line_that_fixes_it(tmp_path):
    declared = [STREAMING[0], DeclaredInput("state", (2, None, 16), "float32"), STREAMING[2]]
    constant = {"name": "sr", "value": 16000}
    assert input_layouts(manifest(tmp_path, [constant]), declared, data(), "e")["state"].batch_axis == 1
    with pytest.raises(ManifestError) as caught:
        input_layouts(manifest(tmp_path, [constant, {"name": "state", "batch_axis": 0}]), declared, data(),
                      "evaluation.data")
    text = problems(caught)
    assert "state: the model wants [2, ?, 16]; your data gives [8, 2, 16]" in text
    assert "`batch_axis: 1`" in text and "`[2, batch, 16]`" in text
    assert caught.value.exit_status == ExitStatus.USAGE
    # and the line it names does fix it
    fixed = manifest(tmp_path, [constant, {"name": "state", "batch_axis": 1}])
    assert input_layouts(fixed, declared, data(), "evaluation.data")["state"].batch_axis == 1


def test_data_stored_in_the_models_own_layout_is_told_to_be_samples_first(tmp_path):
    arrays = {**data(), "state": np.zeros((2, 8, 16), np.float32)}  # [2, batch, 16], as the model takes it
    with pytest.raises(ManifestError) as caught:
        input_layouts(manifest(tmp_path, [{"name": "sr", "value": 16000}]), STREAMING, arrays, "evaluation.data")
    text = problems(caught)
    assert "state: your data [2, 8, 16] looks like the model's own layout [2, batch, 16]" in text
    assert "store it as [8, 2, 16] (numpy: np.moveaxis(state, 1, 0))" in text


def test_every_mismatch_is_named_at_once(tmp_path):
    arrays = {"input": np.zeros((8, 32), np.float32), "state": np.zeros((8, 2, 16), np.float32)}
    with pytest.raises(ManifestError) as caught:
        input_layouts(manifest(tmp_path, [{"name": "sample_rate", "value": 16000}]), STREAMING, arrays,
                      "evaluation.data")
    text = problems(caught)
    assert "the model has no input 'sample_rate'; it has input, state, sr" in text
    assert "input: the model wants [batch, 64]; your data gives [8, 32]" in text
    assert "'sr' [] has no array in the data" in text and "value:" in text
    assert len(caught.value.problems) == 3


def test_float_data_for_an_integer_input_is_refused(tmp_path):
    declared = [DeclaredInput("input_ids", ("batch", "sequence"), "int64")]
    with pytest.raises(ManifestError) as caught:
        input_layouts(manifest(tmp_path), declared, {"input_ids": np.zeros((4, 7), np.float32)}, "evaluation.data")
    assert "input_ids: the model wants int64; your data holds float32" in problems(caught)


def test_a_constant_of_the_wrong_shape_and_a_shape_that_contradicts_the_model_are_refused(tmp_path):
    bad = manifest(tmp_path, [{"name": "sr", "value": [16000, 8000]}, {"name": "input", "shape": ["batch", 32]}])
    with pytest.raises(ManifestError) as caught:
        input_layouts(bad, STREAMING, data(), "evaluation.data")
    text = problems(caught)
    assert "inputs.sr.value: a value of shape [2]; the model wants []" in text
    assert "inputs.input: the manifest says shape [batch, 32], the model declares [batch, 64]" in text


def test_fixed_batch_models_and_image_models_keep_axis_zero(tmp_path):
    declared = [DeclaredInput("images", (1, 3, 8, 8), "float32")]
    layouts = input_layouts(manifest(tmp_path), declared, {"images": np.zeros((5, 3, 8, 8), np.float32)}, "e")
    assert layouts["images"].batch_axis == 0


def test_the_batch_name_is_the_one_the_inputs_share():
    assert batch_symbol([DeclaredInput("x", ("frames", 64), None), DeclaredInput("s", (2, "frames", 16), None)]) \
        == "frames"
    assert batch_symbol([DeclaredInput("x", (1, 3, 8, 8), None)]) is None
    assert batch_symbol([DeclaredInput("ids", ("sequence", "batch_size"), None)]) == "batch_size"


def test_manifest_refuses_a_batch_axis_outside_the_shape_or_on_a_constant(tmp_path):
    with pytest.raises(ManifestError) as caught:
        manifest(tmp_path, [{"name": "state", "shape": [2, 16], "batch_axis": 2}])
    assert "batch_axis 2 is outside shape [2, 16]" in str(caught.value)
    with pytest.raises(ManifestError) as caught:
        manifest(tmp_path, [{"name": "sr", "value": 16000, "batch_axis": 0}])
    assert "a constant (`value`) has no batch axis" in str(caught.value)


@pytest.mark.parametrize("value", [[[1, 2], [3]], ["a", "b"], [[True, None]]])
def test_a_constant_that_is_not_a_rectangular_array_of_numbers_is_refused(tmp_path, value):
    with pytest.raises(ManifestError) as caught:
        manifest(tmp_path, [{"name": "sr", "value": value}])
    assert "a number or a rectangular list of numbers" in str(caught.value)
    assert caught.value.exit_status == ExitStatus.USAGE


class Accumulator(GraphSession):
    """A streaming model in numpy: output = input + state, and the next state is state + input (a running
    sum); state is [2, batch, 3], batch on axis 1."""

    output_names = ["output", "stateN"]

    def __init__(self):
        self.inputs = [InputInfo("input", ("batch", 3), np.dtype("float32")),
                       InputInfo("state", (2, "batch", 3), np.dtype("float32"))]
        self.calls = 0

    def run(self, feeds):
        self.calls += 1
        state = feeds["state"]
        return [feeds["input"] + state[0], state + feeds["input"][None]]


def test_a_recurrent_input_carries_each_calls_output_to_the_next_and_restarts_each_sequence():
    from edgeopt.datafiles import Samples
    from edgeopt.measure.accuracy import outputs_of

    steps = np.ones((6, 3), np.float32)
    layout = {"state": InputLayout(batch_axis=1, dtype="float32", from_output="stateN", initial=0.0, shape=[2, 3],
                                   sequence_length=3)}
    session = Accumulator()
    outputs = outputs_of(session, Samples({"input": steps}, None, layout), "output", batch=16)
    # running sums 1, 2, 3 within each sequence of three, restarting at the fourth sample
    assert outputs[:, 0].tolist() == [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    assert session.calls == 6  # one sample per call, in order (a batch of 16 would lose the order)
    # where calls are not chained (timing one step), the state is its initial value, batch on its axis
    assert Samples({"input": steps}, None, layout).feed(0, 4)["state"].shape == (2, 4, 3)


def test_a_recurrent_input_needs_an_output_of_that_name_and_known_sizes(tmp_path):
    from edgeopt.inputs import DeclaredOutput

    outputs = [DeclaredOutput("output", ("batch", 1), "float32"), DeclaredOutput("stateN", (2, "batch", 16), "float32")]
    ok = manifest(tmp_path, [{"name": "sr", "value": 16000}, {"name": "state", "from_output": "stateN"}])
    arrays = {"input": data()["input"]}
    layouts = input_layouts(ok, STREAMING, arrays, "evaluation.data", outputs)
    assert layouts["state"] == InputLayout(batch_axis=1, dtype="float32", from_output="stateN", initial=0.0,
                                           shape=[2, 16], sequence_length=None)
    typo = manifest(tmp_path, [{"name": "sr", "value": 16000}, {"name": "state", "from_output": "state_n"}])
    with pytest.raises(ManifestError) as caught:
        input_layouts(typo, STREAMING, arrays, "evaluation.data", outputs)
    assert "the model has no output 'state_n'" in problems(caught) and "stateN" in problems(caught)
    unsized = [STREAMING[0], DeclaredInput("state", (2, "batch", "hidden"), "float32"), STREAMING[2]]
    with pytest.raises(ManifestError) as caught:
        input_layouts(ok, unsized, arrays, "evaluation.data", outputs)
    assert "give every size but the batch's" in problems(caught)
