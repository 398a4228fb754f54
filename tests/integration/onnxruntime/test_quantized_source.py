"""A model that arrives quantized (a QDQ int8 ONNX file, as speech models ship): a QDQ graph is read back as
float and requantized from there; any other quantized form is planned without the passes that need a float
graph. Either way every candidate loads."""

import json

import numpy as np
import pytest
import yaml

from edgeopt.errors import ExitStatus
from tests.integration.conftest import write_mlp_project

pytestmark = pytest.mark.onnxruntime
onnxruntime = pytest.importorskip("onnxruntime")


class Reader:
    def __init__(self, x):
        self.feeds = iter([{"x": x[i:i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.feeds, None)


def quantized_project(tmp_path, quant_format: str):
    from onnxruntime.quantization import QuantFormat, quantize_static

    write = write_mlp_project(tmp_path)
    with np.load(tmp_path / "calib.npz") as data:
        quantize_static(str(tmp_path / "mlp.onnx"), str(tmp_path / "mlp-int8.onnx"), Reader(data["x"][:32]),
                        quant_format=getattr(QuantFormat, quant_format))
    return write(model={"path": "mlp-int8.onnx", "format": "onnx", "task": "classification"},
                 search={"frameworks": ["onnxruntime"]})


@pytest.fixture
def qdq_project(tmp_path):
    return quantized_project(tmp_path, "QDQ")


LOWERING = ("int8-dynamic", "int8-dynamic-pc", "int8-static", "int8-static-pct", "fp16")


def test_a_qdq_source_is_read_back_as_float_and_requantized_from_there(cli, qdq_project):
    result = cli("plan", str(qdq_project), "--json")
    assert result.status == ExitStatus.OK, result.stderr
    plan = json.loads(result.stdout)
    assert plan["source_quantized"].startswith("QDQ: ") and "QuantizeLinear" in plan["source_quantized"]
    steps = {s["id"]: s for s in plan["steps"]}
    assert steps["fp32-dequantized"]["input"] == "source"
    assert all(steps[step]["input"] == "fp32-dequantized" for step in LOWERING)
    assert {"fp32-opt", "fp32-opt-ext"} <= set(steps) and any(p.startswith("tuned-") for p in steps)
    text = cli("plan", str(qdq_project)).stdout
    assert "source arrives quantized (QDQ:" in text and "take fp32-dequantized (the source read back as float)" in text


def test_a_qoperator_source_skips_what_needs_a_float_graph_and_says_why(cli, tmp_path):
    plan = json.loads(cli("plan", str(quantized_project(tmp_path, "QOperator")), "--json").stdout)
    assert plan["source_quantized"].startswith("QOperator int8: ")
    skipped = {s["id"]: s["reason"] for s in plan["skipped"]}
    assert all("already quantized" in skipped.get(step, "") for step in LOWERING), skipped
    assert "only a QDQ graph can be read back as float" in skipped["fp32-dequantized"]
    planned = {s["id"] for s in plan["steps"]}  # what runs on any graph stays
    assert {"fp32-opt", "fp32-opt-ext"} <= planned and any(p.startswith("tuned-") for p in planned)


def test_a_quantized_source_builds_with_no_candidate_onnx_runtime_refuses(cli, qdq_project, tmp_path):
    out = tmp_path / "out"
    manifest = yaml.safe_load(qdq_project.read_text())
    manifest["search"]["only"] = ["fp32-dequantized", "int8-dynamic-pc", "int8-static", "fp16", "tuned-iot2-emaon"]
    qdq_project.write_text(yaml.safe_dump(manifest))
    result = cli("build", str(qdq_project), "--out", str(out), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"]["status"] == "ok"
    by_id = {c["id"]: c for c in report["candidates"]}
    assert all(c["status"] in ("ok", "duplicate", "skipped") for c in by_id.values()), \
        {i: c["error"] for i, c in by_id.items() if c["status"] == "failed"}
    assert {"int8-dynamic-pc", "int8-static", "fp16"} <= {i for i, c in by_id.items() if c["status"] == "ok"}
    restored = by_id["fp32-dequantized"]
    notes = restored["lineage"][-1]["notes"]
    assert notes["dequantized_weights"] == 2 and notes["activation_pairs_removed"] == 3
    assert notes["quantize_nodes_left"] == 0
    # the float graph computes what the QDQ graph does, but for the rounding of activations
    assert restored["ratios"]["accuracy_retained"] > 0.97


def test_a_float_source_plans_every_pass(cli, mlp_project):
    plan = json.loads(cli("plan", str(mlp_project(search={"frameworks": ["onnxruntime"]})), "--json").stdout)
    assert plan["source_quantized"] is None and not any("quantized" in s["reason"] for s in plan["skipped"])
    assert {"int8-static", "fp16"} <= {s["id"] for s in plan["steps"]}
