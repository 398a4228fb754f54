"""plan(): from manifest, target, recipes and registry to a frozen Plan. Pure: it runs nothing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from edgeopt.catalog import Target
from edgeopt.errors import ManifestError, MissingDependency, PlanError, closest
from edgeopt.gates import GatePolicy, effective_policy
from edgeopt.manifest import Manifest, SearchSpec
from edgeopt.recipes import Recipe
from edgeopt.registry import Registry


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Rejected(_Frozen):
    framework: str
    reason: str


class Step(_Frozen):
    id: str
    framework: str  # whose recipe made the step; its runtime measures the result
    stage: str
    pass_name: str
    config: dict
    # "source", "@leader" (the best of this framework so far), "@leader-memory" (the one of least peak memory),
    # or the id of an earlier step
    input: str
    role: Literal["candidate", "baseline"]
    needs_calibration: bool
    needs_validation: bool = False
    needs_timing_data: bool = False
    needs_source: bool = False
    environments: tuple[str, ...] = ()  # edgeopt env names the pass runs code from when they are there
    runs_in: str | None = None  # the backend environment whose interpreter runs the pass (None: edgeopt's own)
    cost: int = 1  # relative effort of the pass; the cheap-first search runs low costs first
    # the step whose candidate, if it keeps accuracy, makes this one pointless in a cheap-first search (this one
    # buys accuracy only: nodes back in float, an importance matrix), or None
    escalates: str | None = None
    why: str = ""

    @property
    def reads_source(self) -> bool:
        """The pass reads the manifest's model itself: it exports it, or reads its config beside its input."""
        return self.input == "source" or self.needs_source


class SkippedStep(_Frozen):
    id: str
    pass_name: str
    reason: str


EMULATABLE = ("onnxruntime", "openvino")  # frameworks whose aarch64 wheels run under qemu-user


class Emulation(_Frozen):
    env: str
    core: str  # the target's core (uarch) whose kernels the runtimes are made to pick
    qemu_cpu: str
    samples: int
    frameworks: tuple[str, ...]


class FigureSource(_Frozen):
    latency: Literal["measured-device", "instruction-count", "roofline"]
    accuracy: Literal["measured-device", "simulated", "measured-host"]
    why: str
    simulator: str | None = None  # what simulates the accuracy when it is not emulation (a toolkit's simulator)


class TargetEvaluation(_Frozen):
    """Where the figures a decision for the target reads come from, per framework."""

    device: str
    by_framework: dict[str, FigureSource]
    emulation: Emulation | None = None
    device_timing: str | None = None  # ssh://… : latency and peak RSS are timed on the board itself


