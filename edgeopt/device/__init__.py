"""Timing on the board itself, over ssh: `edgeopt build … --device ssh://user@host[:port][?python=…&key=…]`.

For each candidate the model and a small standalone timer (board_timer.py) are copied into a temporary
folder on the board, the board's own Python runs the timer (its runtime, its cores), window by window as
the build's rounds ask, JSON lines over the ssh connection; the folder is removed afterwards. The system's
ssh and scp do the work (BatchMode: a key, never a password prompt).
"""

from __future__ import annotations

import json
import os
import select
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from edgeopt.errors import UsageError
from edgeopt.protocol import SessionInfo, TimingRequest, WindowRequest, WindowResult
from edgeopt.runners import Job, TimingFailed

DEVICE_FRAMEWORKS = ("onnxruntime", "openvino")  # what board_timer.py drives
TIMER = Path(__file__).resolve().parent / "board_timer.py"


@dataclass(frozen=True)
class Device:
    host: str
    user: str | None = None
    port: int = 22
    python: str = "python3"
    key: str | None = None
    options: tuple[str, ...] = field(default=())  # extra `-o` options (e.g. UserKnownHostsFile=...)

    @classmethod
    def parse(cls, url: str) -> Device:
        parsed = urlparse(url)
        if parsed.scheme != "ssh" or not parsed.hostname:
            raise UsageError(f"--device {url!r}: expected ssh://[user@]host[:port][?python=PATH&key=PATH]")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        unknown = set(query) - {"python", "key", "known_hosts"}
        if unknown:
            raise UsageError(f"--device: unknown option(s) {sorted(unknown)}; expected python, key, known_hosts")
        options = (f"UserKnownHostsFile={query['known_hosts']}",) if "known_hosts" in query else ()
        return cls(parsed.hostname, parsed.username, parsed.port or 22, query.get("python", "python3"),
                   query.get("key"), options)

    @property
    def display(self) -> str:
        return f"ssh://{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def _common(self) -> list[str]:
        args = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "StrictHostKeyChecking=accept-new",
                "-o", "LogLevel=ERROR"]
        for option in self.options:
            args += ["-o", option]
        if self.key:
            args += ["-i", self.key]
        return args

    def _target(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def ssh(self, command: str) -> list[str]:
        return ["ssh", "-p", str(self.port), *self._common(), self._target(), command]

    def scp(self, files: list[Path], remote_dir: str) -> list[str]:
        return ["scp", "-q", "-P", str(self.port), *self._common(), *map(str, files), f"{self._target()}:{remote_dir}/"]


def _run(command: list[str], what: str, timeout: float = 120) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimingFailed(f"{what}: no answer from the device within {timeout:.0f} s") from None
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[-1]
        raise TimingFailed(f"{what}: {message}")
    return done.stdout


def _feeds_file(request: TimingRequest, folder: Path) -> Path:
    """The timed batch as the model's feeds (batch axes in place, constants included): the board's timer
    feeds them as they are, with no edgeopt to read the data file's layout."""
    import numpy as np

    from edgeopt.datafiles import load_samples

    samples = load_samples(request.timing_data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "feeds.npz"
    np.savez(path, **samples.feed(0, request.batch_size))
    return path


class DeviceTimer:
    """One candidate on the board: copied, loaded once by the board's Python, timed window by window."""

    def __init__(self, device: Device, job: Job):
        request: TimingRequest = job.request
        artifact = request.artifact
        if artifact.framework not in DEVICE_FRAMEWORKS:
            raise TimingFailed(f"timing on the device covers {', '.join(DEVICE_FRAMEWORKS)}, not {artifact.framework}")
        self.device, self.timeout = device, job.limits.timeout_s
        self.log = Path(job.workdir) / "device.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.remote = _run(device.ssh("mktemp -d /tmp/edgeopt-XXXXXX"), "cannot reach the device").strip()
        self._process = None
        try:
            feeds = _feeds_file(request, Path(job.workdir))
            files = [*artifact.all_paths(), feeds, TIMER]
            _run(device.scp(files, self.remote), "copying the model to the device", timeout=max(120, self.timeout))
            command = f"cd {shlex.quote(self.remote)} && exec {shlex.quote(device.python)} board_timer.py"
            self._stderr = self.log.open("w")
            self._process = subprocess.Popen(device.ssh(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=self._stderr, text=True)
            spec = {"op": "open", "framework": artifact.framework, "model": Path(artifact.path).name,
                    "runtime_config": artifact.runtime_config, "threads": request.threads,
                    "data": feeds.name, "batch_size": None}
            opened = self._ask(spec)
            self.machine = opened.get("machine")
            try:
                self.info = SessionInfo(versions=opened.get("versions", {}), load_s=opened.get("load_s"),
                                        threads=opened.get("threads"), machine=opened.get("machine"),
                                        runtime_import_rss_mb=opened.get("runtime_import_rss_mb"),
                                        size_mb=sum(p.stat().st_size for p in artifact.all_paths()) / 1e6)
            except ValueError as exc:
                raise TimingFailed(f"the device's timer described its session in a way edgeopt cannot read: {exc}") \
                    from None
        except BaseException:
            self.close()
            raise

    def window(self, request: WindowRequest) -> WindowResult:
        result = self._ask({"op": "window", **request.model_dump(exclude={"op"})})
        try:  # pydantic's ValidationError is a ValueError
            return WindowResult(samples_ms=tuple(result["samples_ms"]), started=result["started"],
                                wall_s=result["wall_s"], cpu_s=result["cpu_s"], peak_rss_mb=result.get("peak_rss_mb"),
                                load_average=result.get("load_average"))
        except (KeyError, TypeError, ValueError) as exc:
            raise TimingFailed(f"the device's timer sent a window edgeopt cannot read: {exc}") from None

    def _ask(self, message: dict) -> dict:
        process = self._process
        try:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
        except BrokenPipeError:
            pass
        deadline = time.monotonic() + self.timeout
        while True:
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                line = process.stdout.readline()
                break
            if process.poll() is not None or time.monotonic() > deadline:
                line = ""
                break
        if not line:
            process.kill()
            tail = self.log.read_text(errors="replace").strip().splitlines()[-3:] if self.log.exists() else []
            raise TimingFailed("the device's timer stopped answering" + (f": {' | '.join(tail)}" if tail else ""))
        try:  # the board is another machine: what comes back is checked, never trusted
            answer = json.loads(line)
            status, result = answer["status"], answer.get("result")
        except (ValueError, KeyError, TypeError):
            raise TimingFailed(f"the device's timer answered outside the protocol: {line[:200]!r} (does the "
                               "board's shell print to stdout on login?)") from None
        if status != "ok":
            install = f" — on the board: {answer['install']}" if answer.get("install") else ""
            raise TimingFailed(f"on the device: {answer.get('error', 'unknown error')}{install}")
        if not isinstance(result, dict):
            raise TimingFailed(f"the device's timer answered outside the protocol: {line[:200]!r}")
        return result

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            try:
                self._process.stdin.close()
                self._process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._process.kill()
        if getattr(self, "_stderr", None):
            self._stderr.close()
        if getattr(self, "remote", None):
            try:  # the board keeps nothing of ours
                _run(self.device.ssh(f"rm -rf {shlex.quote(self.remote)}"), "cleaning up on the device", timeout=60)
            except TimingFailed:
                pass
            self.remote = None


class DeviceRunner:
    """Times candidates on a board; passes and accuracy stay with the build's own runner."""

    name = "ssh"
    parallelism = 1

    def __init__(self, device: Device):
        self.device = device

    def run_all(self, jobs):
        raise NotImplementedError("the device runner only times models")

    def open_timer(self, job: Job) -> DeviceTimer:
        return DeviceTimer(self.device, job)

    def close(self) -> None:
        pass


def describe(device: Device) -> str:
    return device.display + (f" ({os.path.basename(device.python)})" if device.python != "python3" else "")
