"""The Olive adapter against the real olive-ai, in the olive environment `make test` creates: a build for the Jetson
Orin Nano runs Olive workflows on the CPU execution provider (what a host without a GPU can run), and their output
models are measured and gated by edgeopt like every other candidate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgeopt.errors import ExitStatus

pytestmark = [pytest.mark.olive, pytest.mark.onnxruntime]
pytest.importorskip("onnxruntime")

AUDIT = Path(__file__).resolve().parents[1] / "netaudit"
LENIENT = {"accuracy_retained": 0.5, "speedup": 0.01, "memory_cut": -10.0}
OLIVE_STEPS = ("olive-peephole", "olive-int8-dynamic", "olive-fp16")


@pytest.fixture(scope="module")
def olive_build(tmp_path_factory):
    """One build of the MLP for --target jetson-orin-nano with Olive alone searched, every worker under the audit.
    Missing environment: skipped, unless EDGEOPT_REQUIRE_TOOLS=1 (CI) makes that a failure."""
    from edgeopt.envs import environment
    from tests.conftest import run_cli
    from tests.integration.conftest import write_mlp_project

    status = environment("olive", os.environ).status()
    if not status.present:
        if os.environ.get("EDGEOPT_REQUIRE_TOOLS") == "1":
            pytest.fail(f"the olive environment is required here: {status.detail}")
        pytest.skip(f"olive environment: {status.detail}")
    root = tmp_path_factory.mktemp("olive")
    manifest = write_mlp_project(root)(gates=LENIENT, search={"frameworks": ["olive"]})
    audit = root / "network.log"
    environ = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
               "EDGEOPT_CACHE_DIR": str(root / "cache"), "PYTHONPATH": str(AUDIT), "EDGEOPT_NET_AUDIT": str(audit)}
    if os.environ.get("EDGEOPT_ENV_DIR"):
        environ["EDGEOPT_ENV_DIR"] = os.environ["EDGEOPT_ENV_DIR"]
    plan = run_cli("plan", str(manifest), "--target", "jetson-orin-nano", environ=environ)
    result = run_cli("build", str(manifest), "--target", "jetson-orin-nano", "--out", str(root / "out"), "--quiet",
                     environ=environ)
    assert result.status == ExitStatus.OK, result.stderr
    return root / "out", plan.stdout, json.loads((root / "out" / "report.json").read_text()), audit


def test_the_plan_for_a_jetson_runs_olive_workflows_in_the_olive_environment(olive_build):
    _, plan, _, _ = olive_build
    assert "framework: olive" in plan and "environment olive, runs there: ready" in plan
    assert all(step in plan for step in OLIVE_STEPS)


def test_olive_outputs_are_candidates_measured_and_gated_by_edgeopt(olive_build):
    out, _, report, _ = olive_build
    by_id = {c["id"]: c for c in report["candidates"]}
    for step in OLIVE_STEPS:
        candidate = by_id[step]
        assert candidate["status"] in ("ok", "duplicate"), candidate["error"]
    for step in ("olive-int8-dynamic", "olive-fp16"):
        candidate = by_id[step]
        assert candidate["status"] == "ok" and candidate["framework"] == "onnxruntime"
        notes = candidate["lineage"][-1]["notes"]
        assert notes["olive"].startswith("olive-ai ") and notes["execution_provider"] == "CPUExecutionProvider"
        # timed by edgeopt in the same interleaved rounds as the baseline, and gated on those figures
        assert candidate["metrics"]["latency_ms"]["p50"] > 0 and set(candidate["gates"]) >= {"speedup", "memory_cut"}
        assert (out / "steps" / step / "model" / "model.onnx").is_file()
    assert by_id["olive-int8-dynamic"]["lineage"][-1]["notes"]["passes"] == ["OnnxPeepholeOptimizer",
                                                                             "OnnxDynamicQuantization"]
    # int8 weights: a smaller file than the float model's
    assert by_id["olive-int8-dynamic"]["metrics"]["size_mb"] < 0.5 * report["baseline"]["metrics"]["size_mb"]


def test_no_olive_worker_opened_a_connection(olive_build):
    _, _, _, audit = olive_build
    assert not audit.exists() or audit.read_text() == ""


def test_a_workflow_that_produces_no_model_fails_its_step(tmp_path):
    from types import SimpleNamespace

    from edgeopt.frameworks.olive.workflow import output_model

    with pytest.raises(RuntimeError, match="without an output model"):
        output_model(SimpleNamespace(has_output_model=lambda: False), tmp_path / "output")
