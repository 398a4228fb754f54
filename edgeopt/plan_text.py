"""Human-readable renderings of a Plan and of a Target."""

from __future__ import annotations

from collections.abc import Mapping

from edgeopt.catalog import Target
from edgeopt.planner import Plan
from edgeopt.registry import Registry


def render_plan(plan: Plan, registry: Registry, environments: Mapping | None = None) -> str:
    """`environments`: the state (EnvStatus) of each environment a step uses, by name, when known."""
    t = plan.target
    lines = [
        f"plan for {plan.manifest} (task: {plan.task})",
        "",
        f"target: {t.id} — {t.name}" + (" [detected from this machine]" if t.detected else ""),
        f"  {t.arch}, {t.cores} cores ({', '.join(f'{c.cores}x {c.uarch}' for c in t.cpu.clusters)}), "
        f"ISA: {', '.join(t.cpu.isa) or 'n/a'}",
    ]
    if t.accelerators:
        lines.append("  accelerators: " + "; ".join(a.name for a in t.accelerators))
    lines += [
        "",
        f"framework: {plan.framework}",
        f"  why: {plan.framework_reason}",
    ]
    for rejected in plan.rejected:
        lines.append(f"  rejected {rejected.framework}: {rejected.reason}")
    if t.frameworks.vendor_runtimes:
        lines.append(f"  vendor runtimes edgeopt does not drive: {', '.join(t.frameworks.vendor_runtimes)}")
    if len(plan.frameworks) > 1:
        lines.append(f"  searched: {', '.join(plan.frameworks)} (each measured the same way, against one baseline)")
    lines += ["", f"baseline: {'the source model' if plan.baseline == 'source' else 'output of step ' + plan.baseline}"
              f", run by {plan.baseline_framework}",
              f"search: {plan.search.strategy}" + (f", at most {plan.search.max_candidates} candidates" if plan.search.max_candidates else "")
              + (f", time budget {plan.search.time_budget_s:g} s" if plan.search.time_budget_s else "")
              + (f", only {', '.join(plan.search.only)} and what they read" if plan.search.only else ""),
              *(["  cheapest passes first; skips escalations of steps that keep accuracy and steps that repeat an "
                 "option which lost on a similar pair; stops at the first candidate passing every gate"]
                if plan.search.strategy == "cheap-first" else []),
              "", "steps:"]
    for number, step in enumerate(plan.steps, 1):
        config = ", ".join(f"{k}={v}" for k, v in step.config.items())
        source = {"source": "the source model", "@leader": "the best candidate so far that keeps accuracy",
                  "@leader-memory": "the candidate so far of least peak memory that keeps accuracy"}.get(
            step.input, step.input)
        role = " [baseline]" if step.role == "baseline" else ""
        lines.append(f"  {number:2}. {step.stage:10} {step.id:26} {step.pass_name}{role}")
        lines.append(f"      input: {source}" + (", needs calibration data" if step.needs_calibration else ""))
        if config:
            lines.append(f"      config: {config}")
        for name in step.environments:
            status = (environments or {}).get(name)
            state = "state unknown" if status is None else (
                f"ready — {status.detail}" if status.present else f"missing — {status.detail}")
            runs = ", runs there" if name == step.runs_in else ""
            lines.append(f"      environment {name}{runs}: {state}")
        if step.escalates:
            when = ("only if it does not" if plan.search.strategy == "cheap-first"
                    else "run here in any case (exhaustive search); a cheap-first search runs it only if it does not")
            lines.append(f"      escalates {step.escalates}: buys accuracy back from it; {when} keep accuracy")
        if step.why:
            lines.append(f"      why: {step.why}")
    if plan.source_quantized:
        restored = [s.id for s in plan.steps if registry.pass_class(s.pass_name).restores_float]
        lines.append(f"   source arrives quantized ({plan.source_quantized}): passes that need a float graph "
                     + (f"take {', '.join(restored)} (the source read back as float)" if restored else "are skipped"))
    for skipped in plan.skipped:
        lines.append(f"   -  skipped {skipped.id} ({skipped.pass_name}): {skipped.reason}")
    g = plan.gates
    lines += [
        "",
        f"gates ({g.name}): accuracy retained ≥ {g.accuracy_retained}, speedup ≥ {g.speedup}, "
        f"memory cut ≥ {g.memory_cut} (basis: {g.memory_basis})",
        f"figures will be: {plan.provenance}" + (" (host), and for the target:" if plan.target_evaluation else ""),
        *_target_lines(plan),
        *[f"  note: {n}" for n in plan.notes],
        "",
        "extras needed: " + ", ".join(plan.extras),
    ]
    for name in sorted({*plan.frameworks, *(s.pass_name.partition('.')[0] for s in plan.steps)}):
        status = registry.availability.get(name)
        state = f"installed ({status.version})" if status and status.available else f"MISSING: {registry.entry(name).install}"
        lines.append(f"  {name}: {state}")
    return "\n".join(lines)


