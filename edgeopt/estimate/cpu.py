"""Latency on an ARM CPU core from instruction counts: llvm-mca cycles of the hot blocks on the target's
core, a memory term (the bytes a run reads once, at the board's measured bandwidth), and the target's
clock and thread count. The calibration scale and error band come from published measurements."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeopt.estimate.cores import CoreProfile
from edgeopt.estimate.counts import Counts
from edgeopt.estimate.mca import cycles_on

# share of a run that does not spread over threads (thread-pool hand-offs, small ops between kernels)
DEFAULT_SERIAL_SHARE = 0.15


@dataclass(frozen=True)
class CpuModel:
    """The target's side of the estimate."""

    core: CoreProfile
    ghz: float
    cores: int
    bandwidth_gbps: float | None  # measured (memcpy) where the catalog has it, else the datasheet's
    scale: float = 1.0  # calibration: published latency / estimate, for this core's order class
    serial_share: float = DEFAULT_SERIAL_SHARE
    error: float | None = None  # calibration: median leave-one-out |error| (a band of ± this share)
    calibration: str = "uncalibrated"


@dataclass(frozen=True)
class CpuEstimate:
    latency_ms: float
    interval: tuple[float, float] | None
    single_thread_ms: float
    compute_ms: float
    memory_ms: float
    threads: int
    ipc: float
    coverage: float
    method: str

    def as_dict(self) -> dict:
        return {"single_thread_ms": self.single_thread_ms, "compute_ms": self.compute_ms,
                "memory_ms": self.memory_ms, "threads": self.threads, "ipc": self.ipc, "coverage": self.coverage,
                "method": self.method}


def estimate(counts: Counts, model: CpuModel, bytes_read: int, threads: int, mca_cache: Path | None) -> CpuEstimate:
    cycles = cycles_on(counts, model.core.llvm_mca_cpu, mca_cache, model.core.fallback_ipc)
    compute_ms = cycles.cycles / (model.ghz * 1e9) * 1e3
    memory_ms = bytes_read / (model.bandwidth_gbps * 1e9) * 1e3 if model.bandwidth_gbps else 0.0
    single = max(compute_ms, memory_ms) * model.scale  # a roofline: whichever the run waits on
    used = max(1, min(threads, model.cores))
    latency = single * (model.serial_share + (1 - model.serial_share) / used)
    interval = (latency * (1 - model.error), latency * (1 + model.error)) if model.error is not None else None
    method = (f"{counts.instructions / 1e6:.1f}M instructions per inference under qemu ({model.core.qemu_cpu}, "
              f"{model.core.uarch} cpuinfo); {cycles.method}, IPC {cycles.ipc:.2f}, {cycles.coverage:.0%} covered; "
              f"{model.ghz} GHz, {used} thread(s); {model.calibration}")
    return CpuEstimate(latency, interval, single, compute_ms, memory_ms, used, cycles.ipc, cycles.coverage, method)
