"""report.html: one self-contained page (no CDN, no network) rendered from the typed Report.

Tables are rendered here, so the page reads without JavaScript; the Pareto chart is drawn in the page
by a small inline script (SVG, no library), with a choice of axes, error bars over the timing rounds,
tooltips and a link to each row. The baseline's per-round latency is a small server-side plot.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from edgeopt.candidates import CandidateRecord
from edgeopt.measure.metrics import metric as metric_named
from edgeopt.report import Report, baseline_origin, shows_float_compute

_BADGES = {
    "measured-device": ("measured on device", "ok"),
    "measured-host": ("measured on build host", "warn"),
    "simulated": ("simulated", "muted"),
    "estimated": ("estimated", "muted"),
    "reference": ("reference", "muted"),
}
_VERDICT_BADGE = {"pass": "ok", "fail": "fail", "inconclusive": "warn"}


def write_html_report(report: Report, out_dir: Path) -> Path:
    path = out_dir / "report.html"
    partial = path.with_suffix(".html.partial")
    partial.write_text(render_html(report), encoding="utf-8")
    partial.replace(path)
    return path


def render_html(report: Report) -> str:
    rows = [report.baseline, *report.candidates]
    points = [_point(r, report) for r in rows if r.status == "ok" and r.metrics]
    data = {"metric": report.metric, "higher_is_better": metric_named(report.metric).higher_is_better,
            "points": points, "selected": report.selected}
    title = f"edgeopt · {report.manifest} → {report.target.id}"
    body = "\n".join([
        f"<h1>{escape(title)}</h1>",
        _verdict_block(report),
        "<h2>Pareto frontier</h2>",
        _chart_block(report.plan.target_evaluation is not None),
        "<h2>Progression</h2>",
        _progression(report),
        "<h2>Candidates</h2>",
        _candidates_table(report, rows),
        "<h2>Timing</h2>",
        _timing_block(report),
        "<h2>Accuracy diagnosis</h2>",
        _diagnosis_block(report),
        "<h2>Gates</h2>",
        _gates_table(report),
        "<h2>Plan</h2>",
        _plan_block(report),
        "<h2>Environment</h2>",
        _environment_block(report),
    ])
    payload = json.dumps(data).replace("</", "<\\/")
    return _PAGE.format(title=escape(title), style=_STYLE, body=body, data=payload, script=_SCRIPT)


def _point(record: CandidateRecord, report: Report) -> dict:
    m = record.metrics
    rounds = m.timing.p50_per_round_ms if m.timing else []
    target = m.target
    target_latency = target.latency_ms if target else None
    return {"id": record.id, "framework": record.framework, "precision": record.precision, "stage": record.stage,
            "latency": m.p50, "lat_lo": min(rounds) if rounds else None, "lat_hi": max(rounds) if rounds else None,
            "target_latency": target_latency.value if target_latency else None,
            "target_lo": target_latency.interval[0] if target_latency and target_latency.interval else None,
            "target_hi": target_latency.interval[1] if target_latency and target_latency.interval else None,
            "target_accuracy": target.accuracy.value if target and target.accuracy else m.score,
            "rss": m.peak_rss_mb, "size": m.size_mb, "accuracy": m.score, "passed": record.passed_all_gates,
            "frontier": record.id in report.pareto_frontier, "provenance": record.provenance}


def _badge(provenance: str) -> str:
    label, kind = _BADGES.get(provenance, (provenance, "muted"))
    return f'<span class="badge {kind}" title="{escape(provenance)}">{escape(label)}</span>'


def _verdict_block(report: Report) -> str:
    ok = report.selected is not None
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    search = report.search or {}
    stopped = f"<p>Search: {escape(search['stopped'])}</p>" if search.get("stopped") else ""
    runoff = "".join(f"<p>Run-off for {escape(r.decides)}: {escape(r.reason)}</p>" for r in report.runoffs)
    return (f'<div class="verdict {"pass" if ok else "fail"}"><strong>{"PASS" if ok else "NO CANDIDATE PASSES"}</strong> '
            f'{escape(report.verdict)}</div>'
            f'<p>{_badge(report.provenance.label)} {escape(report.provenance.statement)}</p>{stopped}{runoff}'
            + (f"<ul class='notes'>{notes}</ul>" if notes else ""))


def _chart_block(on_target: bool) -> str:
    target = ('<option value="target_latency" selected>target latency (ms, estimated or device)</option>'
              if on_target else "")
    return ('<div class="controls">x axis: <select id="x-axis">' + target +
            '<option value="latency">host median latency (ms)</option><option value="rss">peak RSS (MB)</option>'
            '<option value="size">size on disk (MB)</option></select> · y axis: accuracy · '
            '<span class="legend"><i class="dot frontier"></i> on the 4-way frontier (latency, RSS, size, accuracy) '
            '<i class="dot pass"></i> passes every gate <i class="dot other"></i> other</span></div>'
            '<div id="chart" role="img" aria-label="Pareto chart"></div><div id="tooltip" hidden></div>'
            '<p class="hint">The line joins the candidates no other beats on both shown axes. Latency error bars span the '
            'round medians. Click a point to find its row.</p>')


def _progression(report: Report) -> str:
    base = report.baseline
    cells = [_stage_cell("baseline", base)]
    for stage in ("convert", "quantize", "accelerate"):
        ok = [c for c in report.candidates if c.stage == stage and c.status == "ok" and c.metrics.p50 is not None]
        pool = [c for c in ok if c.keeps_accuracy] or ok
        cells.append(_stage_cell(stage, min(pool, key=lambda c: c.metrics.p50) if pool else None))
    return '<div class="progression">' + '<span class="arrow">→</span>'.join(cells) + "</div>"


def _stage_cell(stage: str, record: CandidateRecord | None) -> str:
    if record is None or record.status != "ok":
        return f'<div class="stage"><h3>{stage}</h3><p class="muted">nothing measured</p></div>'
    m = record.metrics
    speed = record.ratios.speedup
    lines = [f"<b>{escape(record.id)}</b> ({escape(record.framework)}, {escape(str(record.precision))})",
             f"p50 {_num(m.p50)} ms" + (f" · {speed:.2f}×" if speed else ""),
             f"RSS {_num(m.peak_rss_mb, 0)} MB · {_num(m.size_mb, 1)} MB",
             f"accuracy {m.score:.4f}" if m.score is not None else "accuracy n/a"]
    return f'<div class="stage"><h3>{stage}</h3>' + "<br>".join(lines) + "</div>"


def _num(value, digits=3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _speedup_cell(record: CandidateRecord) -> str:
    r = record.ratios
    if r.speedup is None:
        return "–"
    interval = f' <span class="muted">[{r.speedup_ci[0]:.2f}–{r.speedup_ci[1]:.2f}]</span>' if r.speedup_ci else ""
    return f"{r.speedup:.2f}{interval}"


def _target_cells(record: CandidateRecord) -> str:
    """The device's figures, first: each with the badge of where it came from."""
    target = record.metrics.target if record.metrics else None
    if target is None:
        return '<td colspan="3" class="muted">no target figure: its gates read the host\'s</td>' if record.metrics else \
            "<td></td><td></td><td></td>"
    latency, accuracy = target.latency_ms, target.accuracy
    speed = record.target_ratios.speedup if record.target_ratios else None
    band = (f' <span class="muted">[{latency.interval[0]:.3f}–{latency.interval[1]:.3f}]</span>'
            if latency and latency.interval else "")
    cells = [f"{latency.value:.3f}{band} {_badge(latency.provenance)}" if latency else "–",
             f"{speed:.2f}" if speed is not None else "–",
             (f"{accuracy.value:.4f} {_badge(accuracy.provenance)}" + (' <span class="badge fail" title="the target\'s '
              'outputs differ from the host\'s beyond fp32 rounding">differs</span>' if target.outputs_differ else ""))
             if accuracy else "–"]
    return "".join(f'<td title="{escape(latency.source if i == 0 and latency else accuracy.source if i == 2 and accuracy else "")}">{c}</td>'
                   for i, c in enumerate(cells))


