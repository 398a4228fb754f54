"""The search, the build cache and resumption, against real onnxruntime builds of a small MLP."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeopt.errors import ExitStatus
from tests.integration.conftest import settled

pytestmark = pytest.mark.onnxruntime
pytest.importorskip("onnxruntime")

LENIENT = {"accuracy_retained": 0.5, "speedup": 0.01, "memory_cut": -10.0}
# candidates of every stage, ONNX Runtime's (OpenVINO's go through the same search and cache); the full search of
# both runtimes takes ~2.5 min on 2 cores
EVERY_STAGE = {"only": ["int8-dynamic", "int8-dynamic-pc", "int8-static", "fp16", "tuned-iot1-emaon", "tuned-iot2-emaon"]}


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def figures(report: dict) -> dict:
    return {c["id"]: (c["metrics"]["latency_ms"]["p50"], c["metrics"]["accuracy"]["score"], c["ratios"].get("speedup"),
                      c["ratios"].get("speedup_ci"))
            for c in [report["baseline"], *report["candidates"]] if c["status"] == "ok"}


def test_a_rebuild_reuses_every_pass_and_measurement_and_reports_the_same_figures(cli, mlp_project, tmp_path):
    manifest = str(mlp_project(search=EVERY_STAGE))
    first = cli("build", manifest, "--out", str(tmp_path / "a"), "--quiet")
    second = cli("build", manifest, "--out", str(tmp_path / "b"), "--quiet")
    assert first.status == second.status, second.stderr
    cold, warm = report_of(tmp_path / "a"), report_of(tmp_path / "b")
    # (a cold build can hit too: two passes that write byte-identical models share their measurements)
    assert cold["cache"]["misses"]["pass"] > 0 and cold["cache"]["hits"]["pass"] == 0
    assert warm["cache"]["misses"] == {"pass": 0, "measure": 0}
    assert figures(warm) == figures(cold)
    for c in warm["candidates"]:
        if c["status"] == "duplicate":  # the same model as an earlier candidate: found again, not measured
            assert c["same_as"] and c["same_as"] == {x["id"]: x for x in cold["candidates"]}[c["id"]]["same_as"]
            continue
        if c["status"] == "skipped":  # a pass with nothing to do here (no embedding table): said so again
            assert settled(c) and c["error"] == {x["id"]: x for x in cold["candidates"]}[c["id"]]["error"]
            continue
        assert c["cached"] == {"pass": True, "timing": True, "accuracy": True}, c["id"]
        assert all(Path(p).exists() for p in c["model_files"])  # copied out of the cache into the build


def test_remeasure_reuses_models_and_no_cache_touches_nothing(cli, mlp_project, tmp_path, cache_dir):
    manifest = str(mlp_project(search={"max_candidates": 2}))
    cli("build", manifest, "--out", str(tmp_path / "a"), "--quiet")
    cli("build", manifest, "--out", str(tmp_path / "b"), "--quiet", "--remeasure")
    remeasured = report_of(tmp_path / "b")
    assert all(c["cached"]["pass"] and not c["cached"]["timing"] for c in remeasured["candidates"] if c["status"] == "ok")
    before = sorted(p.name for p in cache_dir.rglob("entry.json"))
    cli("build", manifest, "--out", str(tmp_path / "c"), "--quiet", "--no-cache")
    assert report_of(tmp_path / "c")["cache"]["enabled"] is False
    assert sorted(p.name for p in cache_dir.rglob("entry.json")) == before


def test_a_changed_pass_input_misses_the_cache(cli, mlp_project, tmp_path):
    from tests.integration.conftest import tiny_mlp

    manifest = mlp_project(search={"max_candidates": 1})
    cli("build", str(manifest), "--out", str(tmp_path / "a"), "--quiet")
    tiny_mlp(manifest.parent / "mlp.onnx", seed=7)  # same shapes, other weights
    cli("build", str(manifest), "--out", str(tmp_path / "b"), "--quiet")
    again = report_of(tmp_path / "b")
    assert not any(c["cached"].get("pass") for c in again["candidates"] if c["status"] == "ok")


def test_a_build_killed_midway_resumes_from_the_cache(mlp_project, tmp_path, cache_dir):
    manifest = str(mlp_project(search=EVERY_STAGE))
    out = tmp_path / "out"
    env = {**os.environ, "EDGEOPT_CACHE_DIR": str(cache_dir)}
    command = [sys.executable, "-m", "edgeopt", "build", manifest, "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    # kill once a few measurements are in the cache, while later candidates are still running
    while time.monotonic() < deadline and len(list((cache_dir / "measurements").rglob("entry.json"))) < 4:
        assert process.poll() is None, "the build finished before it could be killed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "report.json").exists()
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    assert finished.returncode in (0, 1), finished.stderr
    report = report_of(out)
    assert report["cache"]["hits"]["measure"] >= 4  # what finished before the kill was not redone
    assert report["baseline"]["status"] == "ok"
    assert all(settled(c) for c in report["candidates"]), [(c["id"], c["error"]) for c in report["candidates"]]


def test_cheap_first_stops_once_a_candidate_passes_every_gate(cli, mlp_project, tmp_path):
    manifest = str(mlp_project(gates=LENIENT, search={"strategy": "cheap-first"}))
    result = cli("build", manifest, "--out", str(tmp_path), "--quiet")
    assert result.status == ExitStatus.OK, result.stderr
    report = report_of(tmp_path)
    assert "cheap-first" in report["search"]["stopped"]
    skipped = [c for c in report["candidates"] if c["status"] == "skipped"]
    assert skipped and all("not evaluated" in c["error"] for c in skipped)
    # the calibrated (costly) static quantization never ran before a cheap candidate passed
    assert {c["id"]: c["status"] for c in report["candidates"]}["int8-static"] == "skipped"


def test_max_candidates_bounds_the_search_and_the_frontier_is_marked(cli, mlp_project, tmp_path):
    result = cli("build", str(mlp_project(search={"max_candidates": 3})), "--out", str(tmp_path), "--quiet")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED)
    report = report_of(tmp_path)
    assert sum(c["status"] == "ok" for c in report["candidates"]) == 3
    assert "max_candidates" in report["search"]["stopped"]
    assert report["pareto_frontier"] and set(report["pareto_frontier"]) <= {c["id"] for c in report["candidates"]} | {"baseline"}


def test_local_executor_runs_passes_in_parallel_and_times_one_window_at_a_time(cli, mlp_project, tmp_path):
    manifest = mlp_project(search={"frameworks": ["onnxruntime"], "max_candidates": 8})
    result = cli("build", str(manifest), "--out", str(tmp_path), "--quiet", "--jobs", "2")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    search = report_of(tmp_path)["search"]
    assert search["executor"] == "local" and search["parallelism"] == 2
    # passes ran two at a time: some pass logs overlap in time ...
    jobs = sorted((tmp_path / "steps").glob("*/pass/response.json"))
    spans = sorted((p.parent.joinpath("request.json").stat().st_mtime, p.stat().st_mtime) for p in jobs)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans
    # ... while timing windows, each in its own process, never did
    windows = sorted(search["windows"], key=lambda w: w["started"])
    assert len({w["id"] for w in windows}) > 5
    assert all(a["ended"] <= b["started"] + 1e-6 for a, b in zip(windows, windows[1:]))
