
import pytest

from edgeopt.errors import PassFailed
from edgeopt.measure.process import run_in_worker
from edgeopt.telemetry import OFFLINE_ENV


def test_a_failing_operation_comes_back_as_pass_failed_with_its_first_line(tmp_path):
    request = {"op": "pass", "adapter": "edgeopt.frameworks.onnxruntime", "pass": "optimize",
               "config": {"level": "basic"}, "input": {"path": str(tmp_path / "missing.onnx"), "framework": "onnxruntime"},
               "output_dir": str(tmp_path / "out"), "extra": {"step": "s"}}
    with pytest.raises(PassFailed) as caught:
        run_in_worker(request, tmp_path / "w", 60, {"PATH": "/usr/bin:/bin"})
    assert "\n" not in str(caught.value)
    assert (tmp_path / "w" / "traceback.txt").read_text()


def fake_interpreter(tmp_path, script: str) -> str:
    """A stand-in for the worker's Python that misbehaves the way a real crash or hang would."""
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


def test_a_worker_that_dies_is_reported_not_raised_as_a_crash(tmp_path):
    crasher = fake_interpreter(tmp_path, "echo dying >&2\nkill -SEGV $$")
    with pytest.raises(PassFailed, match="SIGSEGV"):
        run_in_worker({"op": "pass"}, tmp_path / "w", 60, {}, python=crasher)


def test_a_hang_times_out(tmp_path):
    sleeper = fake_interpreter(tmp_path, "sleep 30")
    with pytest.raises(PassFailed, match="timed out after 1 s"):
        run_in_worker({"op": "pass"}, tmp_path / "w", 1, {}, python=sleeper)


def test_workers_get_the_telemetry_off_environment(tmp_path):
    probe = fake_interpreter(tmp_path, f"env > {tmp_path}/env.txt")
    with pytest.raises(PassFailed):
        run_in_worker({"op": "pass"}, tmp_path / "w", 30, {"PATH": "/usr/bin:/bin"}, python=probe)
    seen = dict(line.split("=", 1) for line in (tmp_path / "env.txt").read_text().splitlines() if "=" in line)
    for key, value in OFFLINE_ENV.items():
        assert seen[key] == value
