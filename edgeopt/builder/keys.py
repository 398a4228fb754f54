"""Every cache key of a build, in one place: what a pass output or a measurement depends on.

A key hashes the input model's bytes (never its path), the pass and its config, the data's contents,
the framework versions, the target and edgeopt's version; change any of them and the entry is missed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from edgeopt import __version__
from edgeopt.artifact import ModelArtifact
from edgeopt.builder.data import BuildData
from edgeopt.cache import artifact_digest, make_key
from edgeopt.hashing import path_digest, value_digest
from edgeopt.manifest import Manifest, resolve_path
from edgeopt.measure.metrics import Metric
from edgeopt.planner import Plan, Step
from edgeopt.registry import Registry

# Bumped when what a timing window's figures mean changes, so cached windows of the old kind are missed.
# 2: peak RSS leaves out edgeopt's own modules (a cached baseline with them beside a new candidate without
# them would make a memory cut of nothing).
TIMING_FIGURES = 2


def model_identity(artifact: ModelArtifact, registry: Registry) -> str:
    """Two artifacts with this digest are the same candidate: the same model (as its runtime judges
    sameness), format, runtime and settings."""
    runtime = registry.adapter(artifact.framework).runtime if registry.entry(artifact.framework) else None
    content = runtime.model_digest(artifact) if runtime is not None else artifact_digest(artifact)
    return value_digest([content, artifact.format, artifact.framework, artifact.runtime_config])


# measure settings that change no window timed: limits on a worker, and the margin the gates widen intervals by
NOT_IN_TIMING_KEY = {"timeout_s", "stall_s", "memory_limit_mb", "speedup_margin"}


class CacheKeys:
    def __init__(self, manifest: Manifest, plan: Plan, registry: Registry, metric: Metric, data: BuildData,
                 reference_outputs: Path, env_keys: Mapping[str, str | None] | None = None):
        self.manifest, self.plan, self.registry, self.metric = manifest, plan, registry, metric
        self.data, self.reference_outputs = data, reference_outputs
        self.env_keys = dict(env_keys or {})
        self._source_model: str | None = None

    def versions(self, *frameworks: str | None) -> dict:
        found = {}
        for name in frameworks:
            if name:
                status = self.registry.availability.get(name)
                found[name] = status.version if status else None
                entry = self.registry.entry(name)
                if entry is not None and entry.runs_in:  # what else its environment holds counts as well
                    found[f"{name} environment"] = self.env_keys.get(entry.runs_in)
        return found

    def model_key(self, artifact: ModelArtifact) -> dict:
        return {"digest": artifact_digest(artifact), "meta": artifact.model_dump(mode="json", exclude={"path", "lineage"})}

    def hooks(self) -> str | None:
        # a decode or data hook beside the manifest changes what the metric means
        scripts = sorted(Path(self.manifest.base_dir).glob("*.py"))
        return value_digest([path_digest(p) for p in scripts]) if scripts else None

    def _reference(self, baseline: bool) -> str | None:
        # only metrics that compare with the baseline's outputs depend on them
        if baseline or not self.metric.needs_reference or not self.reference_outputs.exists():
            return None
        return path_digest(self.reference_outputs)

    def validation(self) -> dict:
        return {"eval": self.data.digests["eval"], "metric": self.manifest.evaluation.metric.model_dump(mode="json"),
                "reference": self._reference(False), "hooks": self.hooks()}

    def source_model(self) -> str:
        """The manifest's model by its bytes: what the seconds its passes took are filed under."""
        if self._source_model is None:
            self._source_model = path_digest(resolve_path(self.manifest.model.path))
        return self._source_model

    def pass_key(self, step: Step, artifact: ModelArtifact | None) -> str:
        framework = step.pass_name.partition(".")[0]
        return make_key(
            "pass", edgeopt=__version__, pass_name=step.pass_name, config=step.config,
            input=self.model_key(artifact) if artifact else None,
            source=self.source_model() if step.reads_source else None,
            calibration=self.data.digests["calibration"] if step.needs_calibration else None,
            validation=self.validation() if step.needs_validation else None,
            versions=self.versions(framework, artifact.framework if artifact else None),
            task=self.manifest.model.task, target=self.plan.target.id,
            **({"timing": self.data.digests["timing"]} if step.needs_timing_data else {}),
            **({"environments": {name: self.env_keys.get(name) for name in step.environments}}
               if step.environments else {}),
        )

    def accuracy_key(self, artifact: ModelArtifact, baseline: bool) -> str:
        return make_key(
            "accuracy", edgeopt=__version__, model=self.model_key(artifact), data=self.data.digests["eval"],
            metric=self.manifest.evaluation.metric.model_dump(mode="json"), batch=self.manifest.evaluation.batch_size,
            versions=self.versions(artifact.framework), reference=self._reference(baseline), baseline=baseline,
            hooks=self.hooks(), threads=self.manifest.measure.threads,
        )

    def timing_key(self, artifact: ModelArtifact, paired_with: ModelArtifact | None) -> str:
        """One model's timing windows; a candidate's are paired with the baseline's of the same rounds."""
        return make_key(
            "timing", edgeopt=__version__, figures=TIMING_FIGURES, model=self.model_key(artifact),
            baseline=self.model_key(paired_with) if paired_with else None, **self._timing_setup(artifact),
        )

    def runoff_key(self, artifacts: list[ModelArtifact], baseline: ModelArtifact) -> str:
        """The run-off's windows: these models timed again side by side, beside this baseline."""
        return make_key(
            "runoff", edgeopt=__version__, figures=TIMING_FIGURES, models=[self.model_key(a) for a in artifacts],
            baseline=self.model_key(baseline), **self._timing_setup(*artifacts, baseline),
        )

    def _timing_setup(self, *artifacts: ModelArtifact) -> dict:
        return {"measure": self.manifest.measure.model_dump(mode="json", exclude=NOT_IN_TIMING_KEY),
                "data": self.data.digests["timing"], "versions": self.versions(*(a.framework for a in artifacts)),
                "target": value_digest(self.plan.target.model_dump(mode="json"))}

    def diagnosis_key(self, artifact: ModelArtifact, reference: ModelArtifact, samples: int) -> str:
        return make_key("diagnosis", edgeopt=__version__, model=self.model_key(artifact), reference=self.model_key(reference),
                        data=self.data.digests["eval"], versions=self.versions(artifact.framework), samples=samples)
