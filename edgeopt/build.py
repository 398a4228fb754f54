"""Execution of a Plan: passes and measurements in worker processes, gates, selection, report."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edgeopt.artifact import ModelArtifact
from edgeopt.candidates import CandidateRecord, leader, select
from edgeopt.datasets import Dataset, load_dataset
from edgeopt.errors import ManifestError, PassFailed
from edgeopt.gates import evaluate, ratio_metrics
from edgeopt.manifest import Manifest, resolve_path
from edgeopt.measure.metrics import HIGHER_IS_BETTER
from edgeopt.measure.process import run_in_worker
from edgeopt.planner import Plan, Step, require_installed
from edgeopt.registry import Registry

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    plan: Plan
    baseline: CandidateRecord
    candidates: tuple[CandidateRecord, ...]
    selected: CandidateRecord | None
    out_dir: Path
    seconds: float
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Data:
    eval: Path
    timing: Path
    calibration: Path
    notes: tuple[str, ...]


class Builder:
    def __init__(self, plan: Plan, manifest: Manifest, registry: Registry, out_dir: Path,
                 env: Mapping[str, str], progress: Progress = lambda _: None, python: str = sys.executable):
        self.plan, self.manifest, self.registry = plan, manifest, registry
        self.out_dir, self.env, self.progress, self.python = out_dir, env, progress, python
        self.artifacts: dict[str, ModelArtifact] = {}
        self.records: list[CandidateRecord] = []
        self.baseline: CandidateRecord | None = None
        self.notes: list[str] = []

    def run(self) -> BuildResult:
        require_installed(self.plan)  # fail before any work, with the install command
        started = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.data = self._prepare_data()
        if self.manifest.model.format == "onnx":
            self.artifacts["source"] = self._source_artifact()
        if self.plan.baseline == "source":
            self.baseline = self._measure("baseline", self.artifacts["source"], stage="source", step=None,
                                          baseline=True)
        total = len(self.plan.steps)
        for number, step in enumerate(self.plan.steps, 1):
            self.progress(f"[{number}/{total}] {step.stage}: {step.id} ({step.pass_name})")
            self._run_step(step)
        self._recheck_baseline()
        if self.baseline is None:  # the baseline step itself failed
            self.baseline = CandidateRecord(id="baseline", framework=self.plan.framework, stage="source",
                                            status="failed", error="the baseline could not be made",
                                            provenance=self.plan.provenance)
        selected = select(self.records, self.manifest.prefer)
        if selected is not None:
            self._copy_selected(selected)
        return BuildResult(self.plan, self.baseline, tuple(self.records), selected, self.out_dir,
                           time.perf_counter() - started, (*self.data.notes, *self.notes))

    # -- data -------------------------------------------------------------------------------------
    def _prepare_data(self) -> _Data:
        self.progress("preparing evaluation and calibration data")
        folder = self.out_dir / "data"
        evaluation = load_dataset(self.manifest.evaluation.data, self.manifest, "evaluation.data")
        notes = []
        if self.manifest.calibration.data is not None:
            calibration = load_dataset(self.manifest.calibration.data, self.manifest, "calibration.data")
        else:
            calibration = evaluation
            notes.append("calibrated on the evaluation data (the manifest names no calibration data)")
        calibration = calibration.head(self.manifest.calibration.samples)
        batch = self.manifest.measure.batch_size
        if len(evaluation) < batch:
            raise ManifestError(self.manifest.name, "measure.batch_size",
                                f"{batch} is more than the {len(evaluation)} evaluation samples")
        return _Data(
            eval=evaluation.save(folder / "eval.npz"),
            timing=evaluation.head(batch).save(folder / "timing.npz"),
            calibration=calibration.save(folder / "calibration.npz"),
            notes=tuple(notes),
        )

    def _source_artifact(self) -> ModelArtifact:
        path = resolve_path(self.manifest.model.path)
        if not path.is_file():
            raise ManifestError(self.manifest.name, "model.path", f"{path} is not a model file")
        return ModelArtifact(path=str(path), framework=self.plan.framework, precision="fp32")

    # -- steps ------------------------------------------------------------------------------------
    def _run_step(self, step: Step) -> None:
        source, input_artifact = self._input_for(step)
        if input_artifact is None and not (step.input == "source" and self.manifest.model.format != "onnx"):
            self._record_not_run(step, "skipped", f"its input ({source}) is not available")
            return
        try:
            artifact, seconds = self._apply(step, input_artifact)
        except PassFailed as exc:
            self.progress(f"    failed: {exc}")
            self._record_not_run(step, "failed", str(exc))
            return
        self.artifacts[step.id] = artifact
        if step.role == "baseline":
            self.baseline = self._measure("baseline", artifact, stage=step.stage, step=step, seconds=seconds,
                                          baseline=True)
        else:
            self.records.append(self._measure(step.id, artifact, stage=step.stage, step=step, seconds=seconds))

    def _input_for(self, step: Step) -> tuple[str, ModelArtifact | None]:
        if step.input == "@leader":
            best = leader(self.records, self.manifest.prefer)
            return ("the best candidate that keeps accuracy", None) if best is None else (best.id, self.artifacts.get(best.id))
        return step.input, self.artifacts.get(step.input)

    def _apply(self, step: Step, artifact: ModelArtifact | None) -> tuple[ModelArtifact, float]:
        framework, _, short = step.pass_name.partition(".")
        request = {
            "op": "pass",
            "adapter": self.registry.entry(framework).module,
            "pass": short,
            "config": step.config,
            "input": artifact.model_dump(mode="json") if artifact else None,
            "output_dir": str(self._step_dir(step.id) / "model"),
            "calibration_data": str(self.data.calibration) if step.needs_calibration else None,
            "source_path": str(resolve_path(self.manifest.model.path)) if step.input == "source" else None,
            "extra": {"step": step.id, "task": self.manifest.model.task},
            "import_paths": [self.manifest.base_dir],
        }
        result = run_in_worker(request, self._step_dir(step.id) / "pass", self.manifest.measure.timeout_s,
                               self.env, self.python)
        return ModelArtifact(**result["artifact"]), result["seconds"]

    def _measure(self, record_id: str, artifact: ModelArtifact, stage: str, step: Step | None,
                 seconds: float | None = None, baseline: bool = False, accuracy: bool = True) -> CandidateRecord:
        self.progress(f"    measuring {record_id} ({artifact.precision})")
        spec = self.manifest.measure
        metric = self.manifest.evaluation.metric
        request = {
            "op": "measure",
            "adapter": self.registry.entry(artifact.framework).module,
            "artifact": artifact.model_dump(mode="json"),
            "timing_data": str(self.data.timing),
            "eval_data": str(self.data.eval),
            "batch_size": spec.batch_size,
            "eval_batch_size": self.manifest.evaluation.batch_size,
            "warmup_runs": spec.warmup_runs,
            "min_runs": spec.min_runs,
            "max_runs": spec.max_runs,
            "time_budget_s": spec.time_budget_s,
            "threads": spec.threads,
            "metric": metric.model_dump(mode="json"),
            "evaluate_accuracy": accuracy,
            "reference_outputs": None if baseline or metric.name != "fidelity" else str(self._reference_outputs()),
            "save_outputs": str(self._reference_outputs()) if baseline and accuracy else None,
            "import_paths": [self.manifest.base_dir],
        }
        common = dict(
            id=record_id, framework=artifact.framework, precision=artifact.precision, stage=stage,
            pass_name=step.pass_name if step else None, config=step.config if step else {},
            input=step.input if step else None, provenance=self.plan.provenance, model_path=artifact.path,
            runtime_config=artifact.runtime_config, lineage=[e.model_dump(mode="json") for e in artifact.lineage],
            pass_seconds=seconds,
        )
        try:
            metrics = run_in_worker(request, self._step_dir(record_id) / "measure", spec.timeout_s, self.env, self.python)
        except PassFailed as exc:
            self.progress(f"    measurement failed: {exc}")
            return CandidateRecord(**common, status="failed", error=f"measurement: {exc}")
        if metrics.get("accuracy", {}).get("reference"):
            metrics["accuracy"]["provenance"] = "reference"
        record = CandidateRecord(**common, status="ok", metrics=metrics)
        if baseline:
            return record
        record = self._gate(record)
        self.progress("    " + ", ".join(f"{k} {_fmt(v.value)} ({'pass' if v.passed else 'FAIL'})" for k, v in record.gates.items()))
        return record

    def _gate(self, record: CandidateRecord) -> CandidateRecord:
        if record.status != "ok" or self.baseline is None or self.baseline.status != "ok":
            return record
        ratios = ratio_metrics(record.metrics, self.baseline.metrics, HIGHER_IS_BETTER[self.manifest.evaluation.metric.name])
        return record.model_copy(update={"ratios": ratios, "gates": evaluate(ratios, self.plan.gates)})

    def _recheck_baseline(self) -> None:
        """Time the baseline again after the candidates: on a noisy machine the first run alone can make
        every candidate look faster (or slower) than it is. Speedups use the faster of the two runs, so
        they are never overstated, and a large drift is reported."""
        artifact = self.artifacts.get(self.plan.baseline)
        if self.baseline is None or self.baseline.status != "ok" or artifact is None or not self.records:
            return
        # latency only: the baseline's accuracy and reference outputs do not change between runs
        again = self._measure("baseline-recheck", artifact, stage=self.baseline.stage, step=None,
                              baseline=True, accuracy=False)
        if again.status != "ok":
            return
        first, second = self.baseline.metrics["latency_ms"]["p50"], again.metrics["latency_ms"]["p50"]
        faster = again if second < first else self.baseline
        metrics = {**self.baseline.metrics, "latency_ms": faster.metrics["latency_ms"],
                   "throughput_per_s": faster.metrics["throughput_per_s"], "baseline_p50_runs_ms": [first, second]}
        self.baseline = self.baseline.model_copy(update={"metrics": metrics})
        drift = abs(second - first) / min(first, second)
        if drift > 0.15:
            self.notes.append(
                f"the baseline's median latency moved {drift:.0%} between the start and the end of the build "
                f"({first:.3f} → {second:.3f} ms): timings on this machine are noisy; speedups use the faster run")
        self.records = [self._gate(r) for r in self.records]

    def _record_not_run(self, step: Step, status: str, error: str) -> None:
        record = CandidateRecord(id=step.id, framework=self.plan.framework, stage=step.stage, pass_name=step.pass_name,
                                 config=step.config, input=step.input, status=status, error=error,
                                 provenance=self.plan.provenance)
        if step.role == "baseline":
            self.baseline = record.model_copy(update={"id": "baseline"})
        else:
            self.records.append(record)

    def _reference_outputs(self) -> Path:
        return self._step_dir("baseline") / "outputs.npy"

    def _step_dir(self, step_id: str) -> Path:
        return self.out_dir / "steps" / step_id

    def _copy_selected(self, record: CandidateRecord) -> None:
        folder = self.out_dir / "selected"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        shutil.copy2(record.model_path, folder / Path(record.model_path).name)
        (folder / "runtime_config.json").write_text(json.dumps(record.runtime_config, indent=2))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
