"""Workers as child processes of this machine: one per pass or accuracy run, one per timing session."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgeopt.protocol import Response, SessionInfo, WindowRequest, WindowResult
from edgeopt.runners import Job, Outcome, TimingFailed, outcome_of
from edgeopt.runners.watch import Watch
from edgeopt.telemetry import offline_env

POLL_S = 0.1


def run_child(job: Job, env: Mapping[str, str], python: str = sys.executable) -> Outcome:
    """One operation in a fresh process, JSON by file. A crash, hang, stall or runaway memory fails it. A job that
    names a backend environment's interpreter runs with that one."""
    return outcome_of(child_response(job, env, job.python or python), Path(job.workdir))


def child_response(job: Job, env: Mapping[str, str], python: str = sys.executable) -> Response:
    """The worker's response, or a failed one saying how the process ended without one."""
    workdir = Path(job.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    request_path, response_path, log_path = workdir / "request.json", workdir / "response.json", workdir / "worker.log"
    response_path.unlink(missing_ok=True)
    request_path.write_text(json.dumps(job.request.model_dump(mode="json"), indent=2))
    command = [python, "-m", "edgeopt.worker", str(request_path), str(response_path)]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env=offline_env({**env, **dict(job.environment)}), start_new_session=True)
        stopped = _wait(process, Watch(process.pid, job.limits))
    if stopped:
        return Response(status="failed", error=f"{stopped} (log: {log_path})")
    if not response_path.exists():
        return Response(status="failed",
                        error=f"worker died ({describe_exit(process.returncode)}); last output: {tail(log_path)}")
    return Response.model_validate_json(response_path.read_text())


def _wait(process: subprocess.Popen, watch: Watch) -> str | None:
    while True:
        try:
            process.wait(timeout=POLL_S)
            return None
        except subprocess.TimeoutExpired:
            reason = watch.check()
            if reason:
                _kill(process)
                return reason


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the worker and anything it started
    except ProcessLookupError:
        pass
    process.wait()


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return " | ".join(text[-lines:]) or "(nothing)"


class ChildTimer:
    """A timing session in a child process that lives across windows: the model is loaded once."""

    def __init__(self, job: Job, env: Mapping[str, str], python: str):
        self.workdir = Path(job.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "worker.log"
        (self.workdir / "request.json").write_text(json.dumps(job.request.model_dump(mode="json"), indent=2))
        read_end, write_end = os.pipe()
        self._log = self.log_path.open("w")
        self._process = subprocess.Popen(
            [python, "-m", "edgeopt.worker", "--serve", str(write_end)], stdin=subprocess.PIPE, stdout=self._log,
            stderr=subprocess.STDOUT, env=offline_env(env), pass_fds=(write_end,), start_new_session=True, text=True)
        os.close(write_end)
        self._replies = read_end
        self._buffer = ""
        self._watch = Watch(self._process.pid, job.limits)
        try:
            self.info = SessionInfo.model_validate(self._ask(job.request.model_dump_json()))
        except TimingFailed:
            self.close()
            raise

    def window(self, request: WindowRequest) -> WindowResult:
        return WindowResult.model_validate(self._ask(request.model_dump_json()))

    def _ask(self, line: str) -> dict:
        if self._process.poll() is not None:
            raise TimingFailed(f"the timing worker is gone ({describe_exit(self._process.returncode)})")
        try:
            self._process.stdin.write(line + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # it died: the reply loop says how
        self._watch.restart()
        reply = self._reply()
        outcome = outcome_of(Response.model_validate_json(reply), self.workdir)
        if not outcome.ok:
            raise TimingFailed(outcome.detail or outcome.error)
        return outcome.result

    def _reply(self) -> str:
        fd = self._replies
        while "\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], POLL_S)
            if ready:
                chunk = os.read(fd, 1 << 16).decode()
                if not chunk:  # the worker closed its end: it died
                    self._process.wait()
                    raise TimingFailed(f"timing worker died ({describe_exit(self._process.returncode)}); "
                                       f"last output: {tail(self.log_path)}")
                self._buffer += chunk
                continue
            reason = self._watch.check()
            if reason:
                _kill(self._process)
                raise TimingFailed(f"{reason} (log: {self.log_path})")
        line, self._buffer = self._buffer.split("\n", 1)
        return line

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                _kill(self._process)
        os.close(self._replies)
        self._log.close()


class SubprocessRunner:
    """Worker processes on this machine, `jobs` at a time."""

    name = "local"

    def __init__(self, env: Mapping[str, str], python: str = sys.executable, jobs: int = 1):
        self.env, self.python, self.parallelism = dict(env), python, max(1, jobs)

    def run_all(self, jobs: list[Job]) -> list[Outcome]:
        if self.parallelism == 1 or len(jobs) <= 1:
            return [run_child(job, self.env, self.python) for job in jobs]
        with ThreadPoolExecutor(self.parallelism) as pool:  # threads only wait; the work is in child processes
            return list(pool.map(lambda job: run_child(job, self.env, self.python), jobs))

    def open_timer(self, job: Job) -> ChildTimer:
        return ChildTimer(job, self.env, job.python or self.python)

    def close(self) -> None:
        pass

