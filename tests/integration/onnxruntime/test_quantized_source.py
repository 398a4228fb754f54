"""A model that arrives quantized (a QDQ int8 ONNX file, as speech models ship): planned without the passes
that need a float graph, and built with what can run on it."""

import json

import numpy as np
import pytest

from edgeopt.errors import ExitStatus
from tests.integration.conftest import write_mlp_project

pytestmark = pytest.mark.onnxruntime
onnxruntime = pytest.importorskip("onnxruntime")


class Reader:
    def __init__(self, x):
        self.feeds = iter([{"x": x[i:i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.feeds, None)


@pytest.fixture
def qdq_project(tmp_path):
    from onnxruntime.quantization import QuantFormat, quantize_static

    write = write_mlp_project(tmp_path)
    with np.load(tmp_path / "calib.npz") as data:
        quantize_static(str(tmp_path / "mlp.onnx"), str(tmp_path / "mlp-qdq.onnx"), Reader(data["x"][:32]),
                        quant_format=QuantFormat.QDQ)
    path = write(model={"path": "mlp-qdq.onnx", "format": "onnx", "task": "classification"},
                 search={"frameworks": ["onnxruntime"]})
    return path


def test_the_plan_skips_what_needs_a_float_graph_and_says_why(cli, qdq_project):
    result = cli("plan", str(qdq_project), "--json")
    assert result.status == ExitStatus.OK, result.stderr
    plan = json.loads(result.stdout)
    assert plan["source_quantized"].startswith("QDQ: ") and "QuantizeLinear" in plan["source_quantized"]
    skipped = {s["id"]: s["reason"] for s in plan["skipped"]}
    lowering = ("int8-dynamic", "int8-dynamic-pc", "int8-static", "int8-static-pct", "fp16")
    assert all("already quantized" in skipped.get(step, "") for step in lowering), skipped
    planned = {s["id"] for s in plan["steps"]}  # what runs on any graph stays
    assert {"fp32-opt", "fp32-opt-ext"} <= planned and any(p.startswith("tuned-") for p in planned)
    text = cli("plan", str(qdq_project)).stdout
    assert "source arrives quantized (QDQ:" in text and "skipped int8-static" in text


def test_a_quantized_source_builds_with_no_candidate_onnx_runtime_refuses(cli, qdq_project, tmp_path):
    out = tmp_path / "out"
    result = cli("build", str(qdq_project), "--out", str(out), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"]["status"] == "ok"
    statuses = {c["id"]: c["status"] for c in report["candidates"]}
    assert statuses and all(s in ("ok", "duplicate") for s in statuses.values()), statuses
    assert not any(c.startswith(("int8", "fp16")) for c in statuses)


def test_a_float_source_plans_every_pass(cli, mlp_project):
    plan = json.loads(cli("plan", str(mlp_project(search={"frameworks": ["onnxruntime"]})), "--json").stdout)
    assert plan["source_quantized"] is None and not any("quantized" in s["reason"] for s in plan["skipped"])
    assert {"int8-static", "fp16"} <= {s["id"] for s in plan["steps"]}
