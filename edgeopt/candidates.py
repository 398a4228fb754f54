"""A candidate as the build records it and the report shows it, and how the recommended one is chosen."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.gates import GateResult
from edgeopt.measurements import Measurements, Ratios

Status = Literal["ok", "failed", "skipped", "duplicate"]


class CandidateRecord(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)

    id: str
    framework: str
    precision: str | None = None
    stage: str
    pass_name: str | None = Field(default=None, alias="pass")
    config: dict = Field(default_factory=dict)
    input: str | None = None
    status: Status
    error: str | None = Field(default=None, description="what failed or why it was skipped, first line")
    error_detail: str | None = Field(default=None, description="the whole error text (bounded)")
    same_as: str | None = Field(default=None, description="duplicate: the candidate with the same model and settings")
    provenance: str
    metrics: Measurements | None = None
    ratios: Ratios = Ratios()
    target_ratios: Ratios | None = Field(default=None, description="against the baseline, both on the target device "
                                         "(estimated latency, simulated accuracy)")
    gates: dict[str, GateResult] = Field(default_factory=dict)
    model_path: str | None = None
    model_files: list[str] = Field(default_factory=list, description="every file of the model, model_path included")
    runtime_config: dict = Field(default_factory=dict)
    lineage: list[dict] = Field(default_factory=list)
    pass_seconds: float | None = None
    cached: dict[str, bool] = Field(default_factory=dict, description="which results came from the build cache")

    @property
    def passed_all_gates(self) -> bool:
        return self.status == "ok" and bool(self.gates) and all(g.passed for g in self.gates.values())

    @property
    def inconclusive(self) -> bool:
        return self.status == "ok" and any(g.verdict == "inconclusive" for g in self.gates.values())

    @property
    def keeps_accuracy(self) -> bool:
        gate = self.gates.get("accuracy_retained")
        return self.status == "ok" and (gate is None or gate.passed)


Preference = Literal["latency", "memory", "size", "accuracy"]


def preference_key(record: CandidateRecord, prefer: Preference):
    """Smaller is better. Speed and accuracy are ranked on the figures the gates read: the target's where the
    build has them (a build for a board picks what is fastest there, not here), as ratios to the baseline,
    which compare across batches timed in different rounds."""
    m = record.metrics
    return {
        "latency": lambda: _by_speedup(record),
        "memory": lambda: m.peak_rss_mb,
        "size": lambda: m.size_mb,
        "accuracy": lambda: -(decision_ratio(record, "accuracy_retained") or 0.0),
    }[prefer]()


def decision_ratio(record: CandidateRecord, name: str) -> float | None:
    """A ratio to the baseline as decisions read it: on the target's figures when the build has one."""
    on_target = getattr(record.target_ratios, name) if record.target_ratios is not None else None
    if on_target is not None:
        return on_target
    return getattr(record.ratios, name) if record.ratios is not None else None


def _by_speedup(record: CandidateRecord) -> tuple:
    speedup = decision_ratio(record, "speedup")
    if speedup is not None:
        return (0, -speedup)
    return (1, record.metrics.p50 if record.metrics and record.metrics.p50 is not None else float("inf"))


def select(records: list[CandidateRecord], prefer: Preference) -> CandidateRecord | None:
    """The best by preference among the candidates whose every gate passed with confidence."""
    candidates = passing(records)
    return min(candidates, key=lambda r: preference_key(r, prefer)) if candidates else None


def leader(records: list[CandidateRecord], prefer: Preference) -> CandidateRecord | None:
    """The candidate later stages build on: the best by preference among those that keep accuracy."""
    candidates = keeping_accuracy(records)
    return min(candidates, key=lambda r: preference_key(r, prefer)) if candidates else None


def passing(records: list[CandidateRecord]) -> list[CandidateRecord]:
    """What a selection is made from."""
    return [r for r in records if r.passed_all_gates]


def keeping_accuracy(records: list[CandidateRecord]) -> list[CandidateRecord]:
    """What a leader is chosen from: the timed candidates that keep accuracy."""
    return [r for r in records if r.keeps_accuracy and r.metrics and r.metrics.latency_ms]
