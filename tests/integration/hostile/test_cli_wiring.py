"""The hardening as a user meets it through the CLI: --no-hooks, a corrupt model, the cache commands."""

import json
from pathlib import Path

import pytest

from edgeopt.errors import ExitStatus

REPO = Path(__file__).resolve().parents[3]


def test_no_hooks_refuses_a_manifest_that_names_code(cli):
    manifest = str(REPO / "examples" / "ocr" / "manifest.yaml")
    result = cli("plan", manifest, "--no-hooks")
    assert result.status == ExitStatus.USAGE
    assert "evaluation.data.function: ocr_data:load" in result.stderr and "ocr_data:decode" in result.stderr
    by_environment = cli("plan", manifest, environ={"EDGEOPT_NO_HOOKS": "1"})
    assert by_environment.status == ExitStatus.USAGE and "ocr_data:decode" in by_environment.stderr


def test_a_missing_model_is_said_at_plan_time(cli, tmp_path):
    (tmp_path / "m.yaml").write_text("name: x\nmodel: {path: nowhere.onnx, format: onnx}\n"
                                     "evaluation: {data: {type: npz, path: e.npz}, metric: {name: top1}}\n")
    result = cli("plan", str(tmp_path / "m.yaml"))
    assert result.status == ExitStatus.USAGE and "model.path" in result.stderr and "does not exist" in result.stderr


@pytest.mark.onnxruntime
def test_a_truncated_model_is_refused_before_any_runtime_reads_it(cli, mlp_project, tmp_path):
    pytest.importorskip("onnx")
    manifest = mlp_project()
    model = manifest.parent / "mlp.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    result = cli("build", str(manifest), "--out", str(tmp_path / "out"), "--quiet")
    assert result.status == ExitStatus.USAGE, result.stderr
    assert "mlp.onnx" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "report.json").exists()


@pytest.mark.onnxruntime
def test_cache_info_prune_and_clear(cli, mlp_project, tmp_path, cache_dir):
    cli("build", str(mlp_project(search={"max_candidates": 1})), "--out", str(tmp_path / "out"), "--quiet")
    info = json.loads(cli("cache", "info", "--json").stdout)
    assert info["entries"] > 0 and info["bytes"] > 0 and info["dir"] == str(cache_dir)
    pruned = cli("cache", "prune", "--max-size", "1K")
    assert pruned.status == ExitStatus.OK and "removed" in pruned.stdout
    assert json.loads(cli("cache", "info", "--json").stdout)["bytes"] <= 1024
    assert cli("cache", "clear").status == ExitStatus.OK
    assert json.loads(cli("cache", "info", "--json").stdout)["entries"] == 0
    assert cli("cache", "prune", "--max-size", "lots").status == ExitStatus.USAGE
