"""plan(): from manifest, target, recipes and registry to a frozen Plan. Pure: it runs nothing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from edgeopt.catalog import Target
from edgeopt.errors import MissingDependency, PlanError
from edgeopt.gates import GatePolicy, effective_policy
from edgeopt.manifest import Manifest
from edgeopt.recipes import Recipe
from edgeopt.registry import Registry


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Rejected(_Frozen):
    framework: str
    reason: str


class Step(_Frozen):
    id: str
    stage: str
    pass_name: str
    config: dict
    input: str  # "source", "@leader", or the id of an earlier step
    role: Literal["candidate", "baseline"]
    needs_calibration: bool
    why: str = ""


class SkippedStep(_Frozen):
    id: str
    pass_name: str
    reason: str


class Plan(_Frozen):
    manifest: str
    task: str
    metric: str  # the manifest's accuracy metric; gates compare its score with the baseline's
    target: Target
    framework: str
    framework_reason: str
    rejected: tuple[Rejected, ...]
    steps: tuple[Step, ...]
    skipped: tuple[SkippedStep, ...]
    baseline: str  # "source" or the id of the step that makes the baseline
    gates: GatePolicy
    extras: tuple[str, ...]  # install commands for every adapter the steps use
    missing: tuple[str, ...]  # those of `extras` that are not installed here
    provenance: Literal["measured-device", "measured-host"]
    notes: tuple[str, ...] = ()

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def plan(
    manifest: Manifest,
    target: Target,
    recipes: dict[str, Recipe],
    registry: Registry,
    gate_policies: dict[str, GatePolicy],
) -> Plan:
    task = manifest.model.task
    framework, reason, rejected = _choose_framework(target, task, recipes, registry)
    steps, skipped = _expand_steps(recipes[framework], manifest, target, registry)
    baseline = next((s.id for s in steps if s.role == "baseline"), "source")
    adapters = sorted({framework, *(s.pass_name.partition(".")[0] for s in steps)})
    extras = tuple(registry.entry(name).install for name in adapters)
    missing = tuple(registry.entry(name).install for name in adapters if not registry.is_available(name))
    on_device = target.detected
    notes = []
    if not on_device:
        notes.append(
            f"Figures are measured on this build host, not on {target.name}: they are labelled measured-host. "
            "Relative gains (speedup, memory cut) on the device can differ, even in sign."
        )
    return Plan(
        manifest=manifest.name,
        task=task,
        metric=manifest.evaluation.metric.name,
        target=target,
        framework=framework,
        framework_reason=reason,
        rejected=tuple(rejected),
        steps=tuple(steps),
        skipped=tuple(skipped),
        baseline=baseline,
        gates=effective_policy(manifest.gates, gate_policies),
        extras=extras,
        missing=missing,
        provenance="measured-device" if on_device else "measured-host",
        notes=tuple(notes),
    )


def _choose_framework(target: Target, task: str, recipes: dict[str, Recipe], registry: Registry):
    chain = target.frameworks.chain
    rejected: list[Rejected] = []
    usable: list[str] = []  # implemented, has a recipe, handles the task; installed or not
    for name in chain:
        entry = registry.entry(name)
        if entry is None:
            rejected.append(Rejected(framework=name, reason="edgeopt has no adapter for this framework"))
        elif task not in entry.tasks:
            rejected.append(Rejected(framework=name, reason=f"does not handle task {task!r} (handles: {', '.join(entry.tasks)})"))
        elif not entry.implemented:
            rejected.append(Rejected(framework=name, reason=f"adapter not implemented yet (planned in {entry.planned_in})"))
        elif name not in recipes:
            rejected.append(Rejected(framework=name, reason="no recipe for it in pipelines/"))
        else:
            usable.append(name)
    if not usable:
        raise PlanError(
            f"no framework in {target.id}'s chain ({', '.join(chain)}) can build a {task!r} model: "
            + "; ".join(f"{r.framework}: {r.reason}" for r in rejected)
        )
    installed = [name for name in usable if registry.is_available(name)]
    chosen = installed[0] if installed else usable[0]
    position = chain.index(chosen)
    earlier = [r.framework for r in rejected if chain.index(r.framework) < position]
    reason = f"{target.id} prefers {' → '.join(chain)} ({target.frameworks.reason})"
    if earlier:
        reason += f"; {', '.join(earlier)} rejected, so {chosen} is the first that fits"
    else:
        reason += f"; {chosen} is first and fits task {task!r}"
    for name in usable:
        if name == chosen:
            continue
        why = (f"not installed ({registry.entry(name).install})" if name not in installed and chain.index(name) < position
               else f"{chosen} comes before it in {target.id}'s chain")
        rejected.append(Rejected(framework=name, reason=why))
    rejected.sort(key=lambda r: chain.index(r.framework))
    return chosen, reason, rejected


def _expand_steps(recipe: Recipe, manifest: Manifest, target: Target, registry: Registry):
    steps: list[Step] = []
    skipped: list[SkippedStep] = []
    last_convert = "source"
    for stage in recipe.stages:
        for entry in stage.passes:
            admitted, why_not = entry.when.admits(manifest.model.task, manifest.model.format)
            if not admitted:
                skipped.append(SkippedStep(id=entry.id, pass_name=entry.pass_name, reason=why_not))
                continue
            pass_class = registry.pass_class(entry.pass_name)
            entry = entry.model_copy(update={
                "space": {k: list(dict.fromkeys(_resolve_symbol(v, target))) for k, v in entry.space.items()},
            })
            input_id = {
                "source": "source",
                "previous": steps[-1].id if steps else "source",
                "convert": last_convert,
                "leader": "@leader",
            }[entry.input]
            for step_id, raw_config in entry.expand():
                config = {k: _resolve_symbol(v, target) for k, v in raw_config.items()}
                try:
                    validated = pass_class.Config(**config)
                except ValidationError as exc:
                    raise PlanError(
                        f"pipelines/{recipe.framework}.yaml: {entry.id}: invalid config for {entry.pass_name}: "
                        + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                    ) from None
                steps.append(Step(
                    id=step_id, stage=stage.name, pass_name=entry.pass_name,
                    config=validated.model_dump(mode="json"), input=input_id, role=entry.role,
                    needs_calibration=pass_class.needs_calibration, why=entry.why,
                ))
            if stage.name == "convert":
                last_convert = steps[-1].id
    ids = [s.id for s in steps]
    if len(ids) != len(set(ids)):
        raise PlanError(f"pipelines/{recipe.framework}.yaml: duplicate step ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return steps, skipped


def _resolve_symbol(value, target: Target):
    # Recipes may say "cores" where a count should follow the target's CPU.
    if value == "cores":
        return target.cores
    if isinstance(value, list):
        return [_resolve_symbol(v, target) for v in value]
    return value


def require_installed(the_plan: Plan) -> None:
    """Before a build runs anything: every adapter the plan uses must import."""
    if the_plan.missing:
        raise MissingDependency(f"a framework this plan needs ({the_plan.framework} pipeline)", " && ".join(the_plan.missing))
