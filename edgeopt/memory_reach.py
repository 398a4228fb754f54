"""Whether the peak-RSS gate can pass at all on a runtime: a process never holds less than its runtime does
before any model is loaded, so when that alone is more than the gate allows, no model can pass it there.

Measured: the OCR recognizer's baseline peaks at 86.5 MB on ONNX Runtime, of which the runtime, imported before
the model, holds 44.5 MB; a model taking no memory at all would cut 0.49, short of the default gate's 0.5.
OpenVINO's runtime alone held 47.8 MB. The build said only "the closest: memory_cut ... < 0.5" per candidate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgeopt.candidates import CandidateRecord
from edgeopt.gates import GatePolicy, verdict_of

MEASURED = ("measured-host", "measured-device")  # where a process's peak RSS was read (not an NPU's estimate)


@dataclass(frozen=True)
class MemoryFloor:
    """A runtime's resident memory before any model, against the baseline's peak: the most any model can cut."""

    framework: str
    runtime_mb: float
    baseline_mb: float
    threshold: float
    provenance: str
    pass_on_size: tuple[str, ...] = ()  # its candidates that pass every other gate and cut the file by the threshold

    @property
    def best_cut(self) -> float:
        return 1 - self.runtime_mb / self.baseline_mb

    @property
    def reachable(self) -> bool:
        return self.best_cut >= self.threshold

    def sentence(self) -> str:
        where = "on the target" if self.provenance == "measured-device" else "on the build host, not the target"
        return (f"memory_cut cannot pass on {self.framework} whatever the model: its runtime alone holds "
                f"{self.runtime_mb:.1f} MB before any model loads, of the baseline's {self.baseline_mb:.1f} MB peak "
                f"RSS (both measured {where}), so a model that took no memory would cut {self.best_cut:.2f} < "
                f"{self.threshold}; to gate the model's own memory, set gates.memory_basis: size, under which "
                + (f"{', '.join(self.pass_on_size)} would pass every gate" if self.pass_on_size
                   else "none of its candidates would pass every gate either"))


def memory_floors(baseline: CandidateRecord | None, records: list[CandidateRecord],
                  policy: GatePolicy) -> list[MemoryFloor]:
    """Per framework measured, the least runtime-only memory any of its processes held (the baseline's own
    framework included), when the policy gates peak RSS; empty when there is nothing to say it from."""
    if policy.memory_cut is None or policy.memory_basis != "peak_rss":
        return []
    base = baseline.metrics if baseline is not None and baseline.status == "ok" else None
    if base is None or not base.peak_rss_mb:
        return []
    least: dict[str, tuple[float, str]] = {}
    for record in (baseline, *records):
        runtime_mb = _runtime_mb(record)
        if runtime_mb is None:
            continue
        provenance = record.metrics.sources.get("peak_rss_mb", record.provenance)
        if record.framework not in least or runtime_mb < least[record.framework][0]:
            least[record.framework] = (runtime_mb, provenance)
    return [MemoryFloor(framework, runtime_mb, base.peak_rss_mb, policy.memory_cut, provenance,
                        tuple(r.id for r in records if r.framework == framework and _passes_on_size(r, policy)))
            for framework, (runtime_mb, provenance) in sorted(least.items())]


def out_of_reach(floors: Iterable[MemoryFloor]) -> list[MemoryFloor]:
    return [floor for floor in floors if not floor.reachable]


def _passes_on_size(record: CandidateRecord, policy: GatePolicy) -> bool:
    """Every gate but memory passed, and the model file's cut passes the memory gate as the gates judge it."""
    others = [gate for name, gate in record.gates.items() if name != "memory_cut"]
    return (record.status == "ok" and bool(others) and all(g.passed for g in others)
            and verdict_of(record.ratios.size_cut, None, policy.memory_cut) == "pass")


def _runtime_mb(record: CandidateRecord) -> float | None:
    metrics = record.metrics
    if record.status != "ok" or metrics is None or metrics.runtime_import_rss_mb is None:
        return None
    gate = record.gates.get("memory_cut")
    if gate is not None and gate.provenance not in (None, *MEASURED):
        return None  # an estimated memory figure (an NPU's model) is not a process's peak RSS
    return metrics.runtime_import_rss_mb
