"""Where worker jobs run: local worker processes, or a Ray cluster.

A job is plain data (a worker request, a folder, a timeout), so it can travel to another machine.
Executors run passes and accuracy evaluations, which may overlap; latency is always timed by the
build itself, one candidate at a time, on the machine the report names.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import MissingDependency, PassFailed, UsageError
from edgeopt.measure.process import run_in_worker

RAY_INSTALL = "pip install 'edgeopt[ray]'"


@dataclass(frozen=True)
class Job:
    request: dict
    workdir: str
    timeout_s: float


@dataclass(frozen=True)
class Outcome:
    result: dict | None = None
    error: str | None = None


def run_job(job: Job, env: Mapping[str, str], python: str) -> Outcome:
    try:
        return Outcome(result=run_in_worker(job.request, Path(job.workdir), job.timeout_s, env, python))
    except PassFailed as exc:
        return Outcome(error=str(exc))


class LocalExecutor:
    """Worker processes on this machine, `jobs` at a time."""

    name = "local"

    def __init__(self, env: Mapping[str, str], python: str = sys.executable, jobs: int = 1):
        self.env, self.python, self.parallelism = dict(env), python, max(1, jobs)

    def run_all(self, jobs: list[Job]) -> list[Outcome]:
        if self.parallelism == 1 or len(jobs) <= 1:
            return [run_job(job, self.env, self.python) for job in jobs]
        with ThreadPoolExecutor(self.parallelism) as pool:  # threads only wait; the work is in child processes
            return list(pool.map(lambda job: run_job(job, self.env, self.python), jobs))

    def close(self) -> None:
        pass


class RayExecutor:
    """Ray tasks, each running one worker process on whichever node Ray picks.

    The build folder and the cache must be on storage every node sees (a shared file system), as
    requests and models travel by path. `address` is what ray.init takes: None joins RAY_ADDRESS or
    starts a local instance; "auto", "host:port" or "ray://host:port" join a running cluster.
    """

    name = "ray"

    def __init__(self, env: Mapping[str, str], python: str = sys.executable, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise MissingDependency("ray (for --executor ray)", RAY_INSTALL) from None
        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        self.env, self.python = dict(env), python
        self.parallelism = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1)(run_job)

    def run_all(self, jobs: list[Job]) -> list[Outcome]:
        futures = [self._remote.remote(job, self.env, self.python) for job in jobs]
        return self._ray.get(futures)

    def close(self) -> None:
        if self._started_here:
            self._ray.shutdown()


def make_executor(spec: str, env: Mapping[str, str], python: str = sys.executable, jobs: int = 1):
    """`local`, `ray` (local instance or RAY_ADDRESS) or `ray:ADDRESS` / `ray://host:port`."""
    if spec == "local":
        return LocalExecutor(env, python, jobs)
    if spec == "ray":
        return RayExecutor(env, python)
    if spec.startswith("ray://"):
        return RayExecutor(env, python, spec)
    if spec.startswith("ray:"):
        return RayExecutor(env, python, spec[4:])
    raise UsageError(f"unknown executor {spec!r}: expected local, ray, ray:ADDRESS or ray://HOST:PORT")
