"""The build's book of record: artifacts made so far, candidate records, and the one gating step.

A record is gated once, when the figures its verdicts read are final: accuracy and memory against the
baseline's, and the speedup from the rounds its timing ran in beside the baseline.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeopt.artifact import ModelArtifact
from edgeopt.builder.figures import TimingRefused, measurements, speedup, target_ratios, with_all_windows, with_speedup
from edgeopt.builder.measurer import Timed
from edgeopt.candidates import CandidateRecord, Preference, keeping_accuracy, leader, passing, select
from edgeopt.gates import GatePolicy, evaluate, ratio_metrics, verdict_of
from edgeopt.measure.metrics import Metric
from edgeopt.measurements import Measurements, Ratios, TargetFigures
from edgeopt.planner import Step
from edgeopt.protocol import AccuracyResult
from edgeopt.runners import Outcome
from edgeopt.search import pareto_frontier


class Ledger:
    def __init__(self, policy: GatePolicy, metric: Metric, prefer: Preference, provenance: str,
                 batch_size: int, min_intervals: int | None, identity: Callable[[ModelArtifact], str],
                 speedup_margin: float = 0.0, sources: dict[str, str] | None = None):
        self.policy, self.metric, self.prefer, self.provenance = policy, metric, prefer, provenance
        self.batch_size, self.min_intervals = batch_size, min_intervals
        self.artifacts: dict[str, ModelArtifact] = {}
        self.records: list[CandidateRecord] = []
        self.baseline: CandidateRecord | None = None
        self._identities: dict[str, str] = {}
        self._identity = identity
        self.speedup_margin = speedup_margin
        # where the timing figures come from: the build machine, or the board (--device, or the host target)
        self.sources = sources or {"latency_ms": provenance, "peak_rss_mb": provenance, "accuracy": provenance,
                                   "size_mb": provenance}

    # -- artifacts --------------------------------------------------------------------------------------
    def add_artifact(self, step_id: str, artifact: ModelArtifact, identity_of: str | None = None) -> str | None:
        """Registers what a step made; returns the id of an earlier candidate (or "baseline") with the
        same model and runtime settings, if there is one: that candidate is not measured twice."""
        self.artifacts[step_id] = artifact
        identity = self._identity(artifact)
        earlier = self._identities.get(identity)
        if earlier is None:
            self._identities[identity] = identity_of or step_id
        return earlier

    @property
    def produced(self) -> set[str]:
        return set(self.artifacts)

    # -- records ----------------------------------------------------------------------------------------
    def measured(self, record_id: str, artifact: ModelArtifact, step: Step | None, common: dict,
                 accuracy: Outcome, timed: Timed, target: Callable[[Measurements], TargetFigures | None] | None = None,
                 sources: dict[str, str] | None = None) -> CandidateRecord:
        """A measured candidate (or the baseline), gated once on its final figures: the target's where the
        build has them (each gate says which figure it read), the host's otherwise."""
        if not accuracy.ok:
            return self._failed(common, "accuracy", accuracy.detail or accuracy.error)
        if timed.error is not None:
            return self._failed(common, "timing", timed.error)
        try:
            figures = measurements(AccuracyResult.model_validate(accuracy.result), timed, self.batch_size,
                                   self.min_intervals)
        except TimingRefused as exc:
            return self._failed(common, "timing", str(exc))
        # `sources`: where this candidate's figures come from where it differs from the build's (a simulator's accuracy)
        figures = figures.model_copy(update={"sources": {**self.sources, **(sources or {})}})
        if target is not None:
            figures = figures.model_copy(update={"target": target(figures)})
        record = CandidateRecord(**common, status="ok", metrics=figures)
        if record_id != "baseline" and self.baseline is not None and self.baseline.status == "ok":
            ratios = with_speedup(ratio_metrics(figures, self.baseline.metrics, self.metric), timed, self.speedup_margin)
            on_target = target_ratios(figures.target, self.baseline.metrics.target, self.metric)
            decision, read = decision_ratios(ratios, on_target, figures.target, figures.sources)
            record = record.model_copy(update={"ratios": ratios, "target_ratios": on_target,
                                               "gates": evaluate(decision, self.policy, read)})
        return self._keep(record)

    def close_baseline(self, timed: Timed) -> None:
        """The baseline's own latency is final once the last round ran: every window it was timed in."""
        if self.baseline is not None and self.baseline.status == "ok":
            self.baseline = self.baseline.model_copy(update={
                "metrics": with_all_windows(self.baseline.metrics, timed, self.batch_size)})

    def failed_on_target(self, common: dict, message: str) -> CandidateRecord:
        return self._failed(common, "target", message)

    def _failed(self, common: dict, which: str, message: str) -> CandidateRecord:
        return self._keep(CandidateRecord(**common, status="failed", error=f"measurement ({which}): {_first(message)}",
                                          error_detail=message))

    def not_run(self, step: Step, status: str, error: str, input_id: str | None = None, detail: str | None = None,
                same_as: str | None = None) -> CandidateRecord:
        record = CandidateRecord(id=step.id if step.role != "baseline" else "baseline", framework=step.framework,
                                 stage=step.stage, pass_name=step.pass_name, config=step.config,
                                 input=input_id or step.input, status=status, error=error, error_detail=detail,
                                 same_as=same_as, provenance=self.provenance)
        return self._keep(record)

    def _keep(self, record: CandidateRecord) -> CandidateRecord:
        if record.id == "baseline":
            self.baseline = record
        else:
            self.records.append(record)
        return record

    # -- decisions --------------------------------------------------------------------------------------
    def speedup_inconclusive(self, timed: dict[str, Timed]) -> set[str]:
        """Candidates whose speedup verdict, as the gate will read it, the rounds so far leave open: they get
        more rounds. The gate reads the interval widened by the between-builds margin; more rounds cannot
        narrow the margin, but they narrow the interval it widens, which settles a median beyond the
        margin's reach of the threshold. (Judged without it, MiniLM's lean stopped at 10 of 20 rounds with
        its own interval clear of 2.0x and the gate's at 1.95: inconclusive.)"""
        if self.policy.speedup is None:
            return set()
        open_ = set()
        for record_id, result in timed.items():
            if result.error is not None:
                continue
            value, interval = speedup(result, self.speedup_margin)  # one bootstrap per candidate and round
            if value is not None and verdict_of(value, interval, self.policy.speedup) == "inconclusive":
                open_.add(record_id)
        return open_

    def leader(self, framework: str, prefer: Preference | None = None) -> CandidateRecord | None:
        """`prefer`: by what to rank (default: the manifest's preference), e.g. memory for runtime settings
        that trade speed for a smaller peak."""
        return leader(self.leader_pool(framework), prefer or self.prefer)

    def leader_pool(self, framework: str) -> list[CandidateRecord]:
        """What `framework`'s leader is chosen from: its candidates made in this build that keep accuracy."""
        return keeping_accuracy([r for r in self.records if r.framework == framework and r.id in self.artifacts])

    def passing(self) -> list[CandidateRecord]:
        return passing(self.records)

    def has_leader(self, framework: str) -> bool:
        return self.leader(framework) is not None

    def record(self, step_id: str) -> CandidateRecord | None:
        return next((r for r in self.records if r.id == step_id), None)

    def first_passing(self) -> CandidateRecord | None:
        return next((r for r in self.records if r.passed_all_gates), None)

    def select(self) -> CandidateRecord | None:
        return select(self.records, self.prefer)

    def frontier(self) -> list[str]:
        records = [r for r in (self.baseline, *self.records) if r is not None]
        # a build for another device trades off the device's figures, where the candidates have them
        on_target = sum(1 for r in records if r.metrics and r.metrics.target and r.metrics.target.latency_ms) > 1
        return pareto_frontier(records, self.metric.higher_is_better, on_target)


