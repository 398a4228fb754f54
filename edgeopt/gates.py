"""Gate policies (data in gates/) and their evaluation against the baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from edgeopt.errors import ManifestError, closest
from edgeopt.measure.metrics import Metric
from edgeopt.measurements import Measurements, Ratios
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


Verdict = Literal["pass", "fail", "inconclusive"]


class GateResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    value: float | None
    threshold: float
    interval: tuple[float, float] | None = Field(default=None, description="95% interval of the value, when measured with a spread")
    detail: str = ""
    provenance: str | None = Field(default=None, description="where the figure the gate read came from: measured-device, "
                                   "measured-host, simulated, estimated")

    @computed_field
    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

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


def ratio_metrics(candidate: Measurements, baseline: Measurements, metric: Metric) -> Ratios:
    """A candidate's figures against the baseline's (None where either side is missing). The speedup
    is not here: it comes from the timing rounds, each candidate against the baseline of the same round."""
    return Ratios(
        accuracy_retained=metric.retained(candidate.score, baseline.score),
        peak_rss_cut=_cut(candidate.peak_rss_mb, baseline.peak_rss_mb),
        size_cut=_cut(candidate.size_mb, baseline.size_mb),
    )


def _cut(value, base):
    return None if value is None or not base else 1 - value / base


INCONCLUSIVE = "inconclusive: rerun with more rounds"


def evaluate(ratios: Ratios, policy: GatePolicy, provenance: dict[str, str] | None = None) -> dict[str, GateResult]:
    """Each gate of the policy against the candidate's ratios. A ratio measured with a confidence
    interval passes when the interval's lower bound clears the threshold, fails when its upper bound
    is below it, and is otherwise inconclusive."""
    results: dict[str, GateResult] = {}
    memory_key = f"{policy.memory_basis}_cut"
    for gate, key, interval_key in (("accuracy_retained", "accuracy_retained", None), ("speedup", "speedup", "speedup_ci"),
                                    ("memory_cut", memory_key, None)):
        threshold = getattr(policy, gate)
        if threshold is None:
            continue
        value = ratios.get(key)
        interval = ratios.get(interval_key) if interval_key else None
        detail = f"basis: {policy.memory_basis}" if gate == "memory_cut" else ""
        verdict = verdict_of(value, interval, threshold)
        unreliable = ratios.speedup_unreliable if gate == "speedup" else None
        if unreliable and value is not None:  # neither a pass nor a fail says anything about a quiet machine
            verdict, detail = "inconclusive", unreliable
        results[gate] = GateResult(verdict=verdict, value=value, threshold=threshold, interval=interval,
                                   detail=detail if value is not None else "not measured",
                                   provenance=(provenance or {}).get(gate))
    return results


def verdict_of(value: float | None, interval: tuple[float, float] | None, threshold: float) -> Verdict:
    if value is None:
        return "fail"
    slack = 1e-9  # tiny float noise must not flip a verdict that is exactly at its threshold
    if interval is None:
        return "pass" if value >= threshold - slack else "fail"
    low, high = interval
    if low >= threshold - slack:
        return "pass"
    if high < threshold - slack:
        return "fail"
    return "inconclusive"
