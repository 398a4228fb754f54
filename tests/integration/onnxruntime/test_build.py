"""End-to-end builds against the real onnxruntime package on a small real model."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgeopt.errors import ExitStatus

pytestmark = pytest.mark.onnxruntime
onnxruntime = pytest.importorskip("onnxruntime")


# the two int8 quantizers and the convert whose model they read: a test that reads no other candidate runs no
# other (a full search of both runtimes takes ~2.5 min on 2 cores, mostly worker start-ups)
INT8 = {"only": ["int8-dynamic", "int8-static"]}


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_build_measures_every_stage_and_writes_the_documented_report(cli, mlp_project, tmp_path):
    out = tmp_path / "out"
    # a candidate of each stage (and fp32-opt, whose model the quantizers read)
    every_stage = ["int8-dynamic", "int8-static", "fp16", "tuned-iot1-emaon", "tuned-iot2-emaon", "lean"]
    result = cli("build", str(mlp_project(search={"only": every_stage})), "--out", str(out), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = report_of(out)
    assert {"target", "plan", "baseline", "candidates", "selected", "provenance"} <= set(report)
    assert report["provenance"]["label"] == "measured-device"  # target host: this machine is the device
    baseline = report["baseline"]
    assert baseline["status"] == "ok" and baseline["metrics"]["accuracy"]["score"] == 1.0  # labels = fp32 argmax
    # the baseline is timed in every round, beside each batch of candidates (5 rounds each by default)
    series = baseline["metrics"]["timing"]["p50_per_round_ms"]
    assert len(series) >= 5 * 3 and min(series) <= baseline["metrics"]["latency_ms"]["p50"] <= max(series)
    measured = [c for c in report["candidates"] if c["status"] == "ok"]
    assert {c["stage"] for c in measured} == {"convert", "quantize", "accelerate"}
    assert len(measured) >= 3
    for c in measured:
        lat = c["metrics"]["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"]
        assert c["metrics"]["peak_rss_mb"] > c["metrics"]["runtime_import_rss_mb"] > 0
        assert set(c["gates"]) == {"accuracy_retained", "speedup", "memory_cut"}
        low, high = c["ratios"]["speedup_ci"]
        assert low <= c["ratios"]["speedup"] <= high and len(c["metrics"]["timing"]["speedup_per_round"]) >= 5
        for gate in c["gates"].values():
            assert gate["passed"] == (gate["verdict"] == "pass")
            if gate["interval"] is None:
                assert gate["passed"] == (gate["value"] >= gate["threshold"] - 1e-9)
            else:  # a ratio with an interval passes only when all of it clears the threshold
                assert gate["passed"] == (gate["interval"][0] >= gate["threshold"] - 1e-9)
    by_id = {c["id"]: c for c in report["candidates"]}
    # int8 weights: the file shrinks to about a quarter; accuracy stays near the baseline
    assert by_id["int8-dynamic"]["metrics"]["size_mb"] < 0.4 * baseline["metrics"]["size_mb"]
    assert by_id["int8-dynamic"]["ratios"]["accuracy_retained"] > 0.9
    assert by_id["int8-static"]["lineage"][-1]["notes"]["calibration_samples"] == 32
    assert by_id["fp16"]["metrics"]["size_mb"] < 0.6 * baseline["metrics"]["size_mb"]
    tuned = [c for c in measured if c["stage"] == "accelerate" and c["id"].startswith("tuned-")]
    assert tuned
    for c in tuned:  # ids say the thread count: tuned-iot<N>-ema<on|off>
        assert c["runtime_config"]["intra_op_threads"] == int(c["id"].split("-iot")[1].split("-")[0])
        assert c["metrics"]["threads"] == c["runtime_config"]["intra_op_threads"]
    # the lean settings go to the candidate of least peak memory that keeps accuracy (here the MLP's int8-static)
    lean = by_id["lean"]
    keeping = [c for c in measured if c["stage"] != "accelerate" and c["framework"] == "onnxruntime"
               and c["gates"]["accuracy_retained"]["passed"]]
    if lean["status"] == "ok":
        assert lean["runtime_config"]["enable_mem_arena"] is False and lean["runtime_config"]["enable_mem_pattern"] is False
        assert lean["input"] == min(keeping, key=lambda c: c["metrics"]["peak_rss_mb"])["id"]
    else:  # the same model and settings as an earlier candidate: recorded, not measured twice
        assert lean["status"] == "duplicate", lean
    if report["selected"]:
        assert (out / "selected" / "model.onnx").exists()
        assert result.status == ExitStatus.OK
    else:
        assert result.status == ExitStatus.GATES_FAILED and "no candidate passes" in report["verdict"]


def test_exit_code_follows_the_gates(cli, mlp_project, tmp_path):
    lenient = {"accuracy_retained": 0.5, "speedup": 0.01, "memory_cut": -10.0}
    first_two = {"frameworks": ["onnxruntime"], "max_candidates": 2}
    result = cli("build", str(mlp_project(gates=lenient, search=first_two)), "--out", str(tmp_path / "a"), "--quiet")
    assert result.status == ExitStatus.OK and report_of(tmp_path / "a")["selected"]
    strict = {"speedup": 1000.0}
    result = cli("build", str(mlp_project(gates=strict, search=first_two)), "--out", str(tmp_path / "b"), "--quiet")
    assert result.status == ExitStatus.GATES_FAILED
    assert "speedup" in report_of(tmp_path / "b")["verdict"]


def test_a_failing_pass_is_recorded_and_the_build_goes_on(cli, mlp_project, tmp_path):
    # calibration data of the right shape whose values are infinite: ONNX Runtime's static quantizer cannot
    # compute a scale ("scale issue"); the passes that need no calibration run
    np.savez(tmp_path / "inf.npz", x=np.full((4, 64), np.inf, np.float32))
    manifest = mlp_project(calibration={"data": {"type": "npz", "path": "inf.npz"}}, search=INT8)
    result = cli("build", str(manifest), "--out", str(tmp_path / "out"), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    by_id = {c["id"]: c for c in report_of(tmp_path / "out")["candidates"]}
    assert by_id["int8-static"]["status"] == "failed" and "scale issue" in by_id["int8-static"]["error"]
    assert by_id["int8-dynamic"]["status"] == "ok"


def test_a_baseline_that_cannot_run_stops_the_build_early_and_says_why(cli, mlp_project, tmp_path):
    manifest = mlp_project(measure={"timeout_s": 0.05})  # every worker times out, the baseline's first
    result = cli("build", str(manifest), "--out", str(tmp_path / "out"), "--quiet")
    assert result.status == ExitStatus.USAGE
    assert "the baseline" in result.stderr and "timed out" in result.stderr and "report.json" in result.stderr
    report = report_of(tmp_path / "out")  # written all the same, for the details
    assert "timed out" in report["baseline"]["error"]
    assert all(c["status"] == "skipped" and "the baseline could not be measured" in c["error"]
               for c in report["candidates"]), [(c["id"], c["error"]) for c in report["candidates"]]


def test_building_for_another_device_labels_figures_measured_host(cli, mlp_project, tmp_path):
    # without emulation (tests/integration/target covers it): the target's latency is a roofline estimate
    manifest = mlp_project(measure={"emulated_samples": 0}, search={"max_candidates": 3})
    result = cli("build", str(manifest), "--target", "rpi5",
                 "--out", str(tmp_path / "out"))
    report = report_of(tmp_path / "out")
    assert report["provenance"]["label"] == "measured-host"
    assert all(c["provenance"] == "measured-host" for c in report["candidates"])
    assert "NOT on Raspberry Pi 5" in result.stdout
    measured = [c for c in report["candidates"] if c["status"] == "ok"]
    assert measured and all(c["metrics"]["target"]["latency_ms"]["provenance"] == "estimated" for c in measured)
    assert all(c["gates"]["speedup"]["provenance"] == "estimated" for c in measured)
    # rpi5 has 4 cores (the candidate is planned; past --max-candidates it is listed as skipped)
    assert "tuned-iot4" in {c["id"].rsplit("-", 1)[0] for c in report["candidates"]}


def test_opset_12_model_gets_per_channel_static_quantization(cli, mlp_project, tmp_path):
    from tests.integration.conftest import tiny_mlp

    path = mlp_project(search=INT8)
    tiny_mlp(path.parent / "mlp.onnx", opset=12)
    cli("build", str(path), "--out", str(tmp_path / "out"), "--quiet")
    by_id = {c["id"]: c for c in report_of(tmp_path / "out")["candidates"]}
    assert by_id["int8-static"]["status"] == "ok", by_id["int8-static"]["error"]


def test_a_bug_in_the_worker_is_exit_3_not_a_failed_gate(cli, mlp_project, tmp_path):
    broken = Path(__file__).resolve().parents[1] / "broken_worker"
    result = cli("build", str(mlp_project()), "--out", str(tmp_path / "out"), "--quiet",
                 environ={"PYTHONPATH": str(broken)})
    assert result.status == ExitStatus.INTERNAL, result.stderr
    assert "internal error" in result.stderr and "deliberately broken worker" in result.stderr
    assert "(traceback: " in result.stderr, result.stderr
    traceback_file = result.stderr.split("(traceback: ")[1].split(")")[0]
    assert "_broken" in Path(traceback_file).read_text()
    assert "Traceback" not in result.stderr


def test_a_quantizer_with_nothing_to_quantize_offers_no_int8_candidate(cli, tmp_path):
    """Dynamic int8 touches MatMul/Gemm only: on a Conv-only network it quantizes nothing, and says so."""
    import onnx
    import yaml
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.normal(scale=0.3, size=(8, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["logits"])],
        "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 8])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "conv.onnx"))
    x = rng.normal(size=(32, 3, 16, 16)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "conv.onnx"), providers=["CPUExecutionProvider"])
    np.savez(tmp_path / "eval.npz", x=x, labels=session.run(None, {"x": x})[0].argmax(axis=1))
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump({
        "name": "convs", "model": {"path": "conv.onnx", "format": "onnx", "task": "classification"},
        "evaluation": {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "top1"}},
        "search": {"frameworks": ["onnxruntime"], "max_candidates": 4},
        "measure": {"warmup_runs": 1, "min_runs": 5, "max_runs": 20, "time_budget_s": 0.2, "rounds": 2}}))
    cli("build", str(tmp_path / "manifest.yaml"), "--out", str(tmp_path / "out"), "--quiet")
    by_id = {c["id"]: c for c in report_of(tmp_path / "out")["candidates"]}
    skipped = by_id["int8-dynamic"]
    assert skipped["status"] == "skipped" and "quantized no node" in skipped["error"]
    assert "Conv" in skipped["error"] and skipped["metrics"] is None


@pytest.mark.parametrize("pass_name", ["quantize_dynamic", "quantize_static"])
def test_a_quantizer_writes_nothing_beside_its_input(pass_name, mlp_project, tmp_path):
    """ONNX Runtime's quantizers write `model-inferred.onnx` beside the model they read and delete it after:
    two quantizers of one model at once (--jobs 2, Ray) deleted each other's copy. Nothing may appear in,
    or vanish from, the input's folder (a file created and deleted there changes the folder's mtime)."""
    from edgeopt.artifact import ModelArtifact
    from edgeopt.frameworks.onnxruntime.passes import QuantizeDynamic, QuantizeStatic
    from edgeopt.passes import PassContext

    mlp_project()
    source = tmp_path / "input"
    source.mkdir()
    (tmp_path / "mlp.onnx").rename(source / "model.onnx")
    before = (source.stat().st_mtime_ns, sorted(p.name for p in source.iterdir()))
    pass_class = {"quantize_dynamic": QuantizeDynamic, "quantize_static": QuantizeStatic}[pass_name]
    artifact = ModelArtifact(path=str(source / "model.onnx"), format="onnx", framework="onnxruntime", precision="fp32")
    context = PassContext(output_dir=tmp_path / "out", step="q", calibration_data=tmp_path / "calib.npz")
    made = pass_class().apply(pass_class.Config(), artifact, context)
    assert Path(made.path).exists() and Path(made.path).parent == tmp_path / "out"
    assert (source.stat().st_mtime_ns, sorted(p.name for p in source.iterdir())) == before


def _three_layers(path: Path) -> None:
    """x → MatMul a → MatMul b → MatMul c, named; the input of b has one feature 80× the others (an outlier,
    as after a GELU), so int8 steps sized to it crush the rest of that activation."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    wa = rng.normal(size=(16, 16)).astype(np.float32)
    wa[:, 3] *= 80
    weights = [numpy_helper.from_array(w, name) for name, w in
               (("wa", wa), ("wb", rng.normal(size=(16, 16)).astype(np.float32)),
                ("wc", rng.normal(size=(16, 4)).astype(np.float32)))]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "wa"], ["ha"], name="a"), helper.make_node("MatMul", ["ha", "wb"], ["hb"], name="b"),
         helper.make_node("MatMul", ["hb", "wc"], ["y"], name="c")],
        "three", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("pass_name", ["quantize_dynamic", "quantize_static"])
