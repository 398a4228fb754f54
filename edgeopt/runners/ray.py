"""Ray tasks, each running one worker process on whichever node Ray picks.

The build folder and the cache must be on storage every node sees (a shared file system), as
requests and models travel by path. `address` is what ray.init takes: None joins RAY_ADDRESS or
starts a local instance; "auto", "host:port" or "ray://host:port" join a running cluster. Timing
never goes to Ray: it runs in a child process here, on the machine the report names.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from edgeopt.errors import MissingDependency
from edgeopt.runners import Job, Outcome, outcome_of
from edgeopt.runners.child import ChildTimer, child_response

RAY_INSTALL = "pip install 'edgeopt[ray]'"


class RayRunner:
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
        self._remote = ray.remote(num_cpus=1)(child_response)

    def run_all(self, jobs: list[Job]) -> list[Outcome]:
        # a job in a backend environment runs on this machine, where that environment is
        futures = {i: self._remote.remote(job, self.env, self.python) for i, job in enumerate(jobs) if not job.python}
        local = {i: child_response(job, self.env, job.python) for i, job in enumerate(jobs) if job.python}
        responses = {**local, **dict(zip(futures, self._ray.get(list(futures.values()))))}
        # an internal error is raised here, on the driver, not inside a Ray task
        return [outcome_of(responses[i], Path(job.workdir)) for i, job in enumerate(jobs)]

    def open_timer(self, job: Job) -> ChildTimer:
        return ChildTimer(job, self.env, job.python or self.python)

    def close(self) -> None:
        if self._started_here:
            self._ray.shutdown()
