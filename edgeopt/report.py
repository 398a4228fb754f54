"""report.json (stable keys, documented in README) and the terminal summary."""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path

from edgeopt import __version__
from edgeopt.build import BuildResult
from edgeopt.candidates import CandidateRecord

SCHEMA_VERSION = 1


def build_report(result: BuildResult, cpu_model: str, deployment_notes: list[str] = ()) -> dict:
    plan = result.plan
    versions = {}
    for record in (result.baseline, *result.candidates):
        versions.update(record.metrics.get("versions", {}))
    return {
        "schema_version": SCHEMA_VERSION,
        "edgeopt_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "manifest": plan.manifest,
        "target": {"id": plan.target.id, "name": plan.target.name, "detected": plan.target.detected},
        "provenance": {
            "label": plan.provenance,
            "statement": _provenance_statement(plan.provenance, plan.target.name),
        },
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "build_host_cpu": cpu_model, "frameworks": versions},
        "plan": plan.model_dump(mode="json", exclude={"target"}),
        "gate_policy": plan.gates.model_dump(mode="json"),
        "baseline": _candidate(result.baseline),
        "candidates": [_candidate(c) for c in result.candidates],
        "selected": result.selected.id if result.selected else None,
        "selected_dir": str(result.out_dir / "selected") if result.selected else None,
        "verdict": _verdict(result),
        "pareto_frontier": list(result.frontier),
        "search": result.search,
        "cache": result.cache,
        "diagnosis": result.diagnosis,
        "notes": [*plan.notes, *result.notes],
        "deployment_notes": list(deployment_notes),
        "build_seconds": round(result.seconds, 1),
    }


def _provenance_statement(label: str, target_name: str) -> str:
    if label == "measured-device":
        return f"Every figure was measured on {target_name}, the device this build targets."
    return (f"Every figure was measured on the build host, NOT on {target_name}. Use them to rank candidates "
            "only with care: the device's CPU, memory and runtime build can change the order.")


def _candidate(record: CandidateRecord) -> dict:
    metrics = record.metrics
    return {
        "id": record.id,
        "framework": record.framework,
        "precision": record.precision,
        "stage": record.stage,
        "pass": record.pass_name,
        "config": record.config,
        "input": record.input,
        "status": record.status,
        "error": record.error,
        "provenance": record.provenance,
        "metrics": {
            "latency_ms": metrics.get("latency_ms"),
            "baseline_p50_runs_ms": metrics.get("baseline_p50_runs_ms"),
            "throughput_per_s": metrics.get("throughput_per_s"),
            "peak_rss_mb": metrics.get("peak_rss_mb"),
            "runtime_import_rss_mb": metrics.get("runtime_import_rss_mb"),
            "size_mb": metrics.get("size_mb"),
            "load_s": metrics.get("load_s"),
            "threads": metrics.get("threads"),
            "accuracy": metrics.get("accuracy"),
            "peak_rss_with_eval_mb": metrics.get("peak_rss_with_eval_mb"),
            "llm": metrics.get("llm"),  # language models: ttft_ms, prompt/generation tokens per second
            "versions": metrics.get("versions"),
        } if metrics else None,
        "ratios": record.ratios,
        "gates": {name: {"passed": g.passed, "value": g.value, "threshold": g.threshold, "detail": g.detail}
                  for name, g in record.gates.items()},
        "model_path": record.model_path,
        "runtime_config": record.runtime_config,
        "lineage": record.lineage,
        "pass_seconds": record.pass_seconds,
        "model_files": record.model_files,
        "cached": record.cached,
    }


def _verdict(result: BuildResult) -> str:
    if result.selected:
        return f"{result.selected.id} passes every gate and is selected"
    ok = [c for c in result.candidates if c.status == "ok"]
    if not ok:
        return "no candidate could be measured"

    def closeness(c):  # most gates passed first, then the smallest shortfall
        shortfalls = [g.shortfall for g in c.gates.values() if not g.passed and g.shortfall is not None]
        return (-sum(g.passed for g in c.gates.values()), sum(shortfalls))

    lines = []
    for c in sorted(ok, key=closeness)[:3]:
        failed = [f"{name} {g.value:.3f} < {g.threshold}" if g.value is not None else f"{name} not measured"
                  for name, g in c.gates.items() if not g.passed]
        lines.append(f"{c.id}: " + "; ".join(failed))
    return "no candidate passes every gate; the closest — " + " | ".join(lines)