def _target_lines(plan: Plan) -> list[str]:
    evaluation = plan.target_evaluation
    if evaluation is None:
        return []
    lines = [f"  {name}: latency {source.latency}, accuracy {source.accuracy} — {source.why}"
             for name, source in evaluation.by_framework.items()]
    if evaluation.emulation:
        e = evaluation.emulation
        lines.append(f"  runs in: the {e.env} emulation environment as a {e.core} (qemu -cpu {e.qemu_cpu}), "
                     f"{e.samples} samples per candidate (`edgeopt env create {e.env}` makes it)")
    if evaluation.device_timing:
        lines.append(f"  timed on: {evaluation.device_timing}")
    return lines


def render_target(t: Target) -> str:
    lines = [f"{t.id} — {t.name}"]
    if t.aliases:
        lines.append(f"aliases: {', '.join(t.aliases)}")
    lines.append(f"vendor: {t.vendor}, arch: {t.arch}" + (" (detected from this machine)" if t.detected else ""))
    lines.append("cpu: " + "; ".join(
        f"{c.cores}x {c.uarch}" + (f" @ {c.max_ghz} GHz" if c.max_ghz else "") for c in t.cpu.clusters)
        + f"  [source: {t.cpu.source}]")
    lines.append(f"  ISA: {', '.join(t.cpu.isa) or 'n/a'}" + (f"; absent: {', '.join(t.cpu.isa_absent)}" if t.cpu.isa_absent else ""))
    if t.peak:
        lines.append(f"peak: fp32 {t.peak.fp32_gflops} GFLOPS, int8 {t.peak.int8_gops} GOPS ({t.peak.basis})"
                     f"  [source: {t.peak.source}]")
    m = t.memory
    lines.append(f"memory: {m.type or 'n/a'}; RAM {', '.join(f'{r:g}' for r in m.ram_gb) or 'n/a'} GB; "
                 f"bandwidth {m.bandwidth_gbps or 'n/a'} GB/s"
                 + (f", measured {m.measured_bandwidth_gbps} GB/s" if m.measured_bandwidth_gbps else "")
                 + f"  [source: {m.source}]")
    for a in t.accelerators:
        lines.append(f"accelerator: {a.kind} {a.name}" + (f", {a.tops_int8} int8 TOPS" if a.tops_int8 else "")
                     + (f", toolchain {a.toolchain}" if a.toolchain else "") + (" (optional add-on)" if a.optional else "")
                     + f"  [source: {a.source}]")
    lines.append(f"frameworks: {' → '.join(t.frameworks.chain)} — {t.frameworks.reason}")
    for note in t.notes:
        lines.append(f"note: {note}")
    if t.sources:
        lines.append("sources:")
        lines += [f"  {k}: {v}" for k, v in t.sources.items()]
    return "\n".join(lines)
