"""A streaming model as a new user brings it: a recurrent state with its batch on axis 1 and an int64
scalar sample rate. Built end to end against the real onnxruntime (and OpenVINO + NNCF where installed)."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeopt.errors import ExitStatus
from tests.integration.conftest import settled, tiny_streaming

pytestmark = pytest.mark.onnxruntime
onnxruntime = pytest.importorskip("onnxruntime")


def streaming_project(root: Path, frameworks: list[str], inputs: list | None = None, batch_name: str = "batch",
                      only: list[str] | None = None):
    tiny_streaming(root / "vad.onnx", batch_name=batch_name)
    rng = np.random.default_rng(3)
    np.savez(root / "eval.npz", input=rng.normal(size=(48, 64)).astype(np.float32),
             state=rng.normal(size=(48, 2, 16)).astype(np.float32))  # samples first, as every data file
    manifest = {
        "name": "vad", "model": {"path": "vad.onnx", "format": "onnx"},
        "inputs": inputs if inputs is not None else [{"name": "sr", "value": 16000}],
        "evaluation": {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "fidelity", "output": "output"},
                       "batch_size": 8},
        "calibration": {"samples": 16},
        "measure": {"warmup_runs": 2, "min_runs": 5, "max_runs": 30, "time_budget_s": 0.1, "rounds": 2},
        "search": {"frameworks": frameworks, "only": only},
    }
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return root / "manifest.yaml"


def test_a_streaming_model_builds_with_its_state_batched_on_axis_1_and_a_constant_sample_rate(cli, tmp_path):
    out = tmp_path / "out"
    manifest = streaming_project(tmp_path, ["onnxruntime"], only=["int8-dynamic", "int8-static", "fp16"])
    import onnx  # the state's batch axis left unnamed: its one free axis is the batch's

    model = onnx.load(str(tmp_path / "vad.onnx"))
    model.graph.input[1].type.tensor_type.shape.dim[1].Clear()
    onnx.save(model, str(tmp_path / "vad.onnx"))
    result = cli("build", str(manifest), "--out", str(out), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"]["status"] == "ok", report["baseline"]
    by_id = {c["id"]: c for c in report["candidates"]}
    # every candidate ran (a float, dynamic and static int8, fp16), the calibrated one included: its calibration
    # reader feeds the same way
    assert by_id["int8-static"]["status"] == "ok", by_id["int8-static"]
    assert all(settled(c) for c in report["candidates"]), \
        [(c["id"], c.get("error")) for c in report["candidates"] if not settled(c)]
    # the data file the workers read keeps samples first and says how they are fed
    with np.load(out / "data" / "eval.npz") as data:
        assert data["state"].shape == (48, 2, 16) and "sr" not in data.files
        layout = json.loads(str(data["__layout__"]))
    assert layout["state"]["batch_axis"] == 1 and layout["sr"] == {"batch_axis": None, "value": 16000, "dtype": "int64"}


def test_data_that_does_not_fit_is_exit_2_naming_the_input_and_the_fix_before_any_pass(cli, tmp_path):
    manifest = streaming_project(tmp_path, ["onnxruntime"], inputs=[{"name": "sr", "value": 16000}])
    with np.load(tmp_path / "eval.npz") as data:  # the state stored as the model takes it, not samples first
        np.savez(tmp_path / "eval.npz", input=data["input"], state=np.moveaxis(data["state"], 0, 1))
    result = cli("build", str(manifest), "--out", str(tmp_path / "out"))
    assert result.status == ExitStatus.USAGE, result.stderr
    assert "state: your data [2, 48, 16] looks like the model's own layout [2, batch, 16]" in result.stderr
    assert "np.moveaxis(state, 1, 0)" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "steps").exists()  # stopped before any pass ran

    manifest = streaming_project(tmp_path, ["onnxruntime"], inputs=[])  # and no value for sr
    result = cli("build", str(manifest), "--out", str(tmp_path / "out2"))
    assert result.status == ExitStatus.USAGE
    assert "'sr' [] has no array in the data" in result.stderr and "value:" in result.stderr


@pytest.mark.openvino
def test_openvino_and_nncf_run_the_streaming_model_carrying_its_state(cli, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    out = tmp_path / "out"
    manifest = streaming_project(tmp_path, ["openvino"], batch_name="frames",
                                 inputs=[{"name": "sr", "value": 16000}, {"name": "state", "from_output": "stateN"}],
                                 only=["ov-int8"])  # and ov-fp32, whose model NNCF reads
    result = cli("build", str(manifest), "--out", str(out), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    by_id = {c["id"]: c for c in json.loads((out / "report.json").read_text())["candidates"]}
    for candidate in ("ov-fp32", "ov-int8"):  # converted, and quantized by NNCF on the same feeds
        assert by_id[candidate]["status"] == "ok", by_id[candidate]


@pytest.mark.openvino
def test_an_operator_openvino_cannot_convert_is_named_in_the_candidates_error(cli, mlp_project, tmp_path):
    pytest.importorskip("openvino")
    import onnx
    from onnx import TensorProto, helper

    # Det: ONNX Runtime runs it (so the baseline does), OpenVINO has no conversion rule for it
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["m"]), helper.make_node("Det", ["m"], ["d"]),
         helper.make_node("Unsqueeze", ["d", "one"], ["y"])],
        "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 3, 3]),
         helper.make_tensor("one", TensorProto.INT64, [1], [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "det.onnx"))
    np.savez(tmp_path / "eval.npz", x=np.random.default_rng(0).normal(size=(16, 9)).astype(np.float32))
    manifest = {"name": "det", "model": {"path": "det.onnx", "format": "onnx"},
                "evaluation": {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "fidelity"}},
                "measure": {"warmup_runs": 1, "min_runs": 3, "max_runs": 10, "time_budget_s": 0.05, "rounds": 1},
                "search": {"frameworks": ["openvino"], "max_candidates": 1}}
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    out = tmp_path / "out"
    result = cli("build", str(tmp_path / "manifest.yaml"), "--out", str(out), "--quiet")
    assert result.status == ExitStatus.GATES_FAILED, result.stderr
    failed = [c for c in json.loads((out / "report.json").read_text())["candidates"] if c["status"] == "failed"]
    assert failed, "the conversion should have failed"
    assert failed[0]["error"].startswith("ConversionFailed: OpenVINO cannot convert 1 operator type(s): Det"), failed[0]
    assert "unconverted_ops_report" in failed[0]["error_detail"]  # OpenVINO's own text is kept below


def test_init_writes_a_manifest_from_what_the_model_declares(cli, tmp_path):
    from edgeopt.manifest import load_manifest

    tiny_streaming(tmp_path / "vad.onnx")
    out = tmp_path / "manifest.yaml"
    result = cli("init", str(tmp_path / "vad.onnx"), "--out", str(out))
    assert result.status == ExitStatus.OK, result.stderr
    text = out.read_text()
    assert "TODO: arrays input [N, 64], state [N, 2, 16]" in text  # what the data file must hold, samples first
    assert "value: 16000" in text  # the scalar is pointed out as a likely constant
    assert '`from_output: "stateN"`' in text  # and the input shaped like an output as a likely state
    manifest = load_manifest(out)  # what it writes is a valid manifest
    assert manifest.model.path == str(tmp_path / "vad.onnx") and manifest.evaluation.metric.name == "fidelity"
    assert [(i.name, i.shape, i.dtype) for i in manifest.inputs] == [
        ("input", ["batch", 64], "float32"), ("state", [2, "batch", 16], "float32"), ("sr", [], "int64")]
    # it does not overwrite what a user wrote
    again = cli("init", str(tmp_path / "vad.onnx"), "--out", str(out))
    assert again.status == ExitStatus.USAGE and "--force" in again.stderr


def test_init_guesses_a_classifier_from_its_output(cli, tmp_path):
    from tests.integration.conftest import tiny_mlp

    tiny_mlp(tmp_path / "mlp.onnx")
    result = cli("init", str(tmp_path / "mlp.onnx"), "--out", str(tmp_path / "m.yaml"))
    assert result.status == ExitStatus.OK, result.stderr
    text = (tmp_path / "m.yaml").read_text()
    assert "task: classification" in text and "name: top1" in text and "and `labels` for top1" in text


def test_a_streaming_models_state_is_carried_from_call_to_call_in_evaluation(cli, tmp_path):
    manifest = streaming_project(tmp_path, ["onnxruntime"],
                                 inputs=[{"name": "sr", "value": 16000}, {"name": "state", "from_output": "stateN"}],
                                 only=["int8-dynamic", "int8-static"])
    spec = yaml.safe_load(manifest.read_text())
    spec["evaluation"]["sequence_length"] = 12
    manifest.write_text(yaml.safe_dump(spec))
    with np.load(tmp_path / "eval.npz") as data:
        steps = data["input"]
    np.savez(tmp_path / "eval.npz", input=steps)  # no state in the data: it comes from the model's own output
    out = tmp_path / "out"
    result = cli("build", str(manifest), "--out", str(out), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"]["status"] == "ok", report["baseline"]
    assert all(settled(c) for c in report["candidates"]), \
        [(c["id"], c.get("error")) for c in report["candidates"] if not settled(c)]
    # the baseline's reference outputs are those of the model run in order, carrying its state
    session = onnxruntime.InferenceSession(str(tmp_path / "vad.onnx"), providers=["CPUExecutionProvider"])
    expected, state = [], None
    for i, step in enumerate(steps):
        if i % 12 == 0:
            state = np.zeros((2, 1, 16), np.float32)
        output, state = session.run(None, {"input": step[None], "state": state, "sr": np.array(16000)})
        expected.append(output)
    reference = np.load(out / "steps" / "baseline" / "outputs.npy")
    np.testing.assert_allclose(reference, np.concatenate(expected), rtol=1e-5, atol=1e-6)
    # fed its initial value instead of carried, the outputs would differ: the carrying is what is measured
    zeros = np.zeros((2, 1, 16), np.float32)
    uncarried = np.concatenate([session.run(None, {"input": s[None], "state": zeros, "sr": np.array(16000)})[0]
                                for s in steps])
    assert not np.allclose(reference, uncarried, atol=1e-3)


def test_calibration_of_a_streaming_model_sees_the_states_the_float_model_carries(tmp_path):
    """Static quantization calibrates activation ranges: fed only the initial (zero) state, the state's range
    is wrong and the error compounds step after step (measured: fidelity 0.125 over 48 carried steps)."""
    from edgeopt.datafiles import InputLayout, save_arrays
    from edgeopt.frameworks.onnxruntime.passes import _samples

    tiny_streaming(tmp_path / "vad.onnx")
    steps = np.random.default_rng(0).normal(size=(6, 64)).astype(np.float32)
    layout = {"sr": InputLayout(batch_axis=None, value=16000, dtype="int64"),
              "state": InputLayout(batch_axis=1, dtype="float32", from_output="stateN", initial=0.0, shape=[2, 16],
                                   sequence_length=4)}
    data = save_arrays(tmp_path / "calib.npz", {"input": steps}, None, layout)
    feeds = _samples(data, str(tmp_path / "vad.onnx"), None)
    session = onnxruntime.InferenceSession(str(tmp_path / "vad.onnx"), providers=["CPUExecutionProvider"])
    assert len(feeds) == 6 and not feeds[0]["state"].any()  # each sequence starts at the initial state
    for i in (1, 2, 3, 5):  # then every call gets the state the previous one returned
        np.testing.assert_allclose(feeds[i]["state"], session.run(None, feeds[i - 1])[1], rtol=1e-6)
    assert not feeds[4]["state"].any()  # the second sequence restarts


def test_a_fixed_shape_candidate_takes_the_timed_batchs_shapes_and_a_static_model_skips_it(cli, mlp_project, tmp_path):
    import onnx

    out = tmp_path / "out"
    manifest = mlp_project(search={"frameworks": ["onnxruntime"], "max_candidates": 3})
    result = cli("build", str(manifest), "--out", str(out), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    fixed = {c["id"]: c for c in json.loads((out / "report.json").read_text())["candidates"]}["fp32-fixed"]
    assert fixed["status"] == "ok", fixed
    assert fixed["lineage"][-1]["notes"]["fixed_shapes"] == {"x": [1, 64]}  # measure.batch_size 1
    dims = onnx.load(fixed["model_path"]).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 64] and not any(d.dim_param for d in dims)
    # a model whose every input is already static has nothing to fix: skipped, not a duplicate candidate
    model = onnx.load(str(tmp_path / "mlp.onnx"))
    from onnxruntime.tools.onnx_model_utils import make_input_shape_fixed

    make_input_shape_fixed(model.graph, "x", [1, 64])
    onnx.save(model, str(tmp_path / "mlp.onnx"))
    result = cli("build", str(manifest), "--out", str(tmp_path / "out2"), "--quiet")
    records = {c["id"]: c for c in json.loads((tmp_path / "out2" / "report.json").read_text())["candidates"]}
    assert records["fp32-fixed"]["status"] == "skipped" and "already fixed" in records["fp32-fixed"]["error"]