def write_report(report: dict, out_dir: Path) -> Path:
    path = out_dir / "report.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(report, indent=2))
    partial.replace(path)
    return path


def render_summary(report: dict) -> str:
    metric = report["plan"]["metric"]
    rows = [("candidate", "framework", "precision", "p50 ms", "p90 ms", "p99 ms", "RSS MB", "size MB", metric, "gates")]
    for record in (report["baseline"], *report["candidates"]):
        m = record["metrics"] or {}
        lat = m.get("latency_ms") or {}
        acc = (m.get("accuracy") or {}).get("score")
        if record["status"] != "ok":
            gates = f"{record['status']}: {(record['error'] or '')[:60]}"
        elif record["id"] == "baseline":
            gates = "(baseline)"
        else:
            gates = " ".join(f"{_short(n)}{'✓' if g['passed'] else '✗'}{_ratio(g['value'])}" for n, g in record["gates"].items())
        marker = "★ " if record["id"] == report["selected"] else ("◆ " if record["id"] in report["pareto_frontier"] else "  ")
        rows.append((marker + record["id"], record["framework"], record["precision"] or "-", _num(lat.get("p50")), _num(lat.get("p90")),
                     _num(lat.get("p99")), _num(m.get("peak_rss_mb"), 0), _num(m.get("size_mb"), 1),
                     _num(acc, 4), gates))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    policy = report["gate_policy"]
    header = [
        f"edgeopt build {report['manifest']} → {report['target']['id']} ({report['plan']['framework']})",
        f"figures: {report['provenance']['label']} — {report['provenance']['statement']}",
        f"gates ({policy['name']}): accuracy retained ≥ {policy['accuracy_retained']}, speedup ≥ {policy['speedup']}, "
        f"memory cut ≥ {policy['memory_cut']} ({policy['memory_basis']})",
        f"accuracy: {metric} — {_METRIC_NOTES.get(metric, '')}",
    ]
    footer = ["★ selected  ◆ on the Pareto frontier (latency, peak RSS, size, accuracy)",
              *(f"note: {n}" for n in report["notes"]), report["verdict"]]
    search, cache = report.get("search") or {}, report.get("cache") or {}
    if search.get("stopped"):
        footer.append(f"search: {search['stopped']}")
    diagnosis = report.get("diagnosis")
    if diagnosis and diagnosis.get("layers"):
        worst = ", ".join(f"{l['layer']} (cosine {l['cosine']:.3f})" for l in diagnosis["layers"][:3])
        footer.append(f"diagnosis: {diagnosis['candidate']} lost most accuracy; its most divergent layers vs "
                      f"{diagnosis['reference']}: {worst} (report.html lists {len(diagnosis['layers'])})")
    if cache.get("enabled"):
        footer.append(f"cache: {sum(cache['hits'].values())} hits, {sum(cache['misses'].values())} misses ({cache['dir']})")
    if report["selected_dir"]:
        footer.append(f"selected model: {report['selected_dir']}")
    return "\n".join([*header, "", *lines, "", *footer])


_METRIC_NOTES = {
    "top1": "share of correct labels; retained = candidate / baseline",
    "fidelity": "mean cosine similarity to the baseline's outputs; retained = candidate / baseline",
    "cer": "character error rate, lower is better; retained = baseline / candidate",
    "mae": "mean absolute error, lower is better; retained = baseline / candidate",
    "perplexity": "perplexity of the evaluation text, lower is better; retained = baseline / candidate; "
                  "latency columns are milliseconds between generated tokens",
}


def _short(name: str) -> str:
    return {"accuracy_retained": "acc", "speedup": "speed", "memory_cut": "mem"}.get(name, name)


def _num(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(value) -> str:
    return "" if value is None else f"{value:.2f}"
