"""The report: one typed model (report.json is its serialisation) that the terminal summary, the HTML
page, the CI gate step and the packager all read."""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeopt import __version__
from edgeopt.builder import BuildResult
from edgeopt.candidates import CandidateRecord
from edgeopt.errors import UsageError
from edgeopt.gates import GatePolicy
from edgeopt.measure.metrics import metric as metric_named
from edgeopt.memory_reach import memory_floors, out_of_reach
from edgeopt.planner import Plan
from edgeopt.preprocessing import Preprocessing
from edgeopt.runoff import Runoff

SCHEMA_VERSION = 2  # 2: gate verdicts with intervals, timing rounds, duplicate candidates, per-figure detail


class TargetRef(BaseModel):
    id: str
    name: str
    detected: bool


class ProvenanceNote(BaseModel):
    label: str
    statement: str


class Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    edgeopt_version: str
    created: str
    manifest: str
    target: TargetRef
    provenance: ProvenanceNote
    environment: dict
    plan: Plan
    gate_policy: GatePolicy
    baseline: CandidateRecord
    candidates: list[CandidateRecord]
    selected: str | None
    selected_dir: str | None
    verdict: str
    pareto_frontier: list[str] = Field(default_factory=list)
    search: dict | None = None
    cache: dict | None = None
    diagnosis: dict | None = None
    runoffs: list[Runoff] = Field(default_factory=list, description="candidates timed again side by side to choose "
                                  "among them (the selected one, a framework's leader), when their speedup intervals "
                                  "overlapped")
    notes: list[str] = Field(default_factory=list)
    deployment_notes: list[str] = Field(default_factory=list)
    preprocessing: Preprocessing | None = None  # what a device does to real inputs; files under preprocessing/
    build_seconds: float

    def record(self, record_id: str) -> CandidateRecord | None:
        return next((r for r in (self.baseline, *self.candidates) if r.id == record_id), None)

    @property
    def selected_record(self) -> CandidateRecord | None:
        return self.record(self.selected) if self.selected else None

    @property
    def metric(self) -> str:
        return self.plan.metric


def build_report(result: BuildResult, cpu_model: str, deployment_notes: list[str] = (),
                 preprocessing: Preprocessing | None = None) -> Report:
    plan = result.plan
    versions = {}
    for record in (result.baseline, *result.candidates):
        versions.update(record.metrics.versions if record.metrics else {})
    return Report(
        edgeopt_version=__version__,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        manifest=plan.manifest,
        target=TargetRef(id=plan.target.id, name=plan.target.name, detected=plan.target.detected),
        provenance=ProvenanceNote(label=plan.provenance, statement=_provenance_statement(plan)),
        environment={"python": platform.python_version(), "platform": platform.platform(),
                     "build_host_cpu": cpu_model, "frameworks": versions},
        plan=plan, gate_policy=plan.gates, baseline=result.baseline, candidates=list(result.candidates),
        selected=result.selected.id if result.selected else None,
        selected_dir=str(result.out_dir / "selected") if result.selected else None,
        verdict=_verdict(result), pareto_frontier=list(result.frontier), search=result.search, cache=result.cache,
        diagnosis=result.diagnosis, runoffs=list(result.runoffs), notes=[*plan.notes, *result.notes],
        deployment_notes=list(deployment_notes),
        preprocessing=preprocessing, build_seconds=round(result.seconds, 1),
    )


def _provenance_statement(plan: Plan) -> str:
    name = plan.target.name
    if plan.provenance == "measured-device":
        return f"Every figure was measured on {name}, the device this build targets."
    statement = f"Host figures were measured on the build host, NOT on {name}."
    evaluation = plan.target_evaluation
    if evaluation is None:
        return statement + " Use them to rank candidates only with care."
    parts = []
    for framework, source in evaluation.by_framework.items():
        latency = {"instruction-count": "latency estimated from instructions counted under emulation",
                   "roofline": "latency from a roofline estimate", "measured-device": "latency measured on the device"}
        accuracy = {"simulated": "accuracy simulated on the target's runtime build", "measured-host":
                    "accuracy as measured on the host", "measured-device": "accuracy measured on the device"}
        said = f"accuracy from {source.simulator}" if source.simulator else accuracy[source.accuracy]
        parts.append(f"{framework}: {latency[source.latency]}, {said}")
    return (statement + " Gates and selection read the target's figures where the build has them ("
            + "; ".join(parts) + "); each gate says which figure it read.")