def _candidates_table(report: Report, rows: list[CandidateRecord]) -> str:
    on_target = report.plan.target_evaluation is not None
    target_head = ("<th>target ms</th><th>target speedup</th><th>target accuracy</th>" if on_target else "")
    head = ("<tr><th>candidate</th><th>framework</th><th>precision</th><th>stage</th>" + target_head +
            "<th>host p50 ms</th><th>p95 ms</th>"
            "<th>p99 ms</th><th>peak RSS MB</th><th>size MB</th><th>accuracy</th><th>speedup [95% CI]</th>"
            "<th>rounds</th><th>gates</th><th>figures</th><th>what the pass reported</th></tr>")
    body = []
    for r in rows:
        m = r.metrics
        lat = m.latency_ms if m else None
        marks = ("★ " if r.id == report.selected else "") + ("◆ " if r.id in report.pareto_frontier else "")
        if r.status != "ok":
            gates = f'<span class="badge fail">{escape(r.status)}</span> {escape((r.error or "")[:160])}'
        elif r.id == "baseline":
            gates = "baseline"
        else:
            gates = " ".join(f'<span class="badge {_VERDICT_BADGE[g.verdict]}" title="{escape(g.verdict)}: read the '
                             f'{escape(g.provenance or "")} figure">{escape(n)} '
                             f'{_num(g.value, 2)}</span>' for n, g in r.gates.items())
        cached = [k for k, v in r.cached.items() if v]
        figures = _badge(r.provenance) + (f' <span class="badge muted">cached: {", ".join(cached)}</span>' if cached else "")
        precision = str(r.precision or "–")
        if m and m.execution_precision and shows_float_compute(precision, m.execution_precision):
            precision += f" (ran {m.execution_precision})"
        timing = m.timing if m else None
        rounds = "–" if timing is None else f"{timing.rounds}" + (f" ({len(timing.discarded)} redone)" if timing.discarded else "")
        body.append(
            f'<tr id="row-{escape(r.id)}" class="{r.status}"><td>{marks}{escape(r.id)}</td><td>{escape(r.framework)}</td>'
            f'<td>{escape(precision)}</td><td>{escape(r.stage)}</td>' + (_target_cells(r) if on_target else "") +
            f'<td>{_num(lat and lat.p50)}</td>'
            f'<td>{_num(lat and lat.p95)}</td><td>{_num(lat and lat.p99)}</td><td>{_num(m and m.peak_rss_mb, 0)}</td>'
            f'<td>{_num(m and m.size_mb, 1)}</td><td>{_num(m and m.score, 4)}</td>'
            f'<td>{_speedup_cell(r)}</td><td>{rounds}</td><td>{gates}</td><td>{figures}</td>'
            f'<td>{_pass_notes(r)}</td></tr>')
    return (f'<table class="candidates">{head}{"".join(body)}</table><p class="hint">★ selected · ◆ on the Pareto '
            'frontier · a yellow gate is inconclusive: its 95% interval straddles the threshold (rerun with more rounds)</p>')