class Plan(_Frozen):
    manifest: str
    task: str
    metric: str  # the manifest's accuracy metric; gates compare its score with the baseline's
    target: Target
    framework: str  # the target's preferred framework among those that can run here
    framework_reason: str
    frameworks: tuple[str, ...]  # every framework searched, preferred first
    baseline_framework: str  # runs the baseline: the source model as given, the reference for every ratio
    rejected: tuple[Rejected, ...]
    steps: tuple[Step, ...]
    skipped: tuple[SkippedStep, ...]
    baseline: str  # "source" or the id of the step that makes the baseline
    gates: GatePolicy
    search: SearchSpec
    extras: tuple[str, ...]  # install commands for every adapter the steps use
    missing: tuple[str, ...]  # those of `extras` that are not installed here
    provenance: Literal["measured-device", "measured-host"]
    target_evaluation: TargetEvaluation | None = None
    notes: tuple[str, ...] = ()
    source_quantized: str | None = None  # the source graph's quantized form, when it arrives quantized

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def plan(
    manifest: Manifest,
    target: Target,
    recipes: dict[str, Recipe],
    registry: Registry,
    gate_policies: dict[str, GatePolicy],
    cores: dict | None = None,
    device: str | None = None,
    source_quantized: str | None = None,
) -> Plan:
    """`source_quantized`: what quantized form the source graph is in (edgeopt.quantized), if any."""
    task = manifest.model.task
    framework, reason, rejected, searched = _choose_frameworks(target, task, recipes, registry, manifest, device)
    baseline_framework = _baseline_framework(searched, recipes, registry, manifest)
    gates = effective_policy(manifest.gates, gate_policies)
    # a gate of 1.0 or more allows no loss at all: the least drop NNCF can be asked for stands in for it
    drop = 1 - gates.accuracy_retained if gates.accuracy_retained else 0.01
    symbols = {"cores": target.cores, "accuracy_gate_drop": round(min(max(drop, 1e-4), 0.99), 6)}
    if target.npu is not None and target.npu.platform:
        symbols["npu_platform"] = target.npu.platform
    steps, skipped = _expand_steps(recipes, searched, baseline_framework, manifest, symbols, registry, target,
                                   source_quantized)
    if manifest.search.only:
        steps, left_out = _only(steps, manifest.search.only, skipped, manifest.name)
        skipped += left_out
    baseline = next((s.id for s in steps if s.role == "baseline"), "source")
    adapters = sorted({*searched, baseline_framework, *(s.pass_name.partition(".")[0] for s in steps)})
    extras = tuple(registry.entry(name).install for name in adapters)
    missing = tuple(registry.entry(name).install for name in adapters if not registry.is_available(name))
    on_device = target.detected
    evaluation = _target_evaluation(target, manifest, searched, baseline_framework, cores or {}, device, registry)
    notes = []
    if not on_device:
        notes.append(
            f"Host figures are measured on this build host, not on {target.name}, and labelled measured-host; "
            "decisions read the target's own figures (estimated latency, simulated accuracy) where the plan has them, "
            "and say which figure each gate read.")
    if "mlx" in searched and not (on_device and target.vendor.lower() == "apple"):
        notes.append("MLX runs on its CPU backend on this host: MLX figures describe that backend, "
                     "not Apple silicon's GPU; they are labelled measured-host.")
    return Plan(
        manifest=manifest.name,
        task=task,
        metric=manifest.evaluation.metric.name,
        target=target,
        framework=framework,
        framework_reason=reason,
        frameworks=tuple(searched),
        baseline_framework=baseline_framework,
        rejected=tuple(rejected),
        steps=tuple(steps),
        skipped=tuple(skipped),
        baseline=baseline,
        gates=gates,
        search=manifest.search,
        extras=extras,
        missing=missing,
        provenance="measured-device" if on_device else "measured-host",
        target_evaluation=evaluation,
        notes=tuple(notes),
        source_quantized=source_quantized,
    )


