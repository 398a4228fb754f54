"""Execution of a Plan: the coordinator of the search. It asks the scheduler for batches of steps, has
the pass stage make them, the measurer measure them (accuracy on the runner, timing in rounds here) and
the ledger record and gate them; then diagnosis, selection and the selected model's folder."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.artifact import ModelArtifact
from edgeopt.builder.data import BuildData, prepare_data, source_artifact
from edgeopt.builder.diagnosis import diagnose
from edgeopt.builder.figures import target_figures
from edgeopt.builder.keys import CacheKeys, model_identity
from edgeopt.builder.layout import OutputLayout
from edgeopt.builder.ledger import Ledger
from edgeopt.builder.measurer import Item, Measurer, Timed
from edgeopt.builder.passes import Made, PassStage
from edgeopt.builder.requests import Requests
from edgeopt.builder.target import Emulated, EmulationSetup, RooflineEstimator, TargetEmulator, cpu_model
from edgeopt.cache import BuildCache
from edgeopt.candidates import CandidateRecord, Preference
from edgeopt.estimate.cpu import estimate as cpu_estimate
from edgeopt.manifest import Manifest
from edgeopt.measure.metrics import metric as metric_named
from edgeopt.measurements import Figure, TargetFigures
from edgeopt.memory_reach import memory_floors, out_of_reach
from edgeopt.planner import Plan, Step, require_installed
from edgeopt.progress import BuildProgress, NoProgress
from edgeopt.registry import Registry
from edgeopt.runners import Runner
from edgeopt.runoff import Runoff, contenders, decide, settled
from edgeopt.search import Scheduler


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
    search: dict | None = None  # strategy, runner, what ran, why it stopped
    cache: dict | None = None
    diagnosis: dict | None = None  # per-layer divergence of the candidate that lost most accuracy
    artifacts: Mapping[str, ModelArtifact] = field(default_factory=dict)  # what each step made, by step id
    runoffs: tuple[Runoff, ...] = ()  # candidates timed again side by side to choose among them


class Builder:
    def __init__(self, plan: Plan, manifest: Manifest, registry: Registry, out_dir: Path, runner: Runner,
                 timing_runner: Runner | None = None, progress: BuildProgress | None = None,
                 cache: BuildCache | None = None, emulation: EmulationSetup | None = None, calibration=None,
                 env_keys: Mapping[str, str | None] | None = None, interpreters: Mapping[str, str] | None = None):
        self.plan, self.manifest, self.registry = plan, manifest, registry
        self.env_keys = dict(env_keys or {})  # what is in each environment a step uses (None: not there)
        self.interpreters = dict(interpreters or {})  # backend environment → its worker interpreter
        self.layout = OutputLayout(out_dir)
        self.runner, self.timing_runner = runner, timing_runner or runner
        self.progress = progress or NoProgress()
        self.cache = cache or BuildCache(None)
        self.metric = metric_named(manifest.evaluation.metric.name)
        self.emulation = emulation
        self.calibration = calibration
        self.emulation_errors: dict[str, str] = {}
        self.runoffs: dict[tuple[str, tuple[str, ...]], Runoff] = {}  # by choice and entrants: once each per build
        self._runoff_windows: dict[tuple[str, ...], dict] = {}  # by entrants: timed once, whichever choice asks

    def run(self) -> BuildResult:
        require_installed(self.plan)  # fail before any work, with the install command
        started = time.perf_counter()
        self.layout.prepare()
        self.progress.message("preparing evaluation and calibration data")
        data = prepare_data(self.manifest, self.layout)
        self._assemble(data)
        scheduler = Scheduler(self.plan, self.runner.parallelism, measured_s=self._earlier_pass_costs())
        try:
            source = source_artifact(self.manifest, self.plan.baseline_framework)
            if source is not None:
                self.ledger.add_artifact("source", source, identity_of="baseline")
            if self.plan.baseline == "source":
                self.progress.step("baseline", "measuring", "the source model")
                self._measure([Made("baseline", source)])
            while (self._baseline_ok(scheduler)
                   and (batch := scheduler.next_batch(self.ledger))):
                self._run(batch)
                scheduler.batch_done(self.ledger.first_passing())
            self._baseline_ok(scheduler)
            chosen = self._selected()
        finally:
            self.measurer.close()
        self.ledger.close_baseline(self.measurer.baseline)
        for step, status, why in scheduler.not_run:
            self.progress.step(step.id, status, why)
            self.ledger.not_run(step, status, why)
        baseline = self.ledger.baseline or CandidateRecord(
            id="baseline", framework=self.plan.baseline_framework, stage="source", status="failed",
            error="the baseline could not be made", provenance=self.plan.provenance)
        diagnosis = diagnose(self.ledger, self.plan.baseline, self.registry, self.requests, self.keys, self.cache,
                             self.runner, self.progress)
        selected = chosen
        if selected is not None:
            self.layout.copy_selected(selected)
        return BuildResult(self.plan, baseline, tuple(self.ledger.records), selected, self.layout.root,
                           time.perf_counter() - started, (*data.notes, *self._notes(baseline)),
                           tuple(self.ledger.frontier()), {**scheduler.summary(self.runner.name),
                                                           "windows": self.measurer.log},
                           self.cache.summary(), diagnosis, dict(self.ledger.artifacts), tuple(self.runoffs.values()))

    # -- choices the build's figures may not settle: run-offs (edgeopt.runoff) -----------------------------
    def _selected(self) -> CandidateRecord | None:
        """The best passing candidate by preference, or the run-off's choice where others' speedups overlap its."""
        best = self.ledger.select()
        runoff = self._run_off("the selected candidate", contenders(self.ledger.passing(), best, self.manifest.prefer))
        return self.ledger.record(runoff.chosen) if runoff and runoff.chosen else best

    def _leader(self, framework: str, prefer: Preference | None) -> CandidateRecord:
        """The candidate a later stage builds on: the best by preference among those keeping accuracy, or the
        run-off's choice where others' speedups overlap its (measured: OCR built its accelerate steps on
        ov-bf16-exec by point speedup, 3.74x [2.09-5.23], where ov-int8-acc was faster side by side)."""
        best = self.ledger.leader(framework, prefer)
        entrants = contenders(self.ledger.leader_pool(framework), best, prefer or self.manifest.prefer)
        runoff = self._run_off(f"the {framework} candidate later steps build on", entrants)
        return self.ledger.record(runoff.chosen) if runoff and runoff.chosen else best

    def _run_off(self, decides: str, entrants: list[CandidateRecord]) -> Runoff | None:
        """`entrants` timed again side by side, beside the baseline; each set of entrants once per build."""
        baseline = self.ledger.artifacts.get(self.plan.baseline)
        if not entrants or baseline is None:
            return None
        ids = tuple(r.id for r in entrants)
        known = self.runoffs.get((decides, ids))
        if known is not None:
            return known
        key = self.keys.runoff_key([self.ledger.artifacts[r.id] for r in entrants], baseline)
        # the same entrants for another choice (a leader that is also the selection's pool) reuse its rounds
        cached = self._runoff_windows.get(ids) or self.cache.get_measurement(key)
        if cached is not None:
            timed = {record_id: Timed.from_json(data) for record_id, data in cached.items()}
        else:
            self.progress.message(f"run-off for {decides}: the speedup intervals of "
                                  f"{', '.join(r.id for r in entrants)} overlap; timing them again side by side")
            timed = self.measurer.runoff([Item(r.id, self.ledger.artifacts[r.id]) for r in entrants],
                                         lambda so_far: settled(self._decide(decides, entrants, so_far)))
            if timed and all(t.error is None for t in timed.values()):
                self._runoff_windows[ids] = {record_id: t.to_json() for record_id, t in timed.items()}
                self.cache.put_measurement(key, self._runoff_windows[ids])
        runoff = self._decide(decides, entrants, timed)
        self.progress.message(f"run-off for {decides}: {runoff.reason}")
        self.runoffs[(decides, ids)] = runoff
        return runoff

    def _decide(self, decides: str, entrants: list[CandidateRecord], timed: dict[str, Timed]) -> Runoff:
        baseline_windows = {uid: w for t in timed.values() for uid, w in t.baseline_windows.items()}
        return decide(decides, entrants, {record_id: t.windows for record_id, t in timed.items() if t.error is None},
                      baseline_windows, self.manifest.measure.speedup_margin)

    def _assemble(self, data: BuildData) -> None:
        m = self.manifest
        self.keys = CacheKeys(m, self.plan, self.registry, self.metric, data, self.layout.reference_outputs,
                              self.env_keys)
        self.requests = Requests(m, self.registry, self.metric, data, self.layout, self.interpreters)
        self.passes = PassStage(self.requests, self.keys, self.cache, self.runner, self.layout, self.progress)
        self.measurer = Measurer(m, self.requests, self.keys, self.cache, self.runner, self.timing_runner, self.progress)
        min_intervals = self.requests.llm().min_intervals if self.metric.computed_by_runtime else None
        self.emulator = None
        self.roofline = None
        if self.plan.target_evaluation is not None:
            self.roofline = RooflineEstimator(self.plan.target, self.calibration, data,
                                              lambda: self.ledger.artifacts.get(self.plan.baseline))
        if self.emulation is not None and self.plan.target_evaluation and self.plan.target_evaluation.emulation:
            self.requests.keep_outputs = True  # the target's outputs are compared with the host's
            self.emulator = TargetEmulator(self.plan.target_evaluation.emulation, self.emulation.env,
                                           self.emulation.core, self.requests, self.keys, self.cache,
                                           self.emulation.runner, self.runner, self.layout, data, self.progress)
            self.cpu = cpu_model(self.plan.target, self.emulation.core, self.calibration)
        evaluation = self.plan.target_evaluation
        timing = "measured-device" if self.plan.target.detected or (evaluation and evaluation.device_timing) \
            else "measured-host"
        sources = {"latency_ms": timing, "peak_rss_mb": timing, "accuracy": self.plan.provenance,
                   "size_mb": self.plan.provenance}
        self.ledger = Ledger(self.plan.gates, self.metric, m.prefer, self.plan.provenance, m.measure.batch_size,
                             min_intervals, lambda artifact: model_identity(artifact, self.registry),
                             m.measure.speedup_margin, sources)

    def _earlier_pass_costs(self) -> dict[str, float]:
        """The seconds this model's passes took in earlier builds (the source model is hashed only with a cache)."""
        return self.cache.pass_costs(self.keys.source_model()) if self.cache.enabled else {}

    def _baseline_ok(self, scheduler: Scheduler) -> bool:
        """A failed baseline stops the search: every candidate is compared with it, and would fail the same way."""
        baseline = self.ledger.baseline
        if baseline is not None and baseline.status != "ok":
            scheduler.stop(f"the baseline could not be measured ({baseline.error})")
            scheduler.next_batch(self.ledger)  # stopped: records the rest as not evaluated
            return False
        return True

    def _run(self, batch: list[Step]) -> None:
        made, not_made = self.passes.run(batch, self._input_for)
        if self.cache.enabled:  # hashing the source model takes seconds on a large one: only for a cache
            self.cache.record_pass_costs(self.keys.source_model(), {m.step.id: m.seconds for m in made
                                                                    if m.step is not None and m.seconds is not None})
        for failure in not_made:
            self.ledger.not_run(failure.step, failure.status, failure.error, failure.input_id, failure.detail)
        self._measure(made)

    def _input_for(self, step: Step):
        if step.input.startswith("@leader"):
            best = self._leader(step.framework, step.input.partition("-")[2] or None)
            return best.id, self.ledger.artifacts[best.id]
        return step.input, self.ledger.artifacts.get(step.input)

    def _measure(self, made: list[Made]) -> None:
        fresh = []
        for item in made:
            key = item.step.id if item.step is not None else None
            if key is not None:
                same = self.ledger.add_artifact(key, item.artifact, identity_of=item.id)
                if same is not None and not item.baseline:
                    why = f"same model as {same}: identical files and runtime settings (not measured twice)"
                    self.progress.step(item.id, "duplicate", why)
                    self.ledger.not_run(item.step, "duplicate", why, item.input_id, same_as=same)
                    continue
            fresh.append(item)
        items = [Item(m.id, m.artifact, m.baseline) for m in fresh]
        accuracy = self.measurer.accuracy(items)
        timeable = [i for i in items if accuracy[i.id].ok and self._runtime(i.artifact).timed_on_host]
        timed = self.measurer.time(timeable, self.ledger.speedup_inconclusive) if timeable else {}
        emulated = {}
        if self.emulator is not None:
            emulated = self.emulator.run([i for i in timeable if timed[i.id].error is None])
        for item in fresh:
            refused = emulated.get(item.id)
            if refused is not None and refused.error is not None and not item.baseline:
                # a model the target's runtime build cannot run is no candidate for that target, whatever the host
                # measured (e.g. ONNX Runtime's arm64 build has no fp16 kernel for an operator the x86 one has)
                self.emulation_errors[item.id] = refused.error
                record = self.ledger.failed_on_target(
                    self._common(item, accuracy, timed), f"the target's runtime build could not run it (under "
                    f"emulation, as a {self.emulation.core.uarch}): {refused.error}")
            else:
                simulated = not self._runtime(item.artifact).timed_on_host
                record = self.ledger.measured(item.id, item.artifact, item.step, self._common(item, accuracy, timed),
                                              accuracy[item.id], timed.get(item.id, Timed()),
                                              self._simulated_target(item) if simulated
                                              else self._target(item, emulated.get(item.id)),
                                              sources={"accuracy": "simulated"} if simulated else None)
            self.progress.step(item.id, "done" if record.status == "ok" else record.status, _summary(record))

    def _target(self, item: Made, emulated: Emulated | None):
        """How a measured candidate's target figures are made, or None when the build has none for it."""
        evaluation = self.plan.target_evaluation
        if evaluation is None:
            return None
        runtime = self.registry.adapter(item.artifact.framework).runtime
        if emulated is not None and emulated.error is not None:
            self.progress.step(item.id, "emulation failed", emulated.error)
            self.emulation_errors[item.id] = emulated.error
            emulated = None
        if evaluation.device_timing:  # timed on the board: its latency is the device's own figure
            return lambda host: self._on_device(host, evaluation, emulated)
        if emulated is None:  # a roofline on the target's peaks: latency only
            figure = self.roofline.figure(item.artifact, runtime, self.metric.computed_by_runtime)
            if figure is None:
                return None
            return lambda host: TargetFigures(device=evaluation.device, latency_ms=figure)
        threads = runtime.threads_on(item.artifact, self.cpu.cores)
        cache_dir = self.cache.root if self.cache.enabled else self.layout.root
        estimate = cpu_estimate(emulated.counts, self.cpu, runtime.size_bytes(item.artifact), threads,
                                cache_dir / "mca" / f"{self.cpu.core.llvm_mca_cpu}.json")
        return lambda host: target_figures(self.plan.target.id, emulated, estimate, host)

    def _runtime(self, artifact: ModelArtifact):
        return self.registry.adapter(artifact.framework).runtime

    def _simulated_target(self, item: Made):
        """An NPU candidate's target figures: its accuracy as the toolkit's simulator gave it, its latency from the
        NPU's published figures (never from this host, which has no NPU)."""
        evaluation = self.plan.target_evaluation
        if evaluation is None:
            return None
        runtime = self._runtime(item.artifact)
        latency = self.roofline.figure(item.artifact, runtime, False) if self.roofline else None

        def figures(host) -> TargetFigures:
            versions = ", ".join(f"{k} {v}" for k, v in host.versions.items())
            accuracy = Figure(value=host.score, unit="score", provenance="simulated",
                              source=f"{versions} simulator on the whole evaluation set (the model rebuilt from its "
                                     "recipe: the simulator runs only what the toolkit built in the same session)") \
                if host.score is not None else None
            memory = Figure(value=host.size_mb, unit="MB", provenance="estimated",
                            source="the model the NPU loads (its .rknn file), compared with the baseline's model file: "
                                   "the NPU process's peak RSS on the board is not measured") \
                if host.size_mb is not None else None
            return TargetFigures(device=evaluation.device, latency_ms=latency, accuracy=accuracy, memory_mb=memory,
                                 execution_precision=item.artifact.precision)

        return figures

    def _on_device(self, host, evaluation, emulated: Emulated | None) -> TargetFigures:
        rounds = host.timing.rounds if host.timing else 0
        latency = Figure(value=host.p50, unit="ms", provenance="measured-device",
                         source=f"timed on the board over {evaluation.device_timing} ({host.timed_on or '?'}) in "
                                f"{rounds} rounds") \
            if host.p50 is not None else None
        if emulated is None:
            return TargetFigures(device=evaluation.device, latency_ms=latency)
        simulated = target_figures(evaluation.device, emulated, None, host)
        return simulated.model_copy(update={"latency_ms": latency})

    def _common(self, item: Made, accuracy, timed) -> dict:
        step, artifact = item.step, item.artifact
        return dict(
            id=item.id, framework=artifact.framework, precision=artifact.precision,
            stage=step.stage if step else "source", pass_name=step.pass_name if step else None,
            config=step.config if step else {}, input=item.input_id if step else None, provenance=self.plan.provenance,
            model_path=artifact.path, model_files=[str(p) for p in artifact.all_paths()],
            runtime_config=artifact.runtime_config, lineage=[e.model_dump(mode="json") for e in artifact.lineage],
            pass_seconds=item.seconds,
            cached={"pass": item.cached, "timing": bool(timed.get(item.id) and timed[item.id].cached),
                    "accuracy": accuracy[item.id].cached},
        )

    def _notes(self, baseline: CandidateRecord) -> list[str]:
        notes = []
        if self.emulation_errors:
            listed = "; ".join(f"{k}: {v[:160]}" for k, v in list(self.emulation_errors.items())[:3])
            notes.append(f"{len(self.emulation_errors)} model(s) could not run on the target's runtime build under "
                         f"emulation: a candidate is then recorded as failed for this target (the baseline's gates "
                         f"read host figures, each gate says which): {listed}")
        series = baseline.metrics.timing.p50_per_round_ms if baseline.metrics and baseline.metrics.timing else []
        if len(series) > 1 and max(series) > 1.15 * min(series):
            notes.append(f"the baseline's median latency ranged {min(series):.3f}–{max(series):.3f} ms over its "
                         f"{len(series)} rounds: this machine is noisy; every speedup is a ratio to the baseline "
                         "timed in the same round")
        notes += [floor.sentence() for floor in out_of_reach(memory_floors(baseline, self.ledger.records,
                                                                           self.plan.gates))]
        if self.measurer.interfered_windows:
            kept = "; the load persisted, so windows were kept and counted" if self.measurer.persistent_load else ""
            notes.append(f"{self.measurer.interfered_windows} of {self.measurer.fresh_windows} timed windows ran while "
                         f"other processes used the CPU{kept} (see each candidate's timing.discarded)")
        return notes


def _summary(record: CandidateRecord) -> str:
    if record.status != "ok":
        return record.error or record.status
    m = record.metrics
    text = (f"p50 {m.p50:.3f} ms, RSS {m.peak_rss_mb or 0:.0f} MB, size {m.size_mb or 0:.1f} MB, "
            f"score {m.score:.4f}" if m.p50 is not None and m.score is not None else "measured")
    verdicts = ", ".join(f"{k} {_fmt(v.value)} {_MARK[v.verdict]}" for k, v in record.gates.items())
    return f"{text}; {verdicts}" if verdicts else text


_MARK = {"pass": "✓", "fail": "✗", "inconclusive": "?"}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