def _timing_block(report: Report) -> str:
    """The baseline's median latency round by round: how much the machine moved during the build."""
    timing = report.baseline.metrics.timing if report.baseline.metrics else None
    series = timing.p50_per_round_ms if timing else []
    if len(series) < 2:
        return '<p class="muted">The baseline was timed in fewer than two rounds.</p>'
    w, h, pad = 560, 110, 8
    lo, hi = min(series), max(series)
    span = (hi - lo) or hi * 0.05 or 1
    xs = [pad + i * (w - 2 * pad) / (len(series) - 1) for i in range(len(series))]
    ys = [h - pad - (v - lo) / span * (h - 2 * pad) for v in series]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#3b6ea5"><title>round {i + 1}: {v:.3f} ms</title></circle>'
                   for i, (x, y, v) in enumerate(zip(xs, ys, series)))
    windows = (report.search or {}).get("windows") or []
    return (f'<p>The baseline was timed in {len(series)} rounds (once beside every batch of candidates); its round '
            f'medians ranged {lo:.3f}–{hi:.3f} ms. Each candidate\'s speedup is the median of its ratios to the baseline '
            f'of the same round. {len(windows)} windows were timed in this build, one at a time.</p>'
            f'<svg class="series" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><polyline points="{line}" fill="none" '
            f'stroke="#3b6ea5" stroke-width="1.5"/>{dots}</svg>')


def _diagnosis_block(report: Report) -> str:
    diagnosis = report.diagnosis
    if not diagnosis:
        return '<p class="muted">No candidate lost accuracy: nothing to diagnose.</p>'
    if diagnosis.get("error"):
        return f"<p>Diagnosis of {escape(diagnosis['candidate'])} failed: {escape(diagnosis['error'])}</p>"
    rows = "".join(f"<tr><td>{escape(l['layer'])}</td><td>{l['cosine']:.4f}</td><td>{_number(l.get('relative_error'))}"
                   "</td></tr>" for l in diagnosis["layers"])
    by = f" ({escape(diagnosis['by'])})" if diagnosis.get("by") else ""
    return (f"<p><b>{escape(diagnosis['candidate'])}</b> kept the least accuracy "
            f"(retained {diagnosis['accuracy_retained']:.3f}). Its layer outputs against <b>{escape(diagnosis['reference'])}</b> "
            f"on {diagnosis['samples']} sample(s){by}, most divergent first ({diagnosis['compared_layers']} layers compared); "
            "keeping the first of these in float (ignored scope, excluded nodes) is where to start.</p>"
            f"<table><tr><th>layer</th><th>cosine</th><th>relative error</th></tr>{rows}</table>")


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


