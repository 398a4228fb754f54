"""The Ray executor against a real local Ray instance that the test starts and stops."""

import json

import pytest

from edgeopt.errors import ExitStatus

pytestmark = [pytest.mark.ray, pytest.mark.onnxruntime]
ray = pytest.importorskip("ray")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_passes_and_accuracy_runs_fan_out_to_ray_and_timing_stays_here(local_ray, cli, mlp_project, tmp_path):
    result = cli("build", str(mlp_project(search={"max_candidates": 4})), "--out", str(tmp_path), "--quiet",
                 "--executor", "ray", "--no-cache")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["search"]["executor"] == "ray" and report["search"]["parallelism"] == 2
    measured = [c for c in report["candidates"] if c["status"] == "ok"]
    assert len(measured) == 4, [(c["id"], c["error"]) for c in report["candidates"]]
    assert all(c["metrics"]["accuracy"]["score"] > 0.9 for c in measured)
    assert ray.is_initialized()  # the build joined the test's instance and left it running


def test_a_failing_pass_on_ray_is_recorded_and_the_build_goes_on(local_ray, cli, mlp_project, tmp_path):
    import numpy as np

    # calibration data with infinite values: static quantization fails on Ray (no scale), the rest runs
    np.savez(tmp_path / "inf.npz", x=np.full((4, 64), np.inf, np.float32))
    manifest = mlp_project(calibration={"data": {"type": "npz", "path": str(tmp_path / "inf.npz")}},
                           search={"frameworks": ["onnxruntime"]}, measure={"timeout_s": 120, "rounds": 2})
    result = cli("build", str(manifest), "--out", str(tmp_path / "out"), "--quiet", "--executor", "ray", "--no-cache")
    assert result.status in (ExitStatus.OK, ExitStatus.GATES_FAILED), result.stderr
    by_id = {c["id"]: c for c in json.loads((tmp_path / "out" / "report.json").read_text())["candidates"]}
    static = by_id["int8-static"]
    assert static["status"] == "failed", static
    # the worker's own error travelled back from the Ray task: ONNX Runtime's quantizer's words
    assert "scale issue" in static["error_detail"], static["error_detail"]
    assert by_id["int8-dynamic"]["status"] == "ok", by_id["int8-dynamic"].get("error_detail")


def test_an_unknown_executor_is_a_usage_error(cli, mlp_project, tmp_path):
    result = cli("build", str(mlp_project()), "--out", str(tmp_path), "--executor", "dask")
    assert result.status == ExitStatus.USAGE and "unknown executor" in result.stderr
