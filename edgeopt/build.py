"""Execution of a Plan: the search over its steps, passes and measurements in worker processes, gates,
selection. Passes and accuracy runs go to an executor (they may overlap); latency is timed here, one
candidate at a time, so timings never compete with each other for the CPU."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edgeopt import __version__
from edgeopt.artifact import ModelArtifact
from edgeopt.cache import BuildCache, artifact_digest, make_key
from edgeopt.candidates import CandidateRecord, leader, select
from edgeopt.datasets import load_dataset
from edgeopt.errors import ManifestError
from edgeopt.executors import Job, LocalExecutor, Outcome, run_job
from edgeopt.gates import evaluate, ratio_metrics
from edgeopt.hashing import path_digest, value_digest
from edgeopt.manifest import Manifest, resolve_path
from edgeopt.measure.metrics import HIGHER_IS_BETTER
from edgeopt.planner import Plan, Step, require_installed
from edgeopt.progress import BuildProgress, NoProgress
from edgeopt.registry import Registry
from edgeopt.search import STAGES, ordered_steps, pareto_frontier


@dataclass(frozen=True)
class BuildResult:
    plan: Plan
    baseline: CandidateRecord
    candidates: tuple[CandidateRecord, ...]
    selected: CandidateRecord | None
    out_dir: Path
    seconds: float
    notes: tuple[str, ...] = ()
    frontier: tuple[str, ...] = ()
    search: dict | None = None  # strategy, executor, what ran, why it stopped
    cache: dict | None = None
    diagnosis: dict | None = None  # per-layer divergence of the candidate that lost most accuracy


@dataclass(frozen=True)
class _Data:
    eval: Path
    timing: Path
    calibration: Path
    digests: dict
    notes: tuple[str, ...]


class Builder:
    def __init__(self, plan: Plan, manifest: Manifest, registry: Registry, out_dir: Path,
                 env: Mapping[str, str], progress: BuildProgress | None = None, python: str = sys.executable,
                 executor=None, cache: BuildCache | None = None):
        self.plan, self.manifest, self.registry = plan, manifest, registry
        self.out_dir, self.env, self.python = out_dir, dict(env), python
        self.progress = progress or NoProgress()
        self.executor = executor or LocalExecutor(env, python)
        self.cache = cache or BuildCache(None)
        self.artifacts: dict[str, ModelArtifact] = {}
        self.records: list[CandidateRecord] = []
        self.baseline: CandidateRecord | None = None
        self.notes: list[str] = []
        self.fresh_timings = 0
        self.higher_is_better = HIGHER_IS_BETTER[manifest.evaluation.metric.name]

    def run(self) -> BuildResult:
        require_installed(self.plan)  # fail before any work, with the install command
        started = time.perf_counter()
        self.started = started
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.data = self._prepare_text() if self.manifest.model.task == "causal-lm" else self._prepare_data()
        if self.manifest.model.format in ("onnx", "gguf"):
            self.artifacts["source"] = self._source_artifact()
        if self.plan.baseline == "source":
            self.progress.step("baseline", "measuring", "the source model")
            self.baseline = self._measure_batch([("baseline", self.artifacts["source"], None, None)])[0]
        search = self._search()
        self._recheck_baseline()
        if self.baseline is None:  # the baseline step itself failed
            self.baseline = CandidateRecord(id="baseline", framework=self.plan.baseline_framework, stage="source",
                                            status="failed", error="the baseline could not be made",
                                            provenance=self.plan.provenance)
        selected = select(self.records, self.manifest.prefer)
        if selected is not None:
            self._copy_selected(selected)
        frontier = pareto_frontier([self.baseline, *self.records], self.higher_is_better)
        diagnosis = self._diagnose()
        return BuildResult(self.plan, self.baseline, tuple(self.records), selected, self.out_dir,
                           time.perf_counter() - started, (*self.data.notes, *self.notes), tuple(frontier),
                           search, self.cache.summary(), diagnosis)

    # -- data -------------------------------------------------------------------------------------
    def _prepare_data(self) -> _Data:
        self.progress.message("preparing evaluation and calibration data")
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
        timing = evaluation.head(batch)
        return _Data(
            eval=evaluation.save(folder / "eval.npz"),
            timing=timing.save(folder / "timing.npz"),
            calibration=calibration.save(folder / "calibration.npz"),
            digests={"eval": evaluation.digest(), "timing": timing.digest(), "calibration": calibration.digest()},
            notes=tuple(notes),
        )

    def _prepare_text(self) -> _Data:
        """Language models read the evaluation text themselves, with their own tokenizer."""
        text = resolve_path(self.manifest.evaluation.data.path)
        if not text.is_file():
            raise ManifestError(self.manifest.name, "evaluation.data.path", f"{text} is not a text file")
        spec = self.manifest.llm.model_dump(mode="json")
        digests = {"eval": value_digest([path_digest(text), spec]), "timing": value_digest(spec), "calibration": None}
        return _Data(eval=text, timing=text, calibration=text, digests=digests, notes=())

    def _source_artifact(self) -> ModelArtifact:
        path = resolve_path(self.manifest.model.path)
        if not path.is_file():
            raise ManifestError(self.manifest.name, "model.path", f"{path} is not a model file")
        fmt = self.manifest.model.format
        return ModelArtifact(path=str(path), format=fmt, framework=self.plan.baseline_framework,
                             precision="fp32" if fmt == "onnx" else "as-given")

    # -- the search -------------------------------------------------------------------------------
    def _search(self) -> dict:
        spec = self.plan.search
        pending = ordered_steps(self.plan)
        for step in pending:
            self.progress.step(step.id, "queued", step.pass_name)
        started_candidates = 0
        stop_reason = None
        while pending:
            if stop_reason is None:
                stop_reason = self._budget_spent(started_candidates)
            if stop_reason is not None:
                for step in pending:
                    self._record_not_run(step, "skipped", f"not evaluated: {stop_reason}")
                break
            ready = []
            for step in list(pending):
                state, why = self._input_state(step, pending)
                if state == "missing":
                    pending.remove(step)
                    self._record_not_run(step, "skipped", why)
                elif state == "ready":
                    ready.append(step)
            if not ready:
                if pending:  # cannot happen with a valid plan; never spin
                    for step in pending:
                        self._record_not_run(step, "skipped", "its input was never produced")
                break
            baseline_steps = [s for s in ready if s.role == "baseline"]
            batch = baseline_steps or ready
            if spec.strategy == "cheap-first" and not baseline_steps:
                batch = ready[: self.executor.parallelism]
            if spec.max_candidates is not None and not baseline_steps:
                batch = batch[: spec.max_candidates - started_candidates]
            started_candidates += sum(s.role == "candidate" for s in batch)
            self._run_batch(batch)
            pending = [s for s in pending if s not in batch]
            if spec.strategy == "cheap-first" and stop_reason is None:
                passing = next((r for r in self.records if r.passed_all_gates), None)
                if passing is not None and pending:
                    stop_reason = f"the cheap-first search stopped once {passing.id} passed every gate"
        return {"strategy": spec.strategy, "executor": self.executor.name, "parallelism": self.executor.parallelism,
                "candidates_started": started_candidates, "stopped": stop_reason,
                "timing": "one candidate at a time, on the machine running the build; passes and accuracy runs may overlap"}

    def _budget_spent(self, started_candidates: int) -> str | None:
        spec = self.plan.search
        if spec.max_candidates is not None and started_candidates >= spec.max_candidates:
            return f"search.max_candidates ({spec.max_candidates}) reached"
        if spec.time_budget_s is not None and time.perf_counter() - self.started > spec.time_budget_s:
            return f"search.time_budget_s ({spec.time_budget_s:g} s) spent"
        return None

    def _input_state(self, step: Step, pending: list[Step]) -> tuple[str, str]:
        if step.input == "source":
            return "ready", ""
        if step.input == "@leader":
            earlier = [s for s in pending if s.framework == step.framework and s is not step
                       and STAGES.index(s.stage) < STAGES.index(step.stage)]
            if earlier:
                return "wait", ""
            best = self._leader(step.framework)
            return ("ready", "") if best else ("missing", f"no {step.framework} candidate keeps accuracy to build on")
        if step.input in self.artifacts:
            return "ready", ""
        if any(s.id == step.input for s in pending):
            return "wait", ""
        return "missing", f"its input ({step.input}) was not produced"

    def _leader(self, framework: str) -> CandidateRecord | None:
        own = [r for r in self.records if r.framework == framework and r.id in self.artifacts]
        return leader(own, self.manifest.prefer)

    def _run_batch(self, batch: list[Step]) -> None:
        """Passes of the batch in parallel (cache first), then the measurements of what they produced."""
        jobs: list[tuple[Step, ModelArtifact | None, str, Job]] = []
        produced: list[tuple[Step, ModelArtifact, float, str, bool]] = []
        for step in batch:
            input_id, input_artifact = self._input_for(step)
            key = self._pass_key(step, input_artifact)
            cached = self.cache.get_pass(key, self._step_dir(step.id) / "model")
            if cached is not None:
                self.progress.step(step.id, "cached", f"{step.pass_name} output reused from the cache")
                produced.append((step, cached[0], cached[1], input_id, True))
                continue
            self.progress.step(step.id, "building", step.pass_name)
            jobs.append((step, input_artifact, input_id, self._pass_job(step, input_artifact)))
        if jobs:
            self.progress.message(f"running {len(jobs)} pass(es) on the {self.executor.name} executor")
        outcomes = self.executor.run_all([job for *_, job in jobs]) if jobs else []
        for (step, input_artifact, input_id, _), outcome in zip(jobs, outcomes):
            if outcome.error is not None:
                self.progress.step(step.id, "failed", outcome.error)
                self._record_not_run(step, "failed", outcome.error, input_id)
                continue
            artifact = ModelArtifact(**outcome.result["artifact"])
            self.cache.put_pass(self._pass_key(step, input_artifact), artifact, outcome.result["seconds"])
            produced.append((step, artifact, outcome.result["seconds"], input_id, False))
        for step, artifact, *_ in produced:
            self.artifacts[step.id] = artifact
        items = [("baseline" if s.role == "baseline" else s.id, a, s, (secs, input_id, hit))
                 for s, a, secs, input_id, hit in produced]
        for record in self._measure_batch(items):
            if record.id == "baseline":
                self.baseline = record
            else:
                self.records.append(record)

    def _input_for(self, step: Step) -> tuple[str, ModelArtifact | None]:
        if step.input == "@leader":
            best = self._leader(step.framework)
            return best.id, self.artifacts[best.id]
        return step.input, self.artifacts.get(step.input)

    def _pass_job(self, step: Step, artifact: ModelArtifact | None) -> Job:
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
            "validation_data": str(self.data.eval) if step.needs_validation else None,
            "extra": {"step": step.id, "task": self.manifest.model.task, **self._validation_extra(step)},
            "import_paths": [self.manifest.base_dir],
        }
        return Job(request, str(self._step_dir(step.id) / "pass"), self.manifest.measure.timeout_s)

    def _validation_extra(self, step: Step) -> dict:
        if not step.needs_validation:
            return {}
        fidelity = self.manifest.evaluation.metric.name == "fidelity"
        return {"metric": self.manifest.evaluation.metric.model_dump(mode="json"),
                "reference_outputs": str(self._reference_outputs()) if fidelity else None}

    def _pass_key(self, step: Step, artifact: ModelArtifact | None) -> str:
        framework = step.pass_name.partition(".")[0]
        return make_key(
            "pass", edgeopt=__version__, pass_name=step.pass_name, config=step.config,
            input=artifact_digest(artifact) if artifact else None,
            input_meta=artifact.model_dump(mode="json", exclude={"path", "lineage"}) if artifact else None,
            source=path_digest(resolve_path(self.manifest.model.path)) if step.input == "source" else None,
            calibration=self.data.digests["calibration"] if step.needs_calibration else None,
            validation=self._validation_digest() if step.needs_validation else None,
            versions=self._versions(framework, artifact.framework if artifact else None),
            task=self.manifest.model.task, target=self.plan.target.id,
        )

    def _versions(self, *frameworks: str | None) -> dict:
        return {name: (self.registry.availability.get(name).version if self.registry.availability.get(name) else None)
                for name in frameworks if name}

    # -- measurement ------------------------------------------------------------------------------
    def _measure_batch(self, items: list[tuple[str, ModelArtifact, Step | None, tuple | None]]) -> list[CandidateRecord]:
        """Accuracy for every item (the baseline's first: it writes the reference outputs), overlapping on
        the executor; then latency and memory, one item at a time."""
        accuracy: dict[str, Outcome] = {}
        baseline_first = sorted(items, key=lambda item: item[0] != "baseline")
        for group in ([i for i in baseline_first if i[0] == "baseline"], [i for i in baseline_first if i[0] != "baseline"]):
            accuracy.update(self._accuracy_runs(group))
        records = []
        for record_id, artifact, step, extra in items:
            self.progress.step(record_id, "timing", "latency and peak RSS")
            timing = self._timing_run(record_id, artifact)
            records.append(self._record(record_id, artifact, step, extra, timing, accuracy[record_id]))
        return records

    def _accuracy_runs(self, items) -> dict[str, Outcome]:
        results: dict[str, Outcome] = {}
        jobs = []
        for record_id, artifact, _, _ in items:
            baseline = record_id == "baseline"
            key = self._accuracy_key(artifact, baseline)
            files = self._reference_files(baseline)
            cached = self.cache.get_measurement(key, files_to=files)
            if cached is not None:
                results[record_id] = Outcome(result={**cached, "cached": True})
                continue
            self.progress.step(record_id, "measuring", f"{self.manifest.evaluation.metric.name} on the evaluation data")
            jobs.append((record_id, key, baseline, self._measure_job(record_id, artifact, "accuracy", baseline)))
        outcomes = self.executor.run_all([job for *_, job in jobs]) if jobs else []
        for (record_id, key, baseline, _), outcome in zip(jobs, outcomes):
            if outcome.error is None:
                files = self._reference_files(baseline)
                self.cache.put_measurement(key, outcome.result, files)
            results[record_id] = outcome
        return results

    def _reference_files(self, baseline: bool) -> dict[str, Path] | None:
        # only fidelity compares candidates with the baseline's outputs; then they are part of its entry
        if baseline and self.manifest.evaluation.metric.name == "fidelity":
            return {"outputs.npy": self._reference_outputs()}
        return None

    def _timing_run(self, record_id: str, artifact: ModelArtifact, use_cache: bool = True) -> Outcome:
        key = self._timing_key(artifact)
        if use_cache:
            cached = self.cache.get_measurement(key)
            if cached is not None:
                return Outcome(result={**cached, "cached": True})
        job = self._measure_job(record_id, artifact, "timing", record_id == "baseline")
        outcome = run_job(job, self.env, self.python)  # always here, never on the executor: timings must not overlap
        self.fresh_timings += 1
        if outcome.error is None and use_cache:
            self.cache.put_measurement(key, outcome.result)
        return outcome

    def _measure_job(self, record_id: str, artifact: ModelArtifact, kind: str, baseline: bool) -> Job:
        spec, metric = self.manifest.measure, self.manifest.evaluation.metric
        accuracy = kind == "accuracy"
        request = {
            "op": "measure",
            "adapter": self.registry.entry(artifact.framework).module,
            "artifact": artifact.model_dump(mode="json"),
            "timing": not accuracy,
            "evaluate_accuracy": accuracy,
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
            "llm": ({**self.manifest.llm.model_dump(mode="json"), "text": str(self.data.eval)}
                    if self.manifest.model.task == "causal-lm" else None),
            "reference_outputs": str(self._reference_outputs()) if accuracy and not baseline and metric.name == "fidelity" else None,
            "save_outputs": str(self._reference_outputs()) if accuracy and baseline and metric.name == "fidelity" else None,
            "import_paths": [self.manifest.base_dir],
        }
        return Job(request, str(self._step_dir(record_id) / kind), spec.timeout_s)

    def _timing_key(self, artifact: ModelArtifact) -> str:
        spec = self.manifest.measure
        return make_key(
            "timing", edgeopt=__version__, artifact=artifact_digest(artifact),
            meta=artifact.model_dump(mode="json", exclude={"path", "lineage"}),
            measure=spec.model_dump(mode="json", exclude={"timeout_s"}), data=self.data.digests["timing"],
            versions=self._versions(artifact.framework), target=value_digest(self.plan.target.model_dump(mode="json")),
        )

    def _accuracy_key(self, artifact: ModelArtifact, baseline: bool) -> str:
        metric = self.manifest.evaluation.metric
        reference = None
        if not baseline and metric.name == "fidelity" and self._reference_outputs().exists():
            reference = path_digest(self._reference_outputs())
        return make_key(
            "accuracy", edgeopt=__version__, artifact=artifact_digest(artifact),
            meta=artifact.model_dump(mode="json", exclude={"path", "lineage"}), data=self.data.digests["eval"],
            metric=metric.model_dump(mode="json"), batch=self.manifest.evaluation.batch_size,
            versions=self._versions(artifact.framework), reference=reference, baseline=baseline,
            hooks=self._hook_digest(),
        )

    def _validation_digest(self) -> dict:
        reference = self._reference_outputs()
        fidelity = self.manifest.evaluation.metric.name == "fidelity"  # the only metric that reads them
        return {"eval": self.data.digests["eval"], "metric": self.manifest.evaluation.metric.model_dump(mode="json"),
                "reference": path_digest(reference) if fidelity and reference.exists() else None,
                "hooks": self._hook_digest()}

    def _hook_digest(self) -> str | None:
        # a decode or data hook beside the manifest changes what the metric means
        base = Path(self.manifest.base_dir)
        scripts = sorted(base.glob("*.py"))
        return value_digest([path_digest(p) for p in scripts]) if scripts else None

    def _record(self, record_id, artifact: ModelArtifact, step: Step | None, extra, timing: Outcome,
                accuracy: Outcome) -> CandidateRecord:
        seconds, input_id, pass_cached = extra if extra else (None, step.input if step else None, False)
        common = dict(
            id=record_id, framework=artifact.framework, precision=artifact.precision,
            stage=step.stage if step else "source", pass_name=step.pass_name if step else None,
            config=step.config if step else {}, input=input_id, provenance=self.plan.provenance,
            model_path=artifact.path, model_files=[str(p) for p in artifact.all_paths()],
            runtime_config=artifact.runtime_config, lineage=[e.model_dump(mode="json") for e in artifact.lineage],
            pass_seconds=seconds,
            cached={"pass": pass_cached, "timing": bool(timing.result and timing.result.get("cached")),
                    "accuracy": bool(accuracy.result and accuracy.result.get("cached"))},
        )
        error = timing.error or accuracy.error
        if error is not None:
            which = "timing" if timing.error else "accuracy"
            self.progress.step(record_id, "failed", f"{which}: {error}")
            return CandidateRecord(**common, status="failed", error=f"measurement ({which}): {error}")
        metrics = {**{k: v for k, v in timing.result.items() if k != "cached"},
                   "accuracy": accuracy.result["accuracy"],
                   "peak_rss_with_eval_mb": accuracy.result.get("peak_rss_with_eval_mb")}
        if metrics["accuracy"].get("reference"):
            metrics["accuracy"]["provenance"] = "reference"
        record = CandidateRecord(**common, status="ok", metrics=metrics)
        if record_id == "baseline":
            self.progress.step(record_id, "done", self._figures(record))
            return record
        record = self._gate(record)
        verdicts = ", ".join(f"{k} {_fmt(v.value)} {'✓' if v.passed else '✗'}" for k, v in record.gates.items())
        self.progress.step(record_id, "done", f"{self._figures(record)}; {verdicts}")
        return record

    def _figures(self, record: CandidateRecord) -> str:
        m = record.metrics
        return (f"p50 {m['latency_ms']['p50']:.3f} ms, RSS {m['peak_rss_mb']:.0f} MB, size {m['size_mb']:.1f} MB, "
                f"{self.manifest.evaluation.metric.name} {m['accuracy']['score']:.4f}")

    def _gate(self, record: CandidateRecord) -> CandidateRecord:
        if record.status != "ok" or self.baseline is None or self.baseline.status != "ok":
            return record
        ratios = ratio_metrics(record.metrics, self.baseline.metrics, self.higher_is_better)
        return record.model_copy(update={"ratios": ratios, "gates": evaluate(ratios, self.plan.gates)})

    def _recheck_baseline(self) -> None:
        """Time the baseline again after the candidates: on a noisy machine the first run alone can make
        every candidate look faster (or slower) than it is. Speedups use the faster of the two runs, so
        they are never overstated, and a large drift is reported. When every timing came from the cache,
        so does the re-check, and a rebuild reports the same figures as the build it reuses."""
        artifact = self.artifacts.get(self.plan.baseline)
        if self.baseline is None or self.baseline.status != "ok" or artifact is None or not self.records:
            return
        key = make_key("recheck", timing=self._timing_key(artifact))
        if self.fresh_timings == 0:  # everything came from the cache: so does the re-check it had
            cached = self.cache.get_measurement(key)
            if cached is None:
                return
            again = Outcome(result=cached)
        else:
            self.progress.step("baseline", "timing", "again, after the candidates")
            again = self._timing_run("baseline-recheck", artifact, use_cache=False)
            if again.error is not None:
                return
            self.cache.put_measurement(key, again.result)
        first, second = self.baseline.metrics["latency_ms"]["p50"], again.result["latency_ms"]["p50"]
        faster = again.result if second < first else self.baseline.metrics
        metrics = {**self.baseline.metrics, "latency_ms": faster["latency_ms"],
                   "throughput_per_s": faster["throughput_per_s"], "baseline_p50_runs_ms": [first, second]}
        self.baseline = self.baseline.model_copy(update={"metrics": metrics})
        drift = abs(second - first) / min(first, second)
        if drift > 0.15:
            self.notes.append(
                f"the baseline's median latency moved {drift:.0%} between the start and the end of the build "
                f"({first:.3f} → {second:.3f} ms): timings on this machine are noisy; speedups use the faster run")
        self.records = [self._gate(r) for r in self.records]

    # -- diagnosis --------------------------------------------------------------------------------
    DIAGNOSIS_SAMPLES = 8

    def _diagnose(self) -> dict | None:
        """When a candidate lost accuracy: which layers' outputs leave the float model's first and most,
        for the candidate that lost the most. Layers are matched by name within one framework."""
        measured = [r for r in self.records if r.status == "ok" and r.ratios.get("accuracy_retained") is not None]
        if not measured:
            return None
        worst = min(measured, key=lambda r: r.ratios["accuracy_retained"])
        if worst.ratios["accuracy_retained"] >= 0.999:
            return None
        if not hasattr(self.registry.adapter(worst.framework), "layer_outputs"):
            return {"candidate": worst.id, "error": f"{worst.framework} does not expose intermediate outputs "
                    "(no per-layer diagnosis for this framework yet)"}
        reference_id, reference = self._float_reference(worst)
        if reference is None:
            return {"candidate": worst.id, "error": "no float model of the same framework to compare with"}
        self.progress.step(worst.id, "diagnosing", f"layer outputs against {reference_id}")
        request = {"op": "diagnose", "adapter": self.registry.entry(worst.framework).module,
                   "artifact": self.artifacts[worst.id].model_dump(mode="json"),
                   "reference": reference.model_dump(mode="json"), "eval_data": str(self.data.eval),
                   "samples": self.DIAGNOSIS_SAMPLES, "import_paths": [self.manifest.base_dir]}
        key = make_key("diagnosis", edgeopt=__version__, artifact=artifact_digest(self.artifacts[worst.id]),
                       reference=artifact_digest(reference), data=self.data.digests["eval"],
                       versions=self._versions(worst.framework), samples=self.DIAGNOSIS_SAMPLES)
        result = self.cache.get_measurement(key)
        if result is None:
            outcome = run_job(Job(request, str(self._step_dir(worst.id) / "diagnose"), self.manifest.measure.timeout_s),
                              self.env, self.python)
            if outcome.error is not None:
                return {"candidate": worst.id, "reference": reference_id, "error": outcome.error}
            result = outcome.result
            self.cache.put_measurement(key, result)
        self.progress.step(worst.id, "done", "diagnosed")
        return {"candidate": worst.id, "reference": reference_id,
                "accuracy_retained": worst.ratios["accuracy_retained"], **result}

    def _float_reference(self, record: CandidateRecord) -> tuple[str | None, ModelArtifact | None]:
        """The float model the candidate was made from: the fp32 artifact of its own framework and format
        that its lineage passes through, else the baseline when it has the same format."""
        artifact = self.artifacts[record.id]
        lineage = [entry.step for entry in artifact.lineage]
        for step_id in reversed(lineage):
            candidate = self.artifacts.get(step_id)
            if (candidate is not None and step_id != record.id and candidate.precision == "fp32"
                    and candidate.format == artifact.format and candidate.framework == artifact.framework):
                return step_id, candidate
        base = self.artifacts.get(self.plan.baseline)
        if base is not None and base.format == artifact.format:
            return "baseline", base
        return None, None

    def _record_not_run(self, step: Step, status: str, error: str, input_id: str | None = None) -> None:
        self.progress.step(step.id, status, error)
        record = CandidateRecord(id=step.id, framework=step.framework, stage=step.stage, pass_name=step.pass_name,
                                 config=step.config, input=input_id or step.input, status=status, error=error,
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
        """selected/ appears whole or not at all: filled beside it, then renamed into place."""
        folder = self.out_dir / "selected"
        staging = self.out_dir / ".selected.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        main = Path(record.model_path)
        for path in map(Path, record.model_files):
            target = staging / (path.relative_to(main) if main.is_dir() else path.relative_to(main.parent))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        (staging / "runtime_config.json").write_text(json.dumps(record.runtime_config, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        staging.replace(folder)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
