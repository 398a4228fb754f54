from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml


def tiny_mlp(path: Path, seed: int = 0, opset: int = 17) -> None:
    """A real two-layer MLP (64 → 256 → 10) written with onnx.helper: big enough to quantize."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(scale=0.2, size=(64, 256)).astype(np.float32)
    w2 = rng.normal(scale=0.2, size=(256, 10)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["logits"])],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def tiny_streaming(path: Path, seed: int = 0, batch_name: str = "batch") -> None:
    """A streaming model shaped like a voice-activity detector: `input[batch, 64]`, a recurrent
    `state[2, batch, 16]` (batch on axis 1) and `sr`, an int64 scalar; outputs `output[batch, 1]` and the
    next state `stateN[2, batch, 16]`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(scale=0.2, size=(64, 16)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["input", "w"], ["h"]),
        helper.make_node("Unsqueeze", ["h", "zero"], ["h0"]),
        helper.make_node("Add", ["state", "h0"], ["mixed"]),
        helper.make_node("Tanh", ["mixed"], ["stateN"]),
        helper.make_node("ReduceMean", ["stateN", "axes"], ["pooled"], keepdims=0),
        helper.make_node("Cast", ["sr"], ["sr_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["sr_f", "rate"], ["scale"]),
        helper.make_node("Mul", ["pooled", "scale"], ["scaled"]),
        helper.make_node("Unsqueeze", ["scaled", "one"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "streaming",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_name, 64]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, batch_name, 16]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch_name, 1]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, batch_name, 16])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([0], np.int64), "zero"),
         numpy_helper.from_array(np.array([0, 2], np.int64), "axes"),
         numpy_helper.from_array(np.array([1], np.int64), "one"),
         numpy_helper.from_array(np.array(16000, np.float32), "rate")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def write_mlp_project(root: Path):
    """Model, data labelled by the fp32 model itself, and a manifest with a short measurement budget;
    returns a function that writes the manifest with some keys changed."""
    import onnxruntime

    tiny_mlp(root / "mlp.onnx")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 64)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(root / "mlp.onnx"), providers=["CPUExecutionProvider"])
    labels = session.run(None, {"x": x})[0].argmax(axis=1)
    np.savez(root / "eval.npz", x=x[:128], labels=labels[:128])
    np.savez(root / "calib.npz", x=x[128:], labels=labels[128:])
    manifest = {
        "name": "mlp",
        "model": {"path": "mlp.onnx", "format": "onnx", "task": "classification"},
        "evaluation": {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "top1", "output": "logits"}},
        "calibration": {"data": {"type": "npz", "path": "calib.npz"}, "samples": 32},
        "measure": {"warmup_runs": 2, "min_runs": 5, "max_runs": 50, "time_budget_s": 0.2},
    }

    def write(**changes) -> Path:
        path = root / "manifest.yaml"
        path.write_text(yaml.safe_dump({**manifest, **changes}))
        return path

    return write


@pytest.fixture
def mlp_project(tmp_path: Path):
    return write_mlp_project(tmp_path)


@pytest.fixture(scope="session")
def aarch64_env():
    """The aarch64 emulation environment `make test` creates (`edgeopt env create aarch64`). Missing: the
    tests skip, unless EDGEOPT_REQUIRE_EMULATION=1 (CI) makes that a failure."""
    from edgeopt.envs import environment

    env = environment("aarch64", os.environ)
    status = env.status()
    if not status.present:
        if os.environ.get("EDGEOPT_REQUIRE_EMULATION") == "1":
            pytest.fail(f"the aarch64 environment is required here: {status.detail}")
        pytest.skip(f"aarch64 emulation environment: {status.detail}")
    return env


def settled(candidate: dict) -> bool:
    """Measured, a duplicate, or a pass with nothing to do in this model, saying so: the embedding-table
    quantizer finding no table, mixed precision leaving every weighted node of a small model in float."""
    why = candidate.get("error") or ""
    return candidate["status"] in ("ok", "duplicate") or (candidate["status"] == "skipped" and (
        (candidate["id"].endswith("-emb") and "no embedding table" in why)
        or ("-mixed-" in candidate["id"] and why.startswith("quantized no node"))))