def _target_evaluation(target: Target, manifest: Manifest, searched: list[str], baseline_framework: str,
                       cores: dict, device: str | None = None, registry: Registry | None = None,
                       ) -> TargetEvaluation | None:
    """Per framework: where the target's latency and accuracy figures come from."""
    if target.detected:
        if device:
            raise PlanError(f"--device {device} times on a board: name the board's target (not {target.id})")
        return None
    if device:
        others = [f for f in dict.fromkeys([baseline_framework, *searched]) if f not in _device_frameworks()]
        if others:
            raise PlanError(f"--device times {', '.join(_device_frameworks())} models on the board; this plan also has "
                            f"{', '.join(others)} (narrow search.frameworks, or build without --device)")
    from edgeopt.estimate.cores import core_for

    core = core_for(target, cores) if target.arch == "aarch64" else None
    samples = manifest.measure.emulated_samples
    frameworks = list(dict.fromkeys([baseline_framework, *searched]))
    emulated = tuple(f for f in frameworks if f in EMULATABLE) if core is not None and samples > 0 else ()
    by_framework = {}
    npu = target.npu
    for name in frameworks:
        entry = registry.entry(name) if registry is not None else None
        if entry is not None and entry.engine == "npu" and npu is not None:
            by_framework[name] = FigureSource(
                latency="roofline", accuracy="simulated",
                why=f"roofline of the graph on the {npu.name}'s published peak"
                    + (f" ({npu.tops_int8:g} TOPS int8)" if npu.tops_int8 else "")
                    + f"; this host has no NPU to time it; accuracy from {entry.title}'s simulator on the host",
                simulator=f"{entry.title}'s simulator")
        elif name in emulated:
            by_framework[name] = FigureSource(
                latency="instruction-count", accuracy="simulated",
                why=f"{name}'s aarch64 build runs under qemu-user as a {core.uarch}: instructions counted per inference "
                    f"and timed with the {core.uarch}'s scheduling model; outputs on {samples} samples compared with "
                    "the host's")
        else:
            reason = ("no emulation for this framework" if core is not None and samples > 0 else
                      "measure.emulated_samples is 0" if core is not None else
                      f"no core model for {target.id}'s CPU" if target.arch == "aarch64" else
                      f"{target.id} is not an ARM CPU target")
            by_framework[name] = FigureSource(latency="roofline", accuracy="measured-host",
                                              why=f"roofline of the graph on {target.id}'s published peaks ({reason}); "
                                                  "accuracy as measured on the host")
    emulation = Emulation(env="aarch64", core=core.uarch, qemu_cpu=core.qemu_cpu, samples=samples,
                          frameworks=emulated) if emulated else None
    if device:
        by_framework = {name: source.model_copy(update={
            "latency": "measured-device", "why": f"timed on the board over {device}; " + source.why.split("; ", 1)[-1]})
            for name, source in by_framework.items()}
    return TargetEvaluation(device=target.id, by_framework=by_framework, emulation=emulation, device_timing=device)


def _device_frameworks() -> tuple[str, ...]:
    from edgeopt.device import DEVICE_FRAMEWORKS

    return DEVICE_FRAMEWORKS


def _choose_frameworks(target: Target, task: str, recipes: dict[str, Recipe], registry: Registry,
                       manifest: Manifest, device: str | None = None):
    """The preferred framework, why, the rejected ones and why, and every framework to search."""
    chain = target.frameworks.chain
    wanted = manifest.search.frameworks
    if wanted is not None:
        for name in wanted:
            if registry.entry(name) is None:
                raise ManifestError(manifest.name, "search.frameworks", f"unknown framework {name!r}; "
                                    f"expected some of: {', '.join(registry.names())}", closest(name, registry.names()))
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
        elif wanted is not None and name not in wanted:
            rejected.append(Rejected(framework=name, reason="left out by search.frameworks (the manifest's, or --frameworks)"))
        elif device and name not in _device_frameworks():
            rejected.append(Rejected(framework=name, reason=f"--device times {', '.join(_device_frameworks())} models "
                                     f"on the board, not {name}'s (build without --device for its estimated figures)"))
        else:
            usable.append(name)
    if not usable:
        raise PlanError(
            f"no framework in {target.id}'s chain ({', '.join(chain)}) can build a {task!r} model: "
            + "; ".join(f"{r.framework}: {r.reason}" for r in rejected)
        )
    installed = [name for name in usable if registry.is_available(name)]
    searched = installed or usable[:1]  # nothing installed: plan the preferred one, the build asks to install it
    chosen = searched[0]
    position = chain.index(chosen)
    earlier = [r.framework for r in rejected if chain.index(r.framework) < position]
    reason = f"{target.id} prefers {' → '.join(chain)} ({target.frameworks.reason})"
    if earlier:
        reason += f"; {', '.join(earlier)} rejected, so {chosen} is the first that fits"
    else:
        reason += f"; {chosen} is first and fits task {task!r}"
    if len(searched) > 1:
        others = ", ".join(searched[1:])
        one = len(searched) == 2
        reason += (f"; {others} also fit{'s' if one else ''} and {'is' if one else 'are'} installed: "
                   "searched beside it, measured the same way")
    for name in usable:
        if name not in searched:
            rejected.append(Rejected(framework=name, reason=f"not installed ({registry.entry(name).install})"))
    rejected.sort(key=lambda r: chain.index(r.framework))
    return chosen, reason, rejected, searched


