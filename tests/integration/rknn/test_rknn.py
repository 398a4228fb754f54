"""The RKNN adapter against the real rknn-toolkit2, in the rknn environment `make test` creates: a small CNN built for
the RK3566's NPU (fp16 and three int8 calibrations), accuracy from the toolkit's simulator, latency from the NPU's
published figures, the toolkit's per-layer analysis in the diagnosis, and a package whose .rknn the toolkit loads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeopt.errors import ExitStatus

pytestmark = [pytest.mark.rknn, pytest.mark.onnxruntime]
pytest.importorskip("onnxruntime")

AUDIT = Path(__file__).resolve().parents[1] / "netaudit"
LENIENT = {"accuracy_retained": 0.5, "speedup": 0.01, "memory_cut": -10.0}
RKNN_STEPS = ("rknn-fp16", "rknn-int8", "rknn-int8-mmse", "rknn-int8-kl", "rknn-hybrid-fl2", "rknn-hybrid-fl8")


@pytest.fixture(scope="session")
def rknn_env():
    """The rknn environment (`edgeopt env create rknn`, made by `make test`). Missing: skipped, unless
    EDGEOPT_REQUIRE_TOOLS=1 (CI) makes that a failure."""
    from edgeopt.envs import environment

    env = environment("rknn", os.environ)
    status = env.status()
    if not status.present:
        if os.environ.get("EDGEOPT_REQUIRE_TOOLS") == "1":
            pytest.fail(f"the rknn environment is required here: {status.detail}")
        pytest.skip(f"rknn environment: {status.detail}")
    return env


def tiny_cnn(path: Path, seed: int = 0) -> None:
    """A real small CNN (two convolutions, global pooling, a classifier) on 3×32×32 images, opset 17."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {"w1": rng.normal(scale=0.3, size=(8, 3, 3, 3)), "b1": rng.normal(scale=0.1, size=(8,)),
               "w2": rng.normal(scale=0.2, size=(16, 8, 3, 3)), "b2": rng.normal(scale=0.1, size=(16,)),
               "w3": rng.normal(scale=0.3, size=(10, 16)), "b3": rng.normal(scale=0.1, size=(10,))}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def rknn_build(tmp_path_factory, rknn_env):
    """One build of the CNN for --target rk3566, rknn searched, every worker (both environments) under the audit."""
    import onnxruntime

    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("rknn")
    tiny_cnn(root / "cnn.onnx")
    x = np.random.default_rng(1).uniform(0, 1, size=(160, 3, 32, 32)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(root / "cnn.onnx"), providers=["CPUExecutionProvider"])
    labels = session.run(None, {"x": x})[0].argmax(axis=1)
    np.savez(root / "eval.npz", x=x[:96], labels=labels[:96])
    np.savez(root / "calib.npz", x=x[96:], labels=labels[96:])
    manifest = {
        "name": "cnn",
        "model": {"path": "cnn.onnx", "format": "onnx", "task": "classification"},
        "evaluation": {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "top1", "output": "logits"}},
        "calibration": {"data": {"type": "npz", "path": "calib.npz"}, "samples": 32},
        "measure": {"warmup_runs": 2, "min_runs": 5, "max_runs": 50, "time_budget_s": 0.2, "emulated_samples": 0},
        "search": {"frameworks": ["rknn"]}, "gates": LENIENT,
    }
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    audit = root / "network.log"
    environ = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
               "EDGEOPT_CACHE_DIR": str(root / "cache"), "PYTHONPATH": str(AUDIT), "EDGEOPT_NET_AUDIT": str(audit)}
    if os.environ.get("EDGEOPT_ENV_DIR"):
        environ["EDGEOPT_ENV_DIR"] = os.environ["EDGEOPT_ENV_DIR"]
    plan = run_cli("plan", str(root / "manifest.yaml"), "--target", "rk3566", environ=environ)
    result = run_cli("build", str(root / "manifest.yaml"), "--target", "rk3566", "--out", str(root / "out"), "--quiet",
                     environ=environ)
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    return root, plan.stdout, json.loads((root / "out" / "report.json").read_text()), audit, environ


def test_the_plan_lists_the_rknn_steps_first_with_their_environment(rknn_build):
    _, plan, _, _, _ = rknn_build
    assert "framework: rknn" in plan
    first = plan.index("rknn-fp16")
    assert all(plan.index(step) >= first for step in RKNN_STEPS)
    assert "environment rknn" in plan


