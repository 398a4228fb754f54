"""Running a batch of pass steps: each from the cache when its key is there, else on the runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgeopt.artifact import ModelArtifact
from edgeopt.builder.keys import CacheKeys
from edgeopt.builder.layout import OutputLayout
from edgeopt.builder.requests import Requests
from edgeopt.cache import BuildCache
from edgeopt.planner import Step
from edgeopt.progress import BuildProgress
from edgeopt.protocol import PassResult
from edgeopt.runners import Runner


@dataclass(frozen=True)
class Made:
    """A model a step made (or the source model, for a baseline measured as given)."""

    id: str
    artifact: ModelArtifact
    step: Step | None = None
    seconds: float | None = None
    input_id: str | None = None
    cached: bool = False

    @property
    def baseline(self) -> bool:
        return self.step is None or self.step.role == "baseline"


@dataclass(frozen=True)
class NotMade:
    step: Step
    status: str  # failed | skipped
    error: str
    detail: str | None
    input_id: str | None


InputLookup = Callable[[Step], tuple[str | None, ModelArtifact | None]]


class PassStage:
    def __init__(self, requests: Requests, keys: CacheKeys, cache: BuildCache, runner: Runner, layout: OutputLayout,
                 progress: BuildProgress):
        self.requests, self.keys, self.cache, self.runner = requests, keys, cache, runner
        self.layout, self.progress = layout, progress

    def run(self, batch: list[Step], inputs: InputLookup) -> tuple[list[Made], list[NotMade]]:
        made: list[Made] = []
        not_made: list[NotMade] = []
        jobs = []
        for step in batch:
            input_id, artifact = inputs(step)
            key = self.keys.pass_key(step, artifact)
            cached = self.cache.get_pass(key, self.layout.model(step.id))
            if isinstance(cached, str):
                self.progress.step(step.id, "skipped", cached)
                not_made.append(NotMade(step, "skipped", cached, None, input_id))
                continue
            if cached is not None:
                self.progress.step(step.id, "cached", f"{step.pass_name} output reused from the cache")
                made.append(Made(_record_id(step), cached[0], step, cached[1], input_id, cached=True))
                continue
            self.progress.step(step.id, "building", step.pass_name)
            jobs.append((step, input_id, key, self.requests.pass_job(step, artifact)))
        if jobs:
            self.progress.message(f"running {len(jobs)} pass(es) on the {self.runner.name} runner")
        outcomes = self.runner.run_all([job for *_, job in jobs]) if jobs else []
        for (step, input_id, key, _), outcome in zip(jobs, outcomes):
            if outcome.status == "skipped":
                self.cache.put_pass_nothing_to_do(key, outcome.error)
            if not outcome.ok:
                self.progress.step(step.id, outcome.status, outcome.error)
                not_made.append(NotMade(step, outcome.status, outcome.error, outcome.detail, input_id))
                continue
            result = PassResult.model_validate(outcome.result)
            self.cache.put_pass(key, result.artifact, result.seconds)
            made.append(Made(_record_id(step), result.artifact, step, result.seconds, input_id))
        order = {step.id: i for i, step in enumerate(batch)}
        return sorted(made, key=lambda m: order[m.step.id]), not_made


def _record_id(step: Step) -> str:
    return "baseline" if step.role == "baseline" else step.id
