"""Workers in this very process: no isolation, no limits, but no process start either. For tests of the
build's logic (with a toy framework) and for debugging a pass under a debugger."""

from __future__ import annotations

from pathlib import Path

from edgeopt.operations import ONE_SHOT, TimingSession, respond
from edgeopt.protocol import SessionInfo, WindowRequest, WindowResult
from edgeopt.runners import Job, Outcome, TimingFailed, outcome_of


class InProcessTimer:
    def __init__(self, job: Job):
        self.workdir = Path(job.workdir)
        holder = {}

        def open_session():
            holder["session"] = TimingSession(job.request)
            return holder["session"].info

        self.info = SessionInfo.model_validate(self._result(respond(open_session)))
        self._session = holder["session"]

    def window(self, request: WindowRequest) -> WindowResult:
        return WindowResult.model_validate(self._result(respond(lambda: self._session.window(request))))

    def _result(self, response) -> dict:
        outcome = outcome_of(response, self.workdir)
        if not outcome.ok:
            raise TimingFailed(outcome.detail or outcome.error)
        return outcome.result

    def close(self) -> None:
        pass


class InProcessRunner:
    name = "inprocess"
    parallelism = 1

    def run_all(self, jobs: list[Job]) -> list[Outcome]:
        return [self._run(job) for job in jobs]

    @staticmethod
    def _run(job: Job) -> Outcome:
        if job.python:  # a backend environment's toolchain imports only under its own interpreter
            import os

            from edgeopt.runners.child import run_child
            from edgeopt.telemetry import offline_env

            return run_child(job, offline_env(os.environ))
        return outcome_of(respond(lambda: ONE_SHOT[job.request.op](job.request)), Path(job.workdir))

    def open_timer(self, job: Job) -> InProcessTimer:
        return InProcessTimer(job)

    def close(self) -> None:
        pass