def decision_ratios(host: Ratios, target: Ratios | None, figures: TargetFigures | None, measured: dict[str, str],
                    ) -> tuple[Ratios, dict[str, str]]:
    """The ratios the gates read, and where each came from: the target's latency and accuracy figures where
    the build has them, the measured ones otherwise (said so per gate, never silently). Memory is measured
    where the timing ran: the host, or the board with --device; an NPU candidate, timed nowhere, has it estimated
    from its model file against the baseline's."""
    sources = {"accuracy_retained": measured["accuracy"], "speedup": measured["latency_ms"],
               "memory_cut": measured["peak_rss_mb"]}
    if target is None:
        return host, sources
    update = {}
    if target.accuracy_retained is not None:
        update["accuracy_retained"] = target.accuracy_retained
        sources["accuracy_retained"] = figures.accuracy.provenance
    if target.speedup is not None and figures.latency_ms.provenance != "measured-device":
        # an estimate has no sampling spread: its verdict is the value's, its error band is in the report
        update.update(speedup=target.speedup, speedup_ci=None, speedup_unreliable=None)
        sources["speedup"] = figures.latency_ms.provenance
    if figures.memory_mb is not None and host.size_cut is not None:
        # an NPU model's memory, estimated by its weights against the baseline's on the same basis (files)
        update["peak_rss_cut"] = host.size_cut
        sources["memory_cut"] = figures.memory_mb.provenance
    # timed on the board itself: the rounds' own speedup and interval are the device's
    return host.model_copy(update=update), sources


def _first(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else "unknown error"
