"""The child-process runner against real child processes (and fake interpreters that misbehave)."""

import sys

import pytest

from edgeopt.protocol import PassRequest
from edgeopt.runners import Job, Limits, WorkerBug
from edgeopt.runners.child import run_child
from edgeopt.telemetry import OFFLINE_ENV

ENV = {"PATH": "/usr/bin:/bin"}


def pass_job(tmp_path, limits=Limits(60), adapter="edgeopt.frameworks.onnxruntime") -> Job:
    request = PassRequest(adapter=adapter, step="s", pass_name="optimize", config={"level": "basic"},
                          input={"path": str(tmp_path / "missing.onnx"), "framework": "onnxruntime"},
                          output_dir=str(tmp_path / "out"))
    return Job(request, str(tmp_path / "w"), limits)


def test_a_failing_pass_comes_back_failed_with_its_first_line_and_the_whole_text(tmp_path):
    outcome = run_child(pass_job(tmp_path), ENV)
    assert outcome.status == "failed"
    assert "\n" not in outcome.error and "missing.onnx" in outcome.error
    assert outcome.detail.startswith(outcome.error)
    assert "Traceback" in (tmp_path / "w" / "traceback.txt").read_text()


def test_a_bug_in_the_worker_is_an_internal_error_with_the_traceback_path(tmp_path):
    # an adapter module that does not honour the contract is edgeopt's own bug, not a failed candidate
    with pytest.raises(WorkerBug) as caught:
        run_child(pass_job(tmp_path, adapter="edgeopt.telemetry"), ENV)
    assert "internal error" in str(caught.value) and str(tmp_path / "w" / "traceback.txt") in str(caught.value)
    assert caught.value.exit_status == 3


def fake_interpreter(tmp_path, script: str) -> str:
    """A stand-in for the worker's Python that misbehaves the way a real crash or hang would."""
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


def test_a_worker_that_dies_fails_its_candidate(tmp_path):
    crasher = fake_interpreter(tmp_path, "echo dying >&2\nkill -SEGV $$")
    outcome = run_child(pass_job(tmp_path), {}, python=crasher)
    assert outcome.status == "failed" and "SIGSEGV" in outcome.error and "dying" in outcome.error


def test_a_hang_times_out(tmp_path):
    busy = fake_interpreter(tmp_path, "while :; do :; done")
    outcome = run_child(pass_job(tmp_path, Limits(timeout_s=1)), {}, python=busy)
    assert outcome.status == "failed" and "timed out after 1 s" in outcome.error


def test_a_worker_that_sleeps_without_cpu_is_stopped_as_stalled(tmp_path):
    sleeper = fake_interpreter(tmp_path, "sleep 60")
    outcome = run_child(pass_job(tmp_path, Limits(timeout_s=60, stall_s=2)), {}, python=sleeper)
    assert outcome.status == "failed" and "stalled (no CPU progress for 2 s)" in outcome.error


def test_a_worker_over_its_memory_limit_is_stopped_as_out_of_memory(tmp_path):
    grower = fake_interpreter(tmp_path, f"exec {sys.executable} -c \"import time; b = bytearray(400 << 20); time.sleep(30)\"")
    outcome = run_child(pass_job(tmp_path, Limits(timeout_s=60, memory_limit_mb=200)), ENV, python=grower)
    assert outcome.status == "failed" and "out of memory" in outcome.error and "200 MB" in outcome.error


def test_workers_get_the_telemetry_off_environment(tmp_path):
    probe = fake_interpreter(tmp_path, f"env > {tmp_path}/env.txt")
    assert run_child(pass_job(tmp_path), ENV, python=probe).status == "failed"
    seen = dict(line.split("=", 1) for line in (tmp_path / "env.txt").read_text().splitlines() if "=" in line)
    for key, value in OFFLINE_ENV.items():
        assert seen[key] == value