def test_rknn_candidates_are_built_and_judged_by_the_simulator(rknn_build):
    root, _, report, _, _ = rknn_build
    by_id = {c["id"]: c for c in report["candidates"]}
    for step in RKNN_STEPS:
        candidate = by_id[step]
        assert candidate["status"] in ("ok", "duplicate"), candidate["error"]
    for step in ("rknn-fp16", "rknn-int8"):
        candidate = by_id[step]
        assert candidate["status"] == "ok" and candidate["model_path"].endswith("model.rknn")
        target = candidate["metrics"]["target"]
        assert target["accuracy"]["provenance"] == "simulated" and "simulator" in target["accuracy"]["source"]
        # the host has no NPU: latency is the NPU's published figure, never a host timing
        assert target["latency_ms"]["provenance"] == "estimated" and "the npu" in target["latency_ms"]["source"]
        # 0.5 MMAC, far below the published NPU points (0.3-4.35 GMAC): the estimate says it is extrapolated
        assert "EXTRAPOLATED" in target["latency_ms"]["source"]
        assert candidate["metrics"]["sources"]["accuracy"] == "simulated"
        gates = candidate["gates"]
        assert gates["accuracy_retained"]["provenance"] == "simulated" and gates["accuracy_retained"]["value"] > 0.8
        assert gates["speedup"]["provenance"] == "estimated"
        # no peak RSS for a model the host cannot run: its memory is estimated from its file, and said so
        assert target["memory_mb"]["provenance"] == "estimated" and gates["memory_cut"]["provenance"] == "estimated"
        assert candidate["metrics"]["latency_ms"] is None  # nothing was timed on the host
    from edgeopt.model_checks import check_rknn

    for step in ("rknn-fp16", "rknn-int8"):  # the toolkit still writes the layout verify checks
        check_rknn(root / "out" / "steps" / step / "model" / "model.rknn")
    # by the NPU's published peaks, int8 moves and computes less than fp16
    assert by_id["rknn-int8"]["metrics"]["target"]["latency_ms"]["value"] < \
        by_id["rknn-fp16"]["metrics"]["target"]["latency_ms"]["value"]
    hybrid = by_id["rknn-hybrid-fl2"]
    assert hybrid["status"] == "ok" and hybrid["precision"] == "int8-mixed", hybrid["error"]
    assert len(hybrid["lineage"][-1]["notes"]["float_layers"]) == 2
    recipe = json.loads((root / "out" / "steps" / "rknn-hybrid-fl2" / "model" / "build.json").read_text())
    assert len(recipe["hybrid"]) == 2


def test_the_toolkits_layer_analysis_is_kept_and_feeds_the_diagnosis(rknn_build):
    root, _, report, _, _ = rknn_build
    by_id = {c["id"]: c for c in report["candidates"]}
    analysis = by_id["rknn-int8"]["lineage"][-1]["notes"]["layer_analysis"]
    assert analysis["layers"] >= 5 and 0.5 < analysis["output_cosine"] <= 1.0
    assert analysis["most_divergent"][0]["cosine_single"] <= analysis["most_divergent"][-1]["cosine_single"]
    assert (root / "out" / "steps" / "rknn-int8" / "model" / "error_analysis.txt").is_file()
    diagnosis = report["diagnosis"]
    if diagnosis and by_id[diagnosis["candidate"]]["framework"] == "rknn" and "layers" in diagnosis:
        assert "accuracy_analysis" in diagnosis["by"] and diagnosis["layers"][0]["cosine"] <= 1.0


def test_no_worker_in_either_environment_opened_a_connection(rknn_build):
    _, _, _, audit, _ = rknn_build
    assert not audit.exists() or audit.read_text() == ""


def test_the_rknn_package_verifies_and_its_model_loads_in_the_toolkit(rknn_build):
    from tests.conftest import run_cli

    root, _, _, _, environ = rknn_build
    packaged = run_cli("package", str(root / "out"), "--candidate", "rknn-int8", environ=environ)
    assert packaged.status == ExitStatus.OK, packaged.stderr
    archive = next((root / "out" / "package").glob("*rknn-int8.tar.gz"))
    import tarfile

    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        descriptor = json.load(tar.extractfile("edgeopt-artifact.json"))
    assert {"model/model.rknn", "run_example.py", "preprocess.py"} <= names
    assert "model/source.onnx" not in names  # how it was made stays in the build, not in what a board runs
    assert descriptor["runtime"]["package"] == "rknn-toolkit-lite2" and descriptor["io"]["target_platform"] == "rk3566"
    verified = run_cli("verify", str(archive), environ=environ)
    assert verified.status == ExitStatus.OK, verified.stderr
    assert "checksums" in verified.stdout and "loaded by rknn-toolkit2" in verified.stdout
