"""The worker requests of a build, typed, with the limits every job runs under."""

from __future__ import annotations

from collections.abc import Mapping

from edgeopt.artifact import ModelArtifact
from edgeopt.builder.data import BuildData
from edgeopt.builder.layout import OutputLayout
from edgeopt.manifest import Manifest, resolve_path
from edgeopt.measure.metrics import Metric
from edgeopt.planner import Step
from edgeopt.protocol import (
    AccuracyRequest,
    DiagnoseRequest,
    LlmJob,
    MetricRequest,
    PassRequest,
    TimingRequest,
    Validation,
)
from edgeopt.registry import Registry
from edgeopt.runners import Job, Limits


class Requests:
    def __init__(self, manifest: Manifest, registry: Registry, metric: Metric, data: BuildData, layout: OutputLayout,
                 interpreters: Mapping[str, str] | None = None):
        self.manifest, self.registry, self.metric, self.data, self.layout = manifest, registry, metric, data, layout
        self.interpreters = dict(interpreters or {})  # backend environment → the interpreter its jobs run with
        spec = manifest.measure
        self.limits = Limits(spec.timeout_s, spec.stall_s, spec.memory_limit_mb)
        self._common = {"import_paths": (manifest.base_dir,)}
        self.metric_request = MetricRequest(**manifest.evaluation.metric.model_dump())
        self.keep_outputs = False  # every model's outputs are kept when the target's are compared with them

    def _adapter(self, framework: str) -> str:
        return self.registry.entry(framework).module

    def _python(self, framework: str) -> str | None:
        """The interpreter of the backend environment a framework's jobs run in; None for edgeopt's own."""
        runs_in = self.registry.entry(framework).runs_in
        if runs_in is None:
            return None
        if runs_in not in self.interpreters:
            from edgeopt.envs import create_command
            from edgeopt.errors import MissingDependency

            raise MissingDependency(f"the {runs_in} environment ({framework} runs there)", create_command(runs_in))
        return self.interpreters[runs_in]

    def llm(self) -> LlmJob | None:
        if not self.metric.computed_by_runtime:
            return None
        spec = self.manifest.llm
        return LlmJob(text=str(self.data.eval), context_length=spec.context_length, eval_tokens=spec.eval_tokens,
                      prompts=tuple(spec.prompts), max_new_tokens=spec.max_new_tokens, repeats=spec.repeats)

    def _reference(self, baseline: bool) -> dict:
        if not self.metric.needs_reference:
            return {}
        key = "save_outputs" if baseline else "reference_outputs"
        return {key: str(self.layout.reference_outputs)}

    def keeps_outputs(self, baseline: bool) -> bool:
        return self.keep_outputs or (baseline and self.metric.needs_reference)

    def pass_job(self, step: Step, artifact: ModelArtifact | None) -> Job:
        framework, _, short = step.pass_name.partition(".")
        validation = None
        if step.needs_validation:
            validation = Validation(data=str(self.data.eval), metric=self.metric_request,
                                    reference_outputs=self._reference(False).get("reference_outputs"))
        request = PassRequest(
            adapter=self._adapter(framework), step=step.id, pass_name=short, config=step.config, input=artifact,
            output_dir=str(self.layout.model(step.id)), task=self.manifest.model.task,
            source_path=str(resolve_path(self.manifest.model.path)) if step.reads_source else None,
            calibration_data=str(self.data.calibration) if step.needs_calibration else None,
            calibration_skip_tokens=self.data.calibration_skip_tokens if step.needs_calibration else 0,
            timing_data=str(self.data.timing) if step.needs_timing_data else None,
            validation=validation, shared_dir=str(self.layout.shared), **self._common)
        return Job(request, str(self.layout.work(step.id, "pass")), self.limits, python=self._python(framework))

    def accuracy_job(self, record_id: str, artifact: ModelArtifact, baseline: bool) -> Job:
        request = AccuracyRequest(
            adapter=self._adapter(artifact.framework), artifact=artifact, eval_data=str(self.data.eval),
            eval_batch_size=self.manifest.evaluation.batch_size, metric=self.metric_request,
            threads=self.manifest.measure.threads, llm=self.llm(), **self._reference(baseline), **self._common)
        if self.keeps_outputs(baseline):
            request = request.model_copy(update={"save_outputs": str(self.layout.outputs(record_id))})
        return Job(request, str(self.layout.work(record_id, "accuracy")), self.limits,
                   python=self._python(artifact.framework))

    def timing_job(self, record_id: str, artifact: ModelArtifact) -> Job:
        request = TimingRequest(
            adapter=self._adapter(artifact.framework), artifact=artifact, timing_data=str(self.data.timing),
            batch_size=self.manifest.measure.batch_size, threads=self.manifest.measure.threads, llm=self.llm(),
            **self._common)
        return Job(request, str(self.layout.work(record_id, "timing")), self.limits,
                   python=self._python(artifact.framework))

    def diagnose_job(self, record_id: str, artifact: ModelArtifact, reference: ModelArtifact, samples: int) -> Job:
        request = DiagnoseRequest(adapter=self._adapter(artifact.framework), artifact=artifact, reference=reference,
                                  eval_data=str(self.data.eval), samples=samples, **self._common)
        return Job(request, str(self.layout.work(record_id, "diagnose")), self.limits,
                   python=self._python(artifact.framework))
