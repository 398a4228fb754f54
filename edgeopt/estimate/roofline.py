"""Roofline estimates from the target's published peaks: a model's multiply-accumulates at the peak of its
precision on the engine it runs on (CPU cores, an NPU core), or, for language-model decode, the bytes each
token reads at the board's measured memory bandwidth; times an efficiency fitted on published
measurements (edgeopt/estimate/calibration.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgeopt.catalog import Target
from edgeopt.estimate.graph import GraphCost

Engine = Literal["cpu", "npu", "llm-decode"]


class NoPeak(ValueError):
    """The catalog has no peak for this engine and precision on this target."""


def peak_ops(target: Target, engine: Engine, precision: str, threads: int | None = None, npu_cores: int = 1) -> float:
    """Operations per second (a multiply-accumulate is two) of the engine at this precision."""
    if engine == "npu":
        npu = target.npu
        if npu is None or npu.tops_int8 is None:
            raise NoPeak(f"{target.id} has no NPU with a published int8 peak")
        per_core = npu.tops_int8 * 1e12 / npu.cores
        scale = {"int8": 1.0, "int16": 0.5, "fp16": 0.25}.get(_group(precision))
        if scale is None:
            raise NoPeak(f"{target.id}'s NPU has no {precision} peak")
        return per_core * min(npu_cores, npu.cores) * scale
    peak = target.peak
    if peak is None or peak.fp32_gflops is None:
        raise NoPeak(f"{target.id} has no published CPU peak")
    cores = max(1, target.cores)
    share = min(threads or cores, cores) / cores
    group = _group(precision)
    if group == "int8" and peak.int8_gops:
        return peak.int8_gops * 1e9 * share
    if group == "fp16" and ("fphp" in target.cpu.isa or "asimdhp" in target.cpu.isa):
        return 2 * peak.fp32_gflops * 1e9 * share  # fp16 arithmetic: twice the lanes per vector
    return peak.fp32_gflops * 1e9 * share


def bandwidth(target: Target) -> float:
    gbps = target.memory.measured_bandwidth_gbps or target.memory.bandwidth_gbps
    if not gbps:
        raise NoPeak(f"{target.id} has no memory bandwidth in the catalog")
    return gbps * 1e9


def _group(precision: str) -> str:
    p = precision.lower()
    if "int8" in p or p.startswith("q8") or p in ("int8-static", "int8-dynamic", "int8-mixed"):
        return "int8"
    if "fp16" in p or "f16" in p or "bf16" in p:
        return "fp16"
    if "int16" in p:
        return "int16"
    return "fp32"


@dataclass(frozen=True)
class Roofline:
    ideal_ms: float  # at the peaks: what an efficiency of 1 would give
    compute_ms: float
    memory_ms: float


def compute_roofline(target: Target, engine: Engine, macs_by_precision: dict[str, float], bytes_moved: float = 0.0,
                     threads: int | None = None, npu_cores: int = 1) -> Roofline:
    compute = sum(2 * macs / peak_ops(target, engine, precision, threads, npu_cores)
                  for precision, macs in macs_by_precision.items() if macs)
    memory = bytes_moved / bandwidth(target) if bytes_moved else 0.0
    return Roofline(max(compute, memory) * 1e3, compute * 1e3, memory * 1e3)


def graph_roofline(target: Target, engine: Engine, cost: GraphCost, threads: int | None = None) -> Roofline:
    """Node by node: each waits on its compute or on its bytes, whichever is longer."""
    total = compute = memory = 0.0
    bw = bandwidth(target)
    for node in cost.nodes:
        c = 2 * node.macs / peak_ops(target, engine, node.precision, threads) if node.macs else 0.0
        c += node.elements / peak_ops(target, engine, "fp32", threads) if node.elements and engine == "cpu" else 0.0
        m = node.bytes / bw
        total += max(c, m)
        compute += c
        memory += m
    return Roofline(total * 1e3, compute * 1e3, memory * 1e3)


def decode_roofline(target: Target, weight_bytes: float) -> Roofline:
    """One generated token reads every weight once: the board's bandwidth bounds decode speed."""
    memory = weight_bytes / bandwidth(target)
    return Roofline(memory * 1e3, 0.0, memory * 1e3)