def _verdict(result: BuildResult) -> str:
    if result.selected:
        return f"{result.selected.id} passes every gate and is selected"
    ok = [c for c in result.candidates if c.status == "ok"]
    if not ok:
        return "no candidate could be measured"

    def closeness(c):  # most gates passed first, then the smallest shortfall
        shortfalls = [g.shortfall for g in c.gates.values() if not g.passed and g.shortfall is not None]
        return (-sum(g.passed for g in c.gates.values()), sum(shortfalls))

    unreachable = {f.framework for f in out_of_reach(memory_floors(result.baseline, ok, result.plan.gates))}
    lines = []
    for c in sorted(ok, key=closeness)[:3]:
        failed = [_gate_line(name, g) + (f" (out of reach on {c.framework}: see the note)"
                                         if name == "memory_cut" and c.framework in unreachable else "")
                  for name, g in c.gates.items() if not g.passed]
        lines.append(f"{c.id}: " + "; ".join(failed))
    return "no candidate passes every gate; the closest — " + " | ".join(lines)


def _gate_line(name: str, gate) -> str:
    if gate.value is None:
        return f"{name} not measured"
    if gate.verdict == "inconclusive":
        low, high = gate.interval
        return f"{name} {gate.value:.3f} [{low:.3f}–{high:.3f}] inconclusive at {gate.threshold}"
    return f"{name} {gate.value:.3f} < {gate.threshold}"


def write_report(report: Report, out_dir: Path) -> Path:
    path = out_dir / "report.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(report.model_dump_json(indent=2))
    partial.replace(path)
    return path


REPORT_MAX_BYTES = 256 << 20  # a report of thousands of candidates is a few MB; /dev/zero is not a report


def load_report(path: Path) -> Report:
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        with open(path, "rb") as f:
            raw = f.read(REPORT_MAX_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such report (run `edgeopt build` first)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > REPORT_MAX_BYTES:
        raise UsageError(f"{path}: larger than {REPORT_MAX_BYTES >> 20} MB: not a report.json")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
                         "not a report.json") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not a report.json ({exc})") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        found = data.get("schema_version") if isinstance(data, dict) else None
        raise UsageError(f"{path}: report schema {found!r}, this edgeopt reads schema {SCHEMA_VERSION} "
                         "(rebuild with this version)")
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"{path}: not a valid report.json ({exc.errors()[0]['msg']} at "
                         f"{'.'.join(map(str, exc.errors()[0]['loc']))})") from None


# -- the terminal summary ---------------------------------------------------------------------------------
_MARK = {"pass": "✓", "fail": "✗", "inconclusive": "?"}


def baseline_origin(report: Report) -> str:
    """How the reference every ratio is taken against was made: the source as given, or the export (and
    which exporter) a user would run without edgeopt."""
    lineage = report.baseline.lineage
    if not lineage:
        return f"the source model as given, run by {report.baseline.framework}"
    made = lineage[-1]
    notes = made.get("notes") or {}
    how, fallback = notes.get("exporter"), notes.get("why_not_optimum")
    return (f"{made['pass_name']}" + (f" with {how}" if how else "") + f", run by {report.baseline.framework}"
            + (f" ({fallback})" if fallback else ""))