_NOTE_LABELS = {  # lineage notes worth a glance in the table; the full notes are in report.json
    "reverted_to_float": "reverted to float", "fallback_tensors": "tensors that fell back",
    "unquantized": "left unquantized", "max_abs_error_vs_torch": "export max error vs torch",
    "calibration_samples": "calibration samples", "quantized_nodes": "quantized nodes",
}


def _pass_notes(record: CandidateRecord) -> str:
    notes = record.lineage[-1].get("notes", {}) if record.lineage else {}
    parts = []
    for key, label in _NOTE_LABELS.items():
        value = notes.get(key)
        if value is None or value == []:
            continue
        if isinstance(value, list):
            names = [v["tensor"] if isinstance(v, dict) else str(v) for v in value]
            shown = ", ".join(names[:4]) + (f" … ({len(names)} in all)" if len(names) > 4 else "")
            parts.append(f"{label}: {escape(shown)}")
        else:
            parts.append(f"{label}: {escape(f'{value:.1e}' if isinstance(value, float) else str(value))}")
    if record.same_as:
        parts.append(f"same model as {escape(record.same_as)}")
    return "<br>".join(parts)


def _gates_table(report: Report) -> str:
    policy = report.gate_policy
    rows = ["<tr><th>gate</th><th>threshold</th><th>what it reads</th></tr>",
            f"<tr><td>accuracy_retained</td><td>≥ {policy.accuracy_retained}</td><td>{escape(report.metric)} "
            "of the candidate relative to the baseline</td></tr>",
            f"<tr><td>speedup</td><td>≥ {policy.speedup}</td><td>median over rounds of the baseline's latency / the "
            "candidate's in the same round; passes when the 95% interval's lower end clears it, fails when the upper "
            "end is below, else inconclusive</td></tr>",
            f"<tr><td>memory_cut</td><td>≥ {policy.memory_cut}</td><td>1 − candidate / baseline "
            f"{escape(policy.memory_basis)}</td></tr>"]
    return f'<p>Policy <b>{escape(policy.name)}</b>: {escape(policy.description or "")}</p><table>{"".join(rows)}</table>'


def _plan_block(report: Report) -> str:
    plan = report.plan
    rejected = "".join(f"<li><b>{escape(r.framework)}</b>: {escape(r.reason)}</li>" for r in plan.rejected)
    steps = "".join(
        f"<tr><td>{escape(s.id)}</td><td>{escape(s.framework)}</td><td>{escape(s.stage)}</td><td>{escape(s.pass_name)}</td>"
        f"<td><code>{escape(json.dumps(s.config))}</code></td><td>{escape(s.why)}</td></tr>" for s in plan.steps)
    skipped = "".join(f"<li>{escape(s.id)}: {escape(s.reason)}</li>" for s in plan.skipped)
    return (f"<p><b>Framework:</b> {escape(plan.framework)} — {escape(plan.framework_reason)}</p>"
            f"<p><b>Searched:</b> {escape(', '.join(plan.frameworks))}; strategy {escape(plan.search.strategy)}</p>"
            f"<p><b>Baseline:</b> {escape(baseline_origin(report))}</p>"
            + (f"<p><b>Rejected:</b></p><ul>{rejected}</ul>" if rejected else "")
            + f"<table><tr><th>step</th><th>framework</th><th>stage</th><th>pass</th><th>config</th><th>why</th></tr>{steps}</table>"
            + (f"<p><b>Skipped by the plan:</b></p><ul>{skipped}</ul>" if skipped else ""))


