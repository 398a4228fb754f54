"""The candidate search as pure logic: which steps run next, when the search stops and why, and the
Pareto frontier of the results. No processes here: the Builder runs what the scheduler hands out and
tells it what happened."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from edgeopt.candidates import CandidateRecord
from edgeopt.planner import Plan, Step
from edgeopt.pruning import evidence, pruned_by

STAGES = ("convert", "quantize", "accelerate")
# Candidates a cheap-first batch holds at most (more where the executor runs more passes at once). Every batch
# times the baseline again in each of its rounds: one candidate per batch made a MiniLM build that never stopped
# early 16% slower than the exhaustive one (benchmarks/results/search-cost-minilm-default-gates.json); three
# bound what an early stop measures beyond the first passing candidate to two, which selection then weighs too.
CHEAP_FIRST_BATCH = 3


class SearchState(Protocol):
    """What the scheduler reads of the build so far (the Builder's ledger)."""

    @property
    def produced(self) -> set[str]: ...  # ids of the steps whose model exists

    def has_leader(self, framework: str) -> bool: ...  # a candidate of that framework keeps accuracy

    def record(self, step_id: str) -> CandidateRecord | None: ...  # the step's outcome, once it has one


def ordered_steps(plan: Plan, measured_s: Mapping[str, float] | None = None) -> list[Step]:
    """Exhaustive search keeps the recipe order; cheap-first runs the cheapest passes of each stage first,
    so that a candidate passing every gate is found before the costly calibrated ones are tried. Cheapest by
    the seconds each pass took on this model in earlier builds (`measured_s`) where every step of the stage
    has run before; otherwise by the passes' declared costs, measured seconds breaking ties."""
    steps = list(plan.steps)
    if plan.search.strategy == "exhaustive":
        return steps
    measured_s = measured_s or {}
    position = {s.id: i for i, s in enumerate(steps)}
    measured_stages = {stage for stage in STAGES
                       if all(s.id in measured_s for s in steps if s.stage == stage and s.role != "baseline")}

    def cost(s: Step) -> tuple[float, float]:
        seconds = measured_s.get(s.id, float("inf"))
        return (seconds, 0) if s.stage in measured_stages else (s.cost, seconds)

    return sorted(steps, key=lambda s: (s.role != "baseline", STAGES.index(s.stage), cost(s), position[s.id]))


def order_basis(plan: Plan, measured_s: Mapping[str, float]) -> str:
    """How ordered_steps ordered this plan, in words for the report."""
    if plan.search.strategy == "exhaustive":
        return "the recipes' order"
    known = sum(s.id in measured_s for s in plan.steps if s.role != "baseline")
    total = sum(s.role != "baseline" for s in plan.steps)
    return (f"cheapest first: the seconds each pass took on this model in earlier builds ({known} of {total} steps "
            "known), else the passes' declared costs")


class Scheduler:
    """Hands out batches of steps whose inputs exist; records what it never ran, and why."""

    def __init__(self, plan: Plan, parallelism: int, clock: Callable[[], float] = time.monotonic,
                 measured_s: Mapping[str, float] | None = None):
        self.spec = plan.search
        self.steps = plan.steps
        self.parallelism = max(1, parallelism)
        self.pending: list[Step] = ordered_steps(plan, measured_s)
        self.order = order_basis(plan, measured_s or {})
        self.started_candidates = 0
        self.stop_reason: str | None = None
        self.not_run: list[tuple[Step, str, str]] = []  # (step, "skipped", why)
        self._clock, self._started = clock, clock()

    def next_batch(self, state: SearchState) -> list[Step]:
        """The next steps to run together; [] when the search is over."""
        if not self.pending:
            return []
        if self.stop_reason is None:
            self.stop_reason = self._budget_spent()
        if self.stop_reason is not None:
            self._skip_all(f"not evaluated: {self.stop_reason}")
            return []
        ready = []
        record = functools.partial(outcome, state)
        found = evidence(self.steps, record) if self.spec.strategy == "cheap-first" else []
        for step in list(self.pending):
            readiness, why = self._escalation_state(step, state)
            if readiness == "ready" and found:
                why = pruned_by(step, self.steps, found, record) or ""
                readiness = "missing" if why else "ready"
            if readiness == "ready":
                readiness, why = self._input_state(step, state)
            if readiness == "missing":
                self.pending.remove(step)
                self.not_run.append((step, "skipped", why))
            elif readiness == "ready":
                ready.append(step)
        if not ready:  # cannot happen with a valid plan; never spin
            self._skip_all("its input was never produced")
            return []
        baseline = [s for s in ready if s.role == "baseline"]
        batch = baseline or ready
        if not baseline:
            if self.spec.strategy == "cheap-first":
                batch = batch[: max(self.parallelism, CHEAP_FIRST_BATCH)]
            if self.spec.max_candidates is not None:
                batch = batch[: self.spec.max_candidates - self.started_candidates]
        self.started_candidates += sum(s.role == "candidate" for s in batch)
        self.pending = [s for s in self.pending if s not in batch]
        return batch

    def stop(self, reason: str) -> None:
        """Nothing more is worth running (the baseline failed: every candidate would fail the same way)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def batch_done(self, passing: CandidateRecord | None) -> None:
        """Told after each batch, with a candidate whose every gate passed (final verdicts), if any."""
        if self.spec.strategy == "cheap-first" and self.stop_reason is None and passing is not None and self.pending:
            self.stop_reason = f"the cheap-first search stopped once {passing.id} passed every gate"

    def _budget_spent(self) -> str | None:
        if self.spec.max_candidates is not None and self.started_candidates >= self.spec.max_candidates:
            return f"search.max_candidates ({self.spec.max_candidates}) reached"
        if self.spec.time_budget_s is not None and self._clock() - self._started > self.spec.time_budget_s:
            return f"search.time_budget_s ({self.spec.time_budget_s:g} s) spent"
        return None

    def _skip_all(self, why: str) -> None:
        self.not_run += [(step, "skipped", why) for step in self.pending]
        self.pending = []

    def _escalation_state(self, step: Step, state: SearchState) -> tuple[str, str]:
        """A step that can only buy accuracy back from the one it escalates is pointless, in a search that wants
        the first candidate passing every gate, once that one keeps accuracy: it cannot be faster or smaller."""
        if self.spec.strategy != "cheap-first" or step.escalates is None:
            return "ready", ""
        if any(s.id == step.escalates for s in self.pending):
            return "wait", ""
        before = outcome(state, self._escalated_from(step))
        if before is None or not before.keeps_accuracy:
            return "ready", ""
        gate = before.gates.get("accuracy_retained")
        held = (f" (accuracy retained {gate.value:.3g}, gate {gate.threshold:g}, {gate.provenance or 'measured'})"
                if gate and gate.value is not None else "")
        return "missing", (f"pruned: {before.id} keeps accuracy{held}, and this step only buys accuracy back from it "
                           "(cheap-first)")

    def _escalated_from(self, step: Step) -> str:
        """The step whose accuracy decides an escalation: the one it escalates or, where that one was not run (an
        escalation's earlier point, pruned), the one that step escalates, and so on: keeping 8 nodes in float
        buys back accuracy from the same step as keeping 4 (the search records what it did not run only at the
        end, so the ledger has no record of those)."""
        not_run = {skipped.id: skipped for skipped, _, _ in self.not_run}
        escalated = step.escalates
        while escalated in not_run and not_run[escalated].escalates is not None:
            escalated = not_run[escalated].escalates
        return escalated

    def _input_state(self, step: Step, state: SearchState) -> tuple[str, str]:
        if step.input == "source":
            return "ready", ""
        if step.input.startswith("@leader"):
            earlier = [s for s in self.pending if s.framework == step.framework and s is not step
                       and STAGES.index(s.stage) < STAGES.index(step.stage)]
            if earlier:
                return "wait", ""
            if state.has_leader(step.framework):
                return "ready", ""
            return "missing", f"no {step.framework} candidate keeps accuracy to build on"
        if step.input in state.produced:
            return "ready", ""
        if any(s.id == step.input for s in self.pending):
            return "wait", ""
        return "missing", f"its input ({step.input}) was not produced"

    def summary(self, runner_name: str) -> dict:
        return {"strategy": self.spec.strategy, "executor": runner_name, "parallelism": self.parallelism,
                "candidates_started": self.started_candidates, "stopped": self.stop_reason, "order": self.order,
                "timing": "in rounds, one window at a time, on the machine running the build: each round times the "
                          "baseline and a batch's candidates in a shuffled order; passes and accuracy runs may overlap"}


def outcome(state: SearchState, step_id: str) -> CandidateRecord | None:
    """A step's record; for one that made the same model as an earlier candidate, that candidate's (its figures
    count for both)."""
    record = state.record(step_id)
    if record is not None and record.status == "duplicate" and record.same_as:
        return state.record(record.same_as)
    return record


def objectives(record: CandidateRecord, higher_is_better: bool, on_target: bool = False) -> tuple[float, ...] | None:
    """What the frontier trades off, each to be minimised: latency, peak RSS, size, accuracy loss; on the
    target's figures when the build is for another device and has them."""
    m = record.metrics
    if m is None or m.latency_ms is None or m.score is None:
        return None
    latency, score = m.latency_ms.p50, m.score
    if on_target:
        target = m.target
        if target is None or target.latency_ms is None:
            return None
        latency = target.latency_ms.value
        score = target.accuracy.value if target.accuracy is not None else score
    values = (latency, m.peak_rss_mb, m.size_mb, -score if higher_is_better else score)
    return None if any(v is None for v in values) else values


def pareto_frontier(records: list[CandidateRecord], higher_is_better: bool, on_target: bool = False) -> list[str]:
    """Ids of the measured records that no other record beats on every objective at once."""
    points = {r.id: objectives(r, higher_is_better, on_target) for r in records if r.status == "ok"}
    points = {k: v for k, v in points.items() if v is not None}

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return [k for k, v in points.items() if not any(dominates(o, v) for j, o in points.items() if j != k)]
