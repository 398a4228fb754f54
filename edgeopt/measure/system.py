"""What the operating system says about this process and the machine: memory high-water marks, CPU
time, context switches, and how busy everything else kept the CPUs (Linux /proc; fallbacks elsewhere)."""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:  # no /proc (macOS): not available, rather than a failed measurement
        return None


def peak_rss_mb() -> float:
    # VmHWM belongs to this process image alone. getrusage's ru_maxrss would not do on Linux: it carries
    # the high-water mark of the forked parent's copy across exec, so a big build process inflates it.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


@dataclass(frozen=True)
class Snapshot:
    """Counters read at one instant; two of them bracket a timed window."""

    wall: float
    cpu: float  # this process, every thread
    involuntary: int
    machine_busy_s: float | None  # every CPU of the machine, summed
    machine_steal_s: float | None
    machine_total_s: float | None


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def snapshot() -> Snapshot:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    busy = steal = total = None
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        steal = fields[7] / _TICK if len(fields) > 7 else 0.0
        total = sum(fields[:8]) / _TICK
        busy = total - idle / _TICK - steal
    except (OSError, ValueError, IndexError):
        pass
    return Snapshot(time.perf_counter(), time.process_time(), usage.ru_nivcsw, busy, steal, total)


@dataclass(frozen=True)
class Interference:
    wall_s: float
    cpu_s: float
    involuntary_switches: int
    other_busy_cores: float | None
    steal_share: float | None
    load_average: float | None


# /proc/stat counts in clock ticks (10 ms): over a shorter window one tick of anyone else's work reads as a
# core kept busy, so the machine's load is not judged on windows shorter than this
LOAD_RESOLUTION_S = 0.2


def between(before: Snapshot, after: Snapshot) -> Interference:
    wall = max(after.wall - before.wall, 1e-9)
    cpu = after.cpu - before.cpu
    other = steal_share = None
    if before.machine_busy_s is not None and after.machine_busy_s is not None and wall >= LOAD_RESOLUTION_S:
        # the machine's busy time minus ours is what everything else ran while we were timing
        other = max(0.0, (after.machine_busy_s - before.machine_busy_s) - cpu) / wall
        total = after.machine_total_s - before.machine_total_s
        steal_share = (after.machine_steal_s - before.machine_steal_s) / total if total > 0 else 0.0
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return Interference(wall, cpu, after.involuntary - before.involuntary, other, steal_share, load)
