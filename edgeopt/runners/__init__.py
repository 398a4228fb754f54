"""Where worker jobs run: child processes on this machine, this very process (fast tests), or a Ray
cluster. A job is plain data (a typed request, a folder, limits), so it can travel anywhere.

Runners run passes, accuracy evaluations and diagnoses, which may overlap. Timing goes through a
runner's `open_timer`, which keeps one process per candidate alive (the model loaded once) and times
one window per call; the build calls timers one at a time, so windows never overlap. Ray hands timing
to a local child process: latency is measured on the machine the report names.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from edgeopt.errors import EdgeoptError, ExitStatus, UsageError
from edgeopt.protocol import Request, Response, SessionInfo, WindowRequest, WindowResult


@dataclass(frozen=True)
class Limits:
    """When a worker is stopped: wall time, no CPU progress, or resident memory."""

    timeout_s: float
    stall_s: float | None = None
    memory_limit_mb: float | None = None


@dataclass(frozen=True)
class Job:
    request: Request
    workdir: str
    limits: Limits
    environment: tuple[tuple[str, str], ...] = ()  # added to the worker's environment for this job only
    python: str | None = None  # the interpreter of a backend environment the job runs in (None: the runner's)


@dataclass(frozen=True)
class Outcome:
    status: Literal["ok", "skipped", "failed"]
    result: dict | None = None
    error: str | None = None  # the first line: what the table shows
    detail: str | None = None  # the whole error text (bounded), for report.json
    cached: bool = False  # the result came from the build cache, not from a worker

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class WorkerBug(EdgeoptError):
    """edgeopt's own worker code failed: the build stops (exit 3) instead of blaming a candidate."""

    exit_status = ExitStatus.INTERNAL


class TimingFailed(Exception):
    """A timing session could not be opened or a window failed: that candidate's timing fails."""


def outcome_of(response: Response, workdir: Path) -> Outcome:
    """A response as an outcome; an internal error becomes WorkerBug, with the traceback kept beside."""
    if response.traceback:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "traceback.txt").write_text(response.traceback)
    if response.status == "internal":
        raise WorkerBug(f"internal error in an edgeopt worker: {first_line(response.error)} "
                        f"(traceback: {workdir / 'traceback.txt'})")
    if response.status == "ok":
        return Outcome("ok", result=response.result)
    return Outcome(response.status, error=first_line(response.error), detail=response.error)


def first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else "unknown error"


class Timer(Protocol):
    info: SessionInfo

    def window(self, request: WindowRequest) -> WindowResult:
        """One timed window; raises TimingFailed."""

    def close(self) -> None: ...


class Runner(Protocol):
    name: str
    parallelism: int

    def run_all(self, jobs: list[Job]) -> list[Outcome]: ...

    def open_timer(self, job: Job) -> Timer:
        """A loaded model, ready to time windows; raises TimingFailed."""

    def close(self) -> None: ...


def make_runner(spec: str, env: Mapping[str, str], python: str = sys.executable, jobs: int = 1) -> Runner:
    """`local`, `inprocess`, `ray` (local instance or RAY_ADDRESS), `ray:ADDRESS` or `ray://host:port`."""
    from edgeopt.runners.child import SubprocessRunner

    if spec == "local":
        return SubprocessRunner(env, python, jobs)
    if spec == "inprocess":
        from edgeopt.runners.inprocess import InProcessRunner

        return InProcessRunner()
    if spec == "ray" or spec.startswith("ray:"):
        from edgeopt.runners.ray import RayRunner

        address = None if spec == "ray" else spec if spec.startswith("ray://") else spec[4:]
        return RayRunner(env, python, address)
    raise UsageError(f"unknown executor {spec!r}: expected local, ray, ray:ADDRESS or ray://HOST:PORT")
