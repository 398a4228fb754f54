"""The OpenVINO + NNCF adapter against the real openvino and nncf packages."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeopt.errors import ExitStatus

pytestmark = [pytest.mark.openvino, pytest.mark.onnxruntime]
pytest.importorskip("openvino")
pytest.importorskip("nncf")

AUDIT = Path(__file__).resolve().parents[1] / "netaudit"
LENIENT = {"accuracy_retained": 0.5, "speedup": 0.01, "memory_cut": -10.0}


@pytest.fixture(scope="module")
def ov_build(tmp_path_factory):
    """One OpenVINO-only build of the MLP, every worker under the network audit."""
    from tests.conftest import run_cli
    from tests.integration.conftest import write_mlp_project

    root = tmp_path_factory.mktemp("ov")
    manifest = write_mlp_project(root)(gates=LENIENT, search={"frameworks": ["openvino"]})
    audit = root / "network.log"
    result = run_cli("build", str(manifest), "--out", str(root / "out"), "--quiet",
                     environ={"PATH": "/usr/bin:/bin", "EDGEOPT_CACHE_DIR": str(root / "cache"),
                              "PYTHONPATH": str(AUDIT), "EDGEOPT_NET_AUDIT": str(audit)})
    assert result.status == ExitStatus.OK, result.stderr
    return root / "out", json.loads((root / "out" / "report.json").read_text()), audit


def test_openvino_candidates_are_converted_quantized_tuned_and_measured(ov_build):
    out, report, _ = ov_build
    by_id = {c["id"]: c for c in report["candidates"]}
    assert report["plan"]["frameworks"] == ["openvino"] and report["baseline"]["framework"] == "onnxruntime"
    for step in ("ov-fp16", "ov-fp32", "ov-int8"):
        assert by_id[step]["status"] == "ok", by_id[step]["error"]
        assert by_id[step]["framework"] == "openvino" and by_id[step]["model_path"].endswith("model.xml")
    assert by_id["ov-fp16"]["metrics"]["size_mb"] < 0.6 * by_id["ov-fp32"]["metrics"]["size_mb"]
    assert by_id["ov-int8"]["lineage"][-1]["notes"]["fake_quantize_nodes"] > 0
    assert by_id["ov-int8"]["metrics"]["size_mb"] < 0.4 * by_id["ov-fp32"]["metrics"]["size_mb"]
    assert by_id["ov-int8"]["ratios"]["accuracy_retained"] > 0.9
    # with a lenient gate NNCF reverts nothing, and accuracy control makes the plain int8 model again
    assert by_id["ov-int8-acc"]["status"] == "duplicate" and by_id["ov-int8-acc"]["same_as"] == "ov-int8"
    notes = json.loads((out / "steps" / "ov-int8-acc" / "pass" / "response.json").read_text())
    notes = notes["result"]["artifact"]["lineage"][-1]["notes"]
    assert notes["drop_type"] == "relative" and notes["max_drop"] == 0.5 and notes["reverted_to_float"] == []
    # the leader made static: its batch axis fixed to the timed batch's, in the IR itself
    fixed = by_id["ov-fixed"]
    assert fixed["status"] in ("ok", "duplicate") and fixed["lineage"][-1]["notes"]["fixed_shapes"] == {"x": [1, 64]}
    import openvino as ov

    static = ov.Core().read_model(str(out / "steps" / "ov-fixed" / "model" / "model.xml"))
    assert [list(port.get_shape()) for port in static.inputs] == [[1, 64]]


def test_openvino_candidates_say_the_precision_they_ran_in(ov_build):
    from edgeopt.hostinfo import detect_host

    _, report, _ = ov_build
    by_id = {c["id"]: c for c in report["candidates"]}
    # read back from the compiled model: an "fp32" IR runs in f32 only because edgeopt says so
    assert by_id["ov-fp32"]["metrics"]["execution_precision"] == "f32"
    assert by_id["ov-fp16"]["metrics"]["execution_precision"] == "f32"
    if "avx512_bf16" in detect_host().isa or "amx_bf16" in detect_host().isa:
        bf16 = by_id["ov-bf16-exec"]
        assert bf16["metrics"]["execution_precision"] == "bf16" and bf16["precision"] == "fp32-bf16-exec"
    else:
        assert "ov-bf16-exec" not in by_id
    tuned = [c for c in report["candidates"] if c["id"].startswith("ov-tuned")]
    assert len(tuned) == 4 and all(c["status"] == "ok" for c in tuned)
    for c in tuned:
        assert c["metrics"]["threads"] == c["runtime_config"]["inference_num_threads"]
    assert report["environment"]["frameworks"]["openvino"]


def test_no_openvino_or_nncf_call_reaches_for_the_network(ov_build):
    _, _, audit = ov_build
    assert not audit.exists() or audit.read_text() == "", audit.read_text()


def test_accuracy_control_reverts_layers_when_int8_loses_too_much(cli, mlp_project, tmp_path):
    """A strict gate (99.9% retained) on a model whose int8 version drops: NNCF must restore layers."""
    manifest = mlp_project(gates={"accuracy_retained": 0.999, "speedup": 0.01, "memory_cut": -10.0},
                           # named steps, not a candidate count: which convert steps exist depends on the
                           # CPU (bf16 units add ov-bf16-exec), and a count then ran out before ov-int8-acc
                           search={"frameworks": ["openvino"], "only": ["ov-int8", "ov-int8-acc"]})
    result = cli("build", str(manifest), "--out", str(tmp_path), "--quiet")
    report = json.loads((tmp_path / "report.json").read_text())
    by_id = {c["id"]: c for c in report["candidates"]}
    acc = by_id["ov-int8-acc"]
    plain = by_id["ov-int8"]["ratios"]["accuracy_retained"]
    if plain < 0.999 and acc["status"] == "duplicate":
        # every quantized layer went back to float: that is the fp32 model, recognised as such
        assert acc["same_as"] == "ov-fp32"
        notes = json.loads((tmp_path / "steps" / "ov-int8-acc" / "pass" / "response.json").read_text())
        assert notes["result"]["artifact"]["lineage"][-1]["notes"]["reverted_count"] >= 1
    elif plain < 0.999:  # plain int8 lost accuracy: layers were reverted, and that recovered accuracy
        assert acc["status"] == "ok", acc["error"]
        notes = acc["lineage"][-1]["notes"]
        assert notes["reverted_count"] >= 1 and notes["reverted_to_float"]
        assert acc["ratios"]["accuracy_retained"] >= plain
    else:  # NNCF reverted nothing: the same model as plain int8, recorded as such and not timed twice
        assert acc["status"] == "duplicate" and acc["same_as"] == "ov-int8", acc
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED)


def test_the_measured_latency_agrees_with_benchmark_app(ov_build, tmp_path):
    benchmark_app = shutil.which("benchmark_app") or str(Path(__import__("sys").executable).parent / "benchmark_app")
    if not Path(benchmark_app).exists():
        pytest.skip("benchmark_app is not installed with openvino")
    _, report, _ = ov_build
    one_thread = next(c for c in report["candidates"] if c["id"] == "ov-tuned-phlatency-int1")
    # benchmark_app is an OpenVINO tool with telemetry: a home whose consent file says no
    (tmp_path / "intel").mkdir()
    (tmp_path / "intel" / "openvino_telemetry").write_text("0")
    run = subprocess.run([benchmark_app, "-m", one_thread["model_path"], "-d", "CPU", "-hint", "none", "-nthreads", "1",
                          "-nstreams", "1", "-api", "sync", "-niter", "500", "-shape", "x[1,64]"],
                         capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    value, unit = re.search(r"Median:\s+([\d.]+) (ms|us)", run.stdout).groups()
    median = float(value) / (1000 if unit == "us" else 1)
    ours = one_thread["metrics"]["latency_ms"]["p50"]
    # the same order of magnitude; our worker's Python call adds some tens of microseconds on top
    assert median / 10 < ours < median * 10 + 0.05, (ours, median)


def test_an_openvino_package_verifies_and_runs(ov_build, cli):
    out, report, _ = ov_build
    result = cli("package", str(out), "--candidate", "ov-int8")
    assert result.status == ExitStatus.OK, result.stderr
    archive = Path(result.stdout.strip())
    verified = cli("verify", str(archive))
    assert verified.status == ExitStatus.OK, verified.stderr
    assert "logits: shape [1, 10]" in verified.stdout
    import tarfile

    with tarfile.open(archive) as tar:
        descriptor = json.load(tar.extractfile("edgeopt-artifact.json"))
        assert {"model/model.xml", "model/model.bin"} <= set(tar.getnames())
    assert descriptor["runtime"]["package"] == "openvino" and descriptor["model"]["format"] == "openvino-ir"


def test_the_worst_candidate_gets_a_per_layer_diagnosis(cli, mlp_project, tmp_path):
    # fp16 weights barely move the MLP; int4 would, but the MLP is a classifier: a static int8 of ORT
    # with a deliberately poor calibration set (all zeros) is the candidate that loses accuracy
    import numpy as np

    # (max_candidates: int8-static is the 7th ONNX Runtime step for an ONNX source, after three convert steps,
    # int8-dynamic, int8-dynamic-pc and int8-dynamic-pc-emb)
    manifest = mlp_project(gates=LENIENT, search={"frameworks": ["onnxruntime"], "max_candidates": 7})
    np.savez(manifest.parent / "calib.npz", x=np.zeros((64, 64), np.float32) + 0.01)
    result = cli("build", str(manifest), "--out", str(tmp_path), "--quiet")
    assert result.status == ExitStatus.OK, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    diagnosis = report["diagnosis"]
    assert diagnosis is not None, [(c["id"], c["ratios"].get("accuracy_retained")) for c in report["candidates"]]
    assert diagnosis["compared_layers"] >= 2 and diagnosis["layers"]
    cosines = [layer["cosine"] for layer in diagnosis["layers"]]
    assert cosines == sorted(cosines) and cosines[0] < 0.999
    assert "<h2>Accuracy diagnosis</h2>" in (tmp_path / "report.html").read_text()


def test_mixed_precision_leaves_out_of_nncf_the_node_whose_input_has_outliers(tmp_path):
    import numpy as np
    import openvino as ov

    from edgeopt.artifact import ModelArtifact
    from edgeopt.frameworks.openvino.passes import Convert, Quantize
    from edgeopt.passes import NothingToDo, PassContext
    from tests.integration.onnxruntime.test_build import _three_layers

    _three_layers(tmp_path / "model.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(1).normal(size=(16, 16)).astype(np.float32))
    onnx_model = ModelArtifact(path=str(tmp_path / "model.onnx"), format="onnx", framework="onnxruntime")
    ir = Convert().apply(Convert.Config(compress_to_fp16=False), onnx_model,
                         PassContext(output_dir=tmp_path / "ir", step="ov-fp32"))
    context = PassContext(output_dir=tmp_path / "out", step="q", calibration_data=tmp_path / "calib.npz")
    made = Quantize().apply(Quantize.Config(keep_float=1), ir, context)
    kept = made.lineage[-1].notes["kept_float"]
    assert len(kept) == 1 and made.precision == "int8-mixed"
    matmuls = {op.get_friendly_name(): op for op in ov.Core().read_model(made.path).get_ordered_ops()
               if op.get_type_name() == "MatMul"}

    def quantized_input(op) -> bool:
        return op.input_value(0).get_node().get_type_name() == "FakeQuantize"

    # the kept node reads the output of the MatMul whose weights carry the outlier column (onnx node "a")
    source = matmuls[kept[0]].input_value(0).get_node()
    first = source.input_value(0).get_node()
    first = first.input_value(0).get_node() if first.get_type_name() == "FakeQuantize" else first
    assert source.get_type_name() == "MatMul" and first.get_type_name() == "Parameter"
    assert not quantized_input(matmuls[kept[0]])
    assert sum(quantized_input(op) for name, op in matmuls.items() if name != kept[0]) == 2
    with pytest.raises(NothingToDo, match="quantized no node"):
        Quantize().apply(Quantize.Config(keep_float=3), ir, context)


def test_nodes_that_read_one_tensor_each_get_that_tensor_as_their_activation(tmp_path):
    """Query, key and value projections read one tensor: OpenVINO adds one Result for it, and the ranking must not
    shift every later node onto the next node's input."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgeopt.frameworks.openvino.passes import _input_activations
    from edgeopt.frameworks.openvino.runtime import ov

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=(4, 4)).astype(np.float32), n) for n in ("wa", "wb", "wc")]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("MatMul", ["r", "wa"], ["a"], name="a"),
         helper.make_node("MatMul", ["r", "wb"], ["b"], name="b"), helper.make_node("Add", ["a", "b"], ["s"], name="s"),
         helper.make_node("MatMul", ["s", "wc"], ["y"], name="c")],
        "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    model = ov().convert_model(str(tmp_path / "m.onnx"))
    matmuls = [op for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"]
    x = rng.normal(size=(1, 4)).astype(np.float32)
    got = _input_activations(model, matmuls, [{"x": x}])
    relu = np.maximum(x, 0).reshape(-1)
    wa, wb = (numpy_helper.to_array(w) for w in weights[:2])
    first, second, last = (op.get_friendly_name() for op in matmuls)
    np.testing.assert_allclose(got[first], relu, rtol=1e-5)
    np.testing.assert_allclose(got[second], relu, rtol=1e-5)
    np.testing.assert_allclose(got[last], (relu @ wa + relu @ wb).reshape(-1), rtol=1e-4, atol=1e-5)