def _baseline_framework(searched: list[str], recipes: dict[str, Recipe], registry: Registry, manifest: Manifest) -> str:
    """The runtime of the source model as the user has it, the reference every ratio is taken against:
    ONNX Runtime for graph models (its recipe also exports Hugging Face folders), whether or not its
    own candidates are searched; else the first searched framework whose recipe makes a baseline."""
    task, source = manifest.model.task, manifest.model.format
    preferred = ["onnxruntime", *searched]
    for name in dict.fromkeys(preferred):
        entry = registry.entry(name)
        if entry is None or not entry.implemented or task not in entry.tasks or name not in recipes:
            continue
        if name == "onnxruntime" or any(e.role == "baseline" and e.when.admits(task, source)[0]
                                        for stage in recipes[name].stages for e in stage.passes):
            return name
    return searched[0]


def _float_graph_conflict(pass_class, source_quantized: str | None, input_is_float: bool) -> str | None:
    """Why a pass cannot run here because of the source's quantized form (None when it can)."""
    if pass_class.restores_float:
        if source_quantized is None:
            return "the source is a float graph: nothing to dequantize"
        if not source_quantized.startswith("QDQ"):
            return (f"only a QDQ graph can be read back as float (its DequantizeLinear nodes say how); the source "
                    f"is {source_quantized}")
        return None
    if source_quantized and pass_class.lowers_precision and not input_is_float:
        return (f"the source is already quantized ({source_quantized}): this pass takes a float graph, and on a "
                "quantized one writes a model ONNX Runtime refuses at load; its input is not a float graph "
                "(only a QDQ source is read back as float, by the dequantize step)")
    return None


def _expand_steps(recipes: dict[str, Recipe], searched: list[str], baseline_framework: str, manifest: Manifest,
                  symbols: dict, registry: Registry, target: Target, source_quantized: str | None = None):
    steps: list[Step] = []
    skipped: list[SkippedStep] = []
    float_ids: set[str] = set()  # for a quantized source: the steps whose output is a float graph again
    baseline_id = "source"
    # the baseline first, whichever framework's recipe makes it; then each framework's candidates
    order = [(baseline_framework, "baseline"), *((name, "candidate") for name in searched)]
    for framework, role in order:
        recipe = recipes[framework]
        last_convert = baseline_id
        previous = baseline_id
        for stage in recipe.stages:
            for entry in stage.passes:
                # another framework makes the shared baseline: this one's baseline step is then an
                # ordinary candidate (its quantize steps still need what it makes)
                promoted = role == "candidate" and entry.role == "baseline" and framework != baseline_framework
                if entry.role != role and not promoted:
                    continue
                admitted, why_not = entry.when.admits(manifest.model.task, manifest.model.format, target.cpu.isa)
                if not admitted:
                    skipped.append(SkippedStep(id=entry.id, pass_name=entry.pass_name, reason=why_not))
                    continue
                pass_class = registry.pass_class(entry.pass_name)
                named = {"source": "source", "previous": previous, "convert": last_convert,
                         "baseline": baseline_id, "leader": "@leader", "leader-memory": "@leader-memory"}
                input_id = named.get(entry.input, entry.input)
                if entry.input not in named and not any(s.id == input_id for s in steps):
                    skipped.append(SkippedStep(id=entry.id, pass_name=entry.pass_name,
                                               reason=f"its input, {entry.input}, is not planned"))
                    continue
                why_not = _float_graph_conflict(pass_class, source_quantized, input_id in float_ids)
                if why_not:
                    skipped.append(SkippedStep(id=entry.id, pass_name=entry.pass_name, reason=why_not))
                    continue
                entry = entry.model_copy(update={
                    "space": {k: list(dict.fromkeys(_resolve_symbol(v, symbols))) for k, v in entry.space.items()},
                })
                # an escalation's first point follows the step it escalates (when that step is planned), the next
                # point the one before it
                escalated = entry.escalates if any(s.id == entry.escalates for s in steps) else None
                for step_id, raw_config in entry.expand():
                    config = {k: _resolve_symbol(v, symbols) for k, v in raw_config.items()}
                    try:
                        validated = pass_class.Config(**config)
                    except ValidationError as exc:
                        raise PlanError(
                            f"pipelines/{recipe.framework}.yaml: {entry.id}: invalid config for {entry.pass_name}: "
                            + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                        ) from None
                    runs_in = registry.entry(entry.pass_name.partition(".")[0]).runs_in
                    steps.append(Step(
                        id=step_id, framework=framework, stage=stage.name, pass_name=entry.pass_name,
                        config=validated.model_dump(mode="json"), input=input_id, role=role,
                        needs_calibration=pass_class.calibrates(validated), needs_validation=pass_class.needs_validation,
                        needs_timing_data=pass_class.needs_timing_data, needs_source=pass_class.needs_source,
                        environments=(*pass_class.environments(validated), *([runs_in] if runs_in else [])),
                        runs_in=runs_in, cost=pass_class.cost, escalates=escalated if entry.escalates else None,
                        why=entry.why,
                    ))
                    previous = step_id
                    escalated = step_id
                    if source_quantized and (pass_class.restores_float
                                             or (input_id in float_ids and not pass_class.lowers_precision)):
                        float_ids.add(step_id)
                if role == "baseline":
                    baseline_id = previous
                if stage.name == "convert":
                    last_convert = previous
    ids = [s.id for s in steps]
    if len(ids) != len(set(ids)):
        raise PlanError(f"pipelines/: duplicate step ids {sorted({i for i in ids if ids.count(i) > 1})} "
                        "(ids must be unique across the frameworks searched)")
    return steps, skipped


