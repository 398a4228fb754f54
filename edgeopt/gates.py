"""Gate policies (data in gates/) and their evaluation against the baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.errors import ManifestError, closest
from edgeopt.resources import data_dir
from edgeopt.validation import validate_model
from edgeopt.yamlio import load_yaml

MemoryBasis = Literal["peak_rss", "size"]


class GatePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    accuracy_retained: float | None = Field(default=0.95, description="candidate score / baseline score, at least")
    speedup: float | None = Field(default=2.0, description="baseline p50 latency / candidate p50 latency, at least")
    memory_cut: float | None = Field(default=0.5, description="1 - candidate memory / baseline memory, at least")
    memory_basis: MemoryBasis = Field(default="peak_rss", description="which memory the memory_cut gate reads")


class GateResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    value: float | None
    threshold: float
    detail: str = ""

    @property
    def shortfall(self) -> float | None:
        return None if self.value is None else self.threshold - self.value


def load_gate_policies(folder: Path | None = None) -> dict[str, GatePolicy]:
    folder = folder or data_dir("gates")
    policies = [validate_model(GatePolicy, load_yaml(p), str(p)) for p in sorted(folder.glob("*.yaml"))]
    return {p.name: p for p in policies}


def effective_policy(overrides, policies: dict[str, GatePolicy], manifest_file: str = "manifest") -> GatePolicy:
    if overrides.policy not in policies:
        raise ManifestError(manifest_file, "gates.policy", f"unknown gate policy {overrides.policy!r}; "
                            f"expected one of: {', '.join(sorted(policies))}", closest(overrides.policy, policies))
    changes = {k: v for k, v in overrides.model_dump(exclude={"policy"}).items() if v is not None}
    return policies[overrides.policy].model_copy(update=changes)


def ratio_metrics(candidate: dict, baseline: dict, higher_is_better: bool) -> dict[str, float | None]:
    """Ratios of a candidate's metrics to the baseline's; None where either side is missing."""

    def get(metrics, *path):
        for key in path:
            metrics = (metrics or {}).get(key)
        return metrics

    def div(a, b):
        return None if a is None or b in (None, 0) else a / b

    base_score, score = get(baseline, "accuracy", "score"), get(candidate, "accuracy", "score")
    retained = div(score, base_score) if higher_is_better else div(base_score, score)
    if not higher_is_better and score == 0 and base_score is not None:
        retained = 1.0 if base_score == 0 else float("inf")
    return {
        "accuracy_retained": retained,
        "speedup": div(get(baseline, "latency_ms", "p50"), get(candidate, "latency_ms", "p50")),
        "peak_rss_cut": _cut(get(candidate, "peak_rss_mb"), get(baseline, "peak_rss_mb")),
        "size_cut": _cut(get(candidate, "size_mb"), get(baseline, "size_mb")),
    }


def _cut(value, base):
    return None if value is None or not base else 1 - value / base


def evaluate(ratios: dict[str, float | None], policy: GatePolicy) -> dict[str, GateResult]:
    results: dict[str, GateResult] = {}
    memory_key = f"{policy.memory_basis}_cut"
    for gate, key in (("accuracy_retained", "accuracy_retained"), ("speedup", "speedup"), ("memory_cut", memory_key)):
        threshold = getattr(policy, gate)
        if threshold is None:
            continue
        value = ratios.get(key)
        detail = f"basis: {policy.memory_basis}" if gate == "memory_cut" else ""
        if value is None:
            detail = "not measured"
        # Tiny float noise must not flip a verdict that is exactly at its threshold.
        passed = value is not None and value >= threshold - 1e-9
        results[gate] = GateResult(passed=passed, value=value, threshold=threshold, detail=detail)
    return results