def render_summary(report: Report) -> str:
    metric = report.metric
    on_target = report.plan.target_evaluation is not None
    head = ("candidate", "framework", "precision")
    if on_target:
        head += ("target ms", "target ×", f"target {metric}")
    rows = [(*head, "host p50 ms" if on_target else "p50 ms", "p95 ms", "p99 ms",
             "host speedup [95% CI]" if on_target else "speedup [95% CI]", "RSS MB", "size MB",
             f"host {metric}" if on_target else metric, "gates")]
    for record in (report.baseline, *report.candidates):
        m = record.metrics
        lat = m.latency_ms if m else None
        if record.status != "ok":
            gates = f"{record.status}: {(record.error or '')[:70]}"
        elif record.id == "baseline":
            gates = "(baseline)"
        else:
            gates = " ".join(f"{_short(n)}{_MARK[g.verdict]}{_MARKS.get(g.provenance, '') if on_target else ''}"
                             f"{_ratio(g.value)}" for n, g in record.gates.items())
        marker = "★ " if record.id == report.selected else ("◆ " if record.id in report.pareto_frontier else "  ")
        precision = record.precision or "-"
        if m and m.execution_precision and shows_float_compute(precision, m.execution_precision):
            precision += f" (ran {m.execution_precision})"
        front = (marker + record.id, record.framework, precision)
        if on_target:
            front += _target_cells(record)
        rows.append((*front, _num(lat and lat.p50, 3), _num(lat and lat.p95, 3),
                     _num(lat and lat.p99, 3), _speedup(record), _num(m and m.peak_rss_mb, 0), _num(m and m.size_mb, 1),
                     _num(m and m.score, 4), gates))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    policy = report.gate_policy
    rounds = (report.baseline.metrics.timing.rounds if report.baseline.metrics and report.baseline.metrics.timing
              else None)
    header = [
        f"edgeopt build {report.manifest} → {report.target.id} ({report.plan.framework})",
        f"figures: {report.provenance.label} — {report.provenance.statement}",
        f"gates ({policy.name}): accuracy retained ≥ {policy.accuracy_retained}, speedup ≥ {policy.speedup}, "
        f"memory cut ≥ {policy.memory_cut} ({policy.memory_basis}); a speedup passes when its whole 95% interval "
        "clears the threshold",
        f"accuracy: {metric} — {metric_named(metric).note}",
        f"baseline: {baseline_origin(report)}",
    ]
    if rounds:
        header.append(f"timing: {rounds} rounds; each round times the baseline and a batch of candidates, interleaved")
    legend = "★ selected  ◆ on the Pareto frontier (latency, peak RSS, size, accuracy)  ? inconclusive: rerun with more rounds"
    if on_target:
        legend += ("\ntarget columns: ~ estimated (error band in report.json), ≈ simulated (the target's runtime build "
                   "under emulation), ! its outputs differ from the host's beyond fp32 rounding; - no target figure: "
                   "that candidate's gates read the host's")
    footer = [legend, *(f"note: {n}" for n in report.notes), report.verdict]
    search, cache = report.search or {}, report.cache or {}
    if search.get("stopped"):
        footer.append(f"search: {search['stopped']}")
    footer += [f"run-off for {runoff.decides}: {runoff.reason}" for runoff in report.runoffs]
    diagnosis = report.diagnosis
    if diagnosis and diagnosis.get("layers"):
        worst = ", ".join(f"{l['layer']} (cosine {l['cosine']:.3f})" for l in diagnosis["layers"][:3])
        footer.append(f"diagnosis: {diagnosis['candidate']} lost most accuracy; its most divergent layers vs "
                      f"{diagnosis['reference']}: {worst} (report.html lists {len(diagnosis['layers'])})")
    if cache.get("enabled"):
        footer.append(f"cache: {sum(cache['hits'].values())} hits, {sum(cache['misses'].values())} misses ({cache['dir']})")
    if report.selected_dir:
        footer.append(f"selected model: {report.selected_dir}")
    return "\n".join([*header, "", *lines, "", *footer])


_MARKS = {"estimated": "~", "simulated": "≈", "measured-device": "", "measured-host": "h"}


def _target_cells(record: CandidateRecord) -> tuple[str, str, str]:
    target = record.metrics.target if record.metrics else None
    if target is None:
        return "-", "-", "-"
    latency = target.latency_ms
    speed = record.target_ratios.speedup if record.target_ratios else None
    accuracy = target.accuracy
    flag = "!" if target.outputs_differ else ""
    return (f"{_MARKS[latency.provenance]}{latency.value:.3f}" if latency else "-",
            f"{_MARKS[latency.provenance]}{speed:.2f}" if speed is not None and latency else "-",
            f"{_MARKS[accuracy.provenance]}{accuracy.value:.4f}{flag}" if accuracy else "-")


def _speedup(record: CandidateRecord) -> str:
    r = record.ratios
    if r.speedup is None:
        return "-"
    return f"{r.speedup:.2f}" + (f" [{r.speedup_ci[0]:.2f}–{r.speedup_ci[1]:.2f}]" if r.speedup_ci else "")


def _short(name: str) -> str:
    return {"accuracy_retained": "acc", "speedup": "speed", "memory_cut": "mem"}.get(name, name)


def _num(value, digits: int = 2) -> str:
    return "-" if value is None or value is False else f"{value:.{digits}f}"


def _ratio(value) -> str:
    return "" if value is None else f"{value:.2f}"


def shows_float_compute(precision: str, executed: str) -> bool:
    """Say what a float model computed in when its label does not (an int8 label already says it)."""
    return not precision.startswith("int") and executed not in precision