def _environment_block(report: Report) -> str:
    env = report.environment
    versions = ", ".join(f"{k} {v}" for k, v in sorted(env["frameworks"].items())) or "–"
    cache = report.cache or {}
    cache_line = (f"{sum(cache['hits'].values())} hits, {sum(cache['misses'].values())} misses"
                  if cache.get("enabled") else "off")
    search = report.search or {}
    return (f"<table><tr><td>build host CPU</td><td>{escape(env['build_host_cpu'])}</td></tr>"
            f"<tr><td>platform</td><td>{escape(env['platform'])} · Python {escape(env['python'])}</td></tr>"
            f"<tr><td>frameworks</td><td>{escape(versions)}</td></tr>"
            f"<tr><td>executor</td><td>{escape(str(search.get('executor', '–')))} "
            f"({escape(str(search.get('timing', '')))})</td></tr>"
            f"<tr><td>cache</td><td>{escape(cache_line)}</td></tr>"
            f"<tr><td>edgeopt</td><td>{escape(report.edgeopt_version)} · built {escape(report.created)} in "
            f"{report.build_seconds} s</td></tr></table>")


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#1d232a;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde;padding-bottom:4px}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}
tr.failed td,tr.skipped td{color:#777}tr.highlight td{background:#fff6c8}
.badge{display:inline-block;border-radius:9px;padding:0 7px;font-size:11px;margin:1px;background:#eef}
.badge.ok{background:#d9f2df;color:#135a25}.badge.warn{background:#fff0c2;color:#6d5200}.badge.fail{background:#fbdada;color:#7a1515}
.badge.muted{background:#eceff3;color:#555}.verdict{padding:10px 12px;border-radius:6px;margin:8px 0}
.verdict.pass{background:#e3f5e6}.verdict.fail{background:#fdeaea}.muted,.hint{color:#777;font-size:12px}
.progression{display:flex;align-items:stretch;gap:6px;flex-wrap:wrap}.stage{border:1px solid #dde;border-radius:6px;padding:8px;min-width:170px;font-size:12px}
.stage h3{margin:0 0 4px;font-size:13px;text-transform:uppercase;color:#557}.arrow{align-self:center;font-size:20px;color:#99a}
#chart svg{background:#fbfcfe;border:1px solid #e3e6ee;border-radius:6px}#tooltip{position:fixed;background:#1d232a;color:#fff;padding:4px 8px;border-radius:4px;font-size:12px;pointer-events:none}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin:0 3px 0 10px}.dot.frontier{background:#d1495b}.dot.pass{background:#2a9d4b}.dot.other{background:#7b8794}
"""

_SCRIPT = r"""
(function () {
  const errors = [];
  window.addEventListener('error', e => { errors.push(String(e.message)); document.body.dataset.errors = errors.join(' | '); });
  const data = JSON.parse(document.getElementById('edgeopt-data').textContent);
  const chart = document.getElementById('chart'), tip = document.getElementById('tooltip');
  const NS = 'http://www.w3.org/2000/svg', W = 760, H = 380, M = {l: 64, r: 16, t: 14, b: 44};
  const labels = {latency: 'host median latency (ms)', rss: 'peak RSS (MB)', size: 'size on disk (MB)',
                  target_latency: 'target latency (ms)'};
  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function range(values) {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (lo === hi) { lo -= Math.abs(lo) * 0.05 || 1; hi += Math.abs(hi) * 0.05 || 1; }
    const pad = (hi - lo) * 0.08; return [lo - pad, hi + pad];
  }
  function frontier2d(points, xKey) {
    const better = (a, b) => data.higher_is_better ? a > b : a < b;
    const sorted = points.slice().sort((a, b) => a[xKey] - b[xKey] || (better(a.accuracy, b.accuracy) ? -1 : 1));
    const out = []; let best = null;
    for (const p of sorted) if (best === null || better(p.accuracy, best)) { out.push(p); best = p.accuracy; }
    return out;
  }
  function draw(xKey) {
    chart.textContent = '';
    const yKey = xKey === 'target_latency' ? 'target_accuracy' : 'accuracy';
    const pts = data.points.filter(p => p[xKey] != null && p[yKey] != null).map(p => Object.assign({}, p, {accuracy: p[yKey]}));
    const svg = el('svg', {width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: 'pareto'}, chart);
    if (!pts.length) { el('text', {x: 20, y: 30}, svg).textContent = 'no measured candidate to plot'; chart.dataset.rendered = '0'; return; }
    const bars = xKey === 'latency' ? ['lat_lo', 'lat_hi'] : xKey === 'target_latency' ? ['target_lo', 'target_hi'] : null;
    const xs = pts.map(p => p[xKey]).concat(bars ? pts.filter(p => p[bars[0]] != null).flatMap(p => [p[bars[0]], p[bars[1]]]) : []);
    const [x0, x1] = range(xs), [y0, y1] = range(pts.map(p => p.accuracy));
    const sx = v => M.l + (v - x0) / (x1 - x0) * (W - M.l - M.r), sy = v => H - M.b - (v - y0) / (y1 - y0) * (H - M.t - M.b);
    for (let i = 0; i <= 4; i++) {
      const xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
      el('line', {x1: sx(xv), x2: sx(xv), y1: M.t, y2: H - M.b, stroke: '#e6e9f0'}, svg);
      el('line', {x1: M.l, x2: W - M.r, y1: sy(yv), y2: sy(yv), stroke: '#e6e9f0'}, svg);
      el('text', {x: sx(xv), y: H - M.b + 16, 'text-anchor': 'middle', 'font-size': 11}, svg).textContent = xv.toPrecision(3);
      el('text', {x: M.l - 6, y: sy(yv) + 4, 'text-anchor': 'end', 'font-size': 11}, svg).textContent = yv.toPrecision(4);
    }
    el('text', {x: (W + M.l) / 2, y: H - 8, 'text-anchor': 'middle', 'font-size': 12}, svg).textContent = labels[xKey];
    el('text', {x: 14, y: H / 2, transform: `rotate(-90 14 ${H / 2})`, 'text-anchor': 'middle', 'font-size': 12}, svg).textContent =
      data.metric + (data.higher_is_better ? ' (higher is better)' : ' (lower is better)');
    const front = frontier2d(pts, xKey);
    el('polyline', {points: front.map(p => `${sx(p[xKey])},${sy(p.accuracy)}`).join(' '), fill: 'none', stroke: '#d1495b',
                    'stroke-width': 1.5, 'stroke-dasharray': '4 3', class: 'frontier-line'}, svg);
    const lo = xKey === 'latency' ? 'lat_lo' : 'target_lo', hi = xKey === 'latency' ? 'lat_hi' : 'target_hi';
    if (xKey === 'latency' || xKey === 'target_latency') for (const p of pts) if (p[lo] != null && p[hi] > p[lo])
      el('line', {x1: sx(p[lo]), x2: sx(p[hi]), y1: sy(p.accuracy), y2: sy(p.accuracy), stroke: '#9aa5b1',
                  'stroke-width': 2, class: 'error-bar'}, svg);
    for (const p of pts) {
      const color = p.frontier ? '#d1495b' : (p.passed ? '#2a9d4b' : '#7b8794');
      const c = el('circle', {cx: sx(p[xKey]), cy: sy(p.accuracy), r: p.id === data.selected ? 8 : 5.5, fill: color,
                              stroke: p.id === 'baseline' ? '#1d232a' : '#fff', 'stroke-width': 1.5, class: 'point', 'data-id': p.id}, svg);
      el('title', {}, c).textContent = p.id;
      const target = p.target_latency != null ? ` · target ${p.target_latency.toFixed(3)} ms` : '';
      const text = `${p.id} · ${p.framework} ${p.precision} · p50 ${p.latency.toFixed(3)} ms${target} · RSS ${p.rss.toFixed(0)} MB · ` +
                   `${p.size.toFixed(1)} MB · ${data.metric} ${p.accuracy.toFixed(4)} · ${p.provenance}`;
      c.addEventListener('mousemove', e => { tip.hidden = false; tip.textContent = text; tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px'; });
      c.addEventListener('mouseleave', () => { tip.hidden = true; });
      c.addEventListener('click', () => {
        document.querySelectorAll('tr.highlight').forEach(r => r.classList.remove('highlight'));
        const row = document.getElementById('row-' + p.id);
        if (row) { row.classList.add('highlight'); row.scrollIntoView({block: 'center'}); }
      });
      if (p.frontier || p.id === data.selected || p.id === 'baseline')
        el('text', {x: sx(p[xKey]) + 8, y: sy(p.accuracy) - 8, 'font-size': 11, fill: '#333'}, svg).textContent = p.id;
    }
    chart.dataset.rendered = String(pts.length);
  }
  const select = document.getElementById('x-axis');
  select.addEventListener('change', () => draw(select.value));
  draw(select.value);
})();
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{style}</style></head>
<body>
{body}
<script type="application/json" id="edgeopt-data">{data}</script>
<script>{script}</script>
</body></html>
"""
