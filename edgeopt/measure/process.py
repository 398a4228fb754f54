"""The parent side of the worker protocol: run one request in a child process, with a timeout."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from edgeopt.errors import PassFailed
from edgeopt.telemetry import offline_env


def run_in_worker(request: dict, workdir: Path, timeout_s: float, env: Mapping[str, str],
                  python: str = sys.executable) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    request_path, response_path, log_path = workdir / "request.json", workdir / "response.json", workdir / "worker.log"
    response_path.unlink(missing_ok=True)
    request_path.write_text(json.dumps(request, indent=2))
    command = [python, "-m", "edgeopt.worker", str(request_path), str(response_path)]
    with log_path.open("w") as log:
        try:
            completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=offline_env(env),
                                       timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise PassFailed(f"timed out after {timeout_s:.0f} s (log: {log_path})") from None
    if not response_path.exists():
        raise PassFailed(f"worker died ({_describe_exit(completed.returncode)}); last output: {_tail(log_path)}")
    response = json.loads(response_path.read_text())
    if not response["ok"]:
        (workdir / "traceback.txt").write_text(response.get("traceback", ""))
        # the first line says what failed; the whole story stays in traceback.txt beside the log
        first_line = response["error"].strip().splitlines()[0] if response["error"].strip() else "unknown error"
        raise PassFailed(first_line)
    return response["result"]


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return " | ".join(text[-lines:]) or "(nothing)"