def _only(steps: list[Step], wanted: list[str], skipped: list[SkippedStep],
          manifest_name: str) -> tuple[list[Step], list[SkippedStep]]:
    """search.only: the steps asked for, the steps whose models they read (transitively) and the baseline; the
    rest are left out of the plan and say so. An escalation whose step is left out no longer waits on it."""
    by_id = {s.id: s for s in steps}
    for step_id in wanted:
        if step_id in by_id:
            continue
        planned_out = next((s.reason for s in skipped if s.id == step_id), None)
        problem = (f"step {step_id!r} is not in this plan: {planned_out}" if planned_out else
                   f"no step {step_id!r} in this plan (`edgeopt plan` lists them)")
        raise ManifestError(manifest_name, "search.only", problem, () if planned_out else closest(step_id, by_id))
    kept = {s.id for s in steps if s.role == "baseline"}
    for step_id in wanted:
        while step_id in by_id and step_id not in kept:
            kept.add(step_id)
            step_id = by_id[step_id].input
    left_out = [SkippedStep(id=s.id, pass_name=s.pass_name, reason="left out by search.only (the manifest's, or --only)")
                for s in steps if s.id not in kept]
    narrowed = [s if s.escalates is None or s.escalates in kept else s.model_copy(update={"escalates": None})
                for s in steps if s.id in kept]
    return narrowed, left_out


def _resolve_symbol(value, symbols: dict):
    # Recipes may name facts known only at plan time: "cores" (the target's CPU cores),
    # "accuracy_gate_drop" (the relative accuracy drop the gate allows), "npu_platform" (the toolchain's name for
    # the target's NPU chip, e.g. rk3566).
    if isinstance(value, str) and value in symbols:
        return symbols[value]
    if isinstance(value, list):
        return [_resolve_symbol(v, symbols) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_symbol(v, symbols) for k, v in value.items()}
    return value


def require_installed(the_plan: Plan) -> None:
    """Before a build runs anything: every adapter the plan uses must import."""
    if the_plan.missing:
        raise MissingDependency(f"a framework this plan needs ({the_plan.framework} pipeline)", " && ".join(the_plan.missing))