def test_mixed_precision_keeps_in_float_the_node_whose_input_has_outliers(pass_name, tmp_path):
    import onnx

    from edgeopt.artifact import ModelArtifact
    from edgeopt.frameworks.onnxruntime.passes import QuantizeDynamic, QuantizeStatic
    from edgeopt.passes import NothingToDo, PassContext

    _three_layers(tmp_path / "model.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(1).normal(size=(16, 16)).astype(np.float32))
    pass_class = {"quantize_dynamic": QuantizeDynamic, "quantize_static": QuantizeStatic}[pass_name]
    artifact = ModelArtifact(path=str(tmp_path / "model.onnx"), format="onnx", framework="onnxruntime")
    context = PassContext(output_dir=tmp_path / "out", step="q", calibration_data=tmp_path / "calib.npz")
    made = pass_class().apply(pass_class.Config(keep_float=1), artifact, context)
    assert made.lineage[-1].notes["kept_float"] == ["b"]
    nodes = {n.name: n for n in onnx.load(made.path).graph.node}
    assert nodes["b"].op_type == "MatMul" and "wb" in nodes["b"].input  # float weights, as given
    assert "a" not in nodes or nodes["a"].op_type != "MatMul" or "wa" not in nodes["a"].input  # a was quantized
    with pytest.raises(NothingToDo, match="quantized no node"):
        pass_class().apply(pass_class.Config(keep_float=3), artifact, context)


def test_weight_only_quantization_packs_matmul_weights_into_blocks_and_keeps_the_outputs(tmp_path):
    import onnx

    from edgeopt.artifact import ModelArtifact
    from edgeopt.frameworks.onnxruntime.passes import QuantizeWeights
    from edgeopt.passes import PassContext

    _three_layers(tmp_path / "model.onnx")
    artifact = ModelArtifact(path=str(tmp_path / "model.onnx"), format="onnx", framework="onnxruntime")
    x = {"x": np.random.default_rng(2).normal(size=(1, 16)).astype(np.float32)}
    expected = onnxruntime.InferenceSession(artifact.path).run(None, x)[0]
    for bits, floor in ((8, 0.999), (4, 0.98)):  # activations go int8 in the kernel too (accuracy level 4)
        config = QuantizeWeights.Config(bits=bits, block_size=16, exclude_nodes=["c"])
        made = QuantizeWeights().apply(config, artifact, PassContext(output_dir=tmp_path / f"int{bits}", step="w"))
        ops = {n.name: n.op_type for n in onnx.load(made.path).graph.node}
        assert sorted(ops.values()).count("MatMulNBits") == 2 and ops["c"] == "MatMul", ops  # c excluded
        assert made.precision == f"int{bits}-weights"
        got = onnxruntime.InferenceSession(made.path).run(None, x)[0]
        cosine = float((got * expected).sum() / np.linalg.norm(got) / np.linalg.norm(expected))
        assert cosine >= floor, (bits, cosine, got, expected)


def test_external_weights_move_to_a_data_file_the_runtime_reads_with_the_same_outputs(tmp_path):
    from edgeopt.artifact import ModelArtifact
    from edgeopt.frameworks.onnxruntime.passes import ExternalWeights
    from edgeopt.passes import NothingToDo, PassContext

    _three_layers(tmp_path / "model.onnx")
    artifact = ModelArtifact(path=str(tmp_path / "model.onnx"), format="onnx", framework="onnxruntime",
                             runtime_config={"enable_mem_arena": False})
    made = ExternalWeights().apply(ExternalWeights.Config(), artifact, PassContext(output_dir=tmp_path / "a", step="m"))
    data = Path(made.path).parent / made.files[0]
    # wa and wb (16x16 floats, 1 KB each) move out; wc (256 bytes) stays in the model
    assert made.lineage[-1].notes["data_file_bytes"] == data.stat().st_size == 2 * 16 * 16 * 4
    assert made.runtime_config == {"enable_mem_arena": False}  # the settings it was given travel on
    assert Path(made.path).stat().st_size < (tmp_path / "model.onnx").stat().st_size - 1800  # + references
    x = {"x": np.random.default_rng(3).normal(size=(1, 16)).astype(np.float32)}
    run = lambda path: onnxruntime.InferenceSession(path).run(None, x)[0]  # noqa: E731
    np.testing.assert_array_equal(run(made.path), run(artifact.path))
    with pytest.raises(NothingToDo, match="already lie beside"):
        ExternalWeights().apply(ExternalWeights.Config(), made, PassContext(output_dir=tmp_path / "b", step="m"))
    # settings given with it replace the input's (lean-mapped reads lean's input, and is timed beside lean)
    given = ExternalWeights.Config(session={"intra_op_threads": 2, "enable_mem_pattern": False})
    lean = ExternalWeights().apply(given, artifact, PassContext(output_dir=tmp_path / "c", step="m"))
    assert lean.runtime_config == {"intra_op_threads": 2, "graph_optimization_level": "all", "enable_mem_arena": True,
                                   "enable_mem_pattern": False, "execution_mode": "sequential"}
