"""Per-layer diagnosis: for the candidate that lost the most accuracy, which layers' outputs leave the
float model's first and most. Layers are matched by name within one framework."""

from __future__ import annotations

from edgeopt.artifact import ModelArtifact
from edgeopt.builder.keys import CacheKeys
from edgeopt.builder.ledger import Ledger
from edgeopt.builder.requests import Requests
from edgeopt.cache import BuildCache
from edgeopt.candidates import CandidateRecord
from edgeopt.frameworks.base import GraphRuntime
from edgeopt.progress import BuildProgress
from edgeopt.registry import Registry
from edgeopt.runners import Runner

SAMPLES = 8


def diagnose(ledger: Ledger, baseline_step: str, registry: Registry, requests: Requests, keys: CacheKeys,
             cache: BuildCache, runner: Runner, progress: BuildProgress) -> dict | None:
    measured = [r for r in ledger.records if r.status == "ok" and r.ratios.accuracy_retained is not None]
    if not measured:
        return None
    worst = min(measured, key=lambda r: r.ratios.accuracy_retained)
    if worst.ratios.accuracy_retained >= 0.999:
        return None
    runtime = registry.adapter(worst.framework).runtime
    recorded = runtime.recorded_diagnosis(ledger.artifacts[worst.id]) if isinstance(runtime, GraphRuntime) else None
    if recorded is not None:  # the toolkit's own analysis, made when it built the candidate
        return {"candidate": worst.id, "accuracy_retained": worst.ratios.accuracy_retained, **recorded}
    if not (isinstance(runtime, GraphRuntime) and runtime.supports_layer_outputs):
        return {"candidate": worst.id, "error": f"{worst.framework} does not expose intermediate outputs "
                "(no per-layer diagnosis for this framework yet)"}
    reference_id, reference = float_reference(ledger, worst, baseline_step)
    if reference is None:
        return {"candidate": worst.id, "error": "no float model of the same framework to compare with"}
    progress.step(worst.id, "diagnosing", f"layer outputs against {reference_id}")
    artifact = ledger.artifacts[worst.id]
    key = keys.diagnosis_key(artifact, reference, SAMPLES)
    result = cache.get_measurement(key)
    if result is None:
        outcome = runner.run_all([requests.diagnose_job(worst.id, artifact, reference, SAMPLES)])[0]
        if not outcome.ok:
            return {"candidate": worst.id, "reference": reference_id, "error": outcome.error}
        result = outcome.result
        cache.put_measurement(key, result)
    progress.step(worst.id, "done", "diagnosed")
    return {"candidate": worst.id, "reference": reference_id,
            "accuracy_retained": worst.ratios.accuracy_retained, **result}


def float_reference(ledger: Ledger, record: CandidateRecord, baseline_step: str,
                    ) -> tuple[str | None, ModelArtifact | None]:
    """The float model the candidate was made from: the fp32 artifact of its own framework and format
    that its lineage passes through, else the baseline when it has the same format."""
    artifact = ledger.artifacts[record.id]
    for step_id in reversed([entry.step for entry in artifact.lineage]):
        candidate = ledger.artifacts.get(step_id)
        if (candidate is not None and step_id != record.id and candidate.precision == "fp32"
                and candidate.format == artifact.format and candidate.framework == artifact.framework):
            return step_id, candidate
    base = ledger.artifacts.get(baseline_step)
    if base is not None and base.format == artifact.format:
        return "baseline", base
    return None, None
