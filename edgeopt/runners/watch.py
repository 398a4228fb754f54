"""Watching a worker process: it is stopped when it runs too long, makes no CPU progress (a deadlock
waiting on nothing, like MLX's CPU backend on some models), or holds more memory than allowed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from edgeopt.runners import Limits

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds of every thread, resident bytes) of one process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, int(fields[21]) * _PAGE


def tree_usage(root: int) -> tuple[float, int] | None:
    """CPU seconds and resident bytes of a process and every live descendant (a worker may run a tool)."""
    stats = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            found = _stat(int(entry))
            if found:
                stats[int(entry)] = found
    if root not in stats:
        return None
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _, _) in stats.items() if ppid == parent and pid not in members]
        members.update(children)
        frontier.extend(children)
    return sum(stats[p][1] for p in members), sum(stats[p][2] for p in members)


class Watch:
    """Call `check()` while waiting on the process; it returns why the process must be stopped, if so."""

    CPU_POLL_S = 1.0

    def __init__(self, pid: int, limits: Limits):
        self.pid, self.limits = pid, limits
        self.started = time.monotonic()
        self._last_cpu, self._progress_at, self._next_poll = -1.0, self.started, 0.0

    def restart(self) -> None:
        """A new request starts: its own time limit, and an idle wait before it is not a stall."""
        self.started = self._progress_at = time.monotonic()
        self._next_poll = 0.0

    def check(self) -> str | None:
        now = time.monotonic()
        if now - self.started > self.limits.timeout_s:
            return f"timed out after {self.limits.timeout_s:.0f} s"
        if now < self._next_poll or (self.limits.stall_s is None and self.limits.memory_limit_mb is None):
            return None
        self._next_poll = now + self.CPU_POLL_S
        usage = tree_usage(self.pid)
        if usage is None:
            return None
        cpu, rss = usage
        if self.limits.memory_limit_mb is not None and rss / 1e6 > self.limits.memory_limit_mb:
            return (f"out of memory: resident memory {rss / 1e6:.0f} MB went over measure.memory_limit_mb "
                    f"({self.limits.memory_limit_mb:g} MB)")
        if cpu > self._last_cpu + 0.01:
            self._last_cpu, self._progress_at = cpu, now
        elif self.limits.stall_s is not None and now - self._progress_at > self.limits.stall_s:
            return f"stalled (no CPU progress for {self.limits.stall_s:.0f} s)"
        return None
