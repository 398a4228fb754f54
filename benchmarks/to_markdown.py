"""Markdown tables from a results JSON written by run_examples.py (for notes and reviews).

Usage: python benchmarks/to_markdown.py benchmarks/results/examples.json
"""

from __future__ import annotations

import json
import sys


def _f(value, digits=2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def target_table(name: str, result: dict, target: str) -> str:
    """For a build whose target is not this host: the target's figures first, each marked by provenance."""
    mark = {"estimated": "~", "simulated": "≈", "measured-device": "", "measured-host": "h"}
    title = (f"#### {name} → {target} (target columns: ~ estimated, ≈ simulated, ! outputs differ "
             "from the host's; host columns measured here)")
    header = ("| candidate | precision | target ms [band] | target × | target score | host p50 ms | host × [95% CI] | "
              "host score | gates (figure read) |")
    lines = [title, "", header, "|---|---|---|---|---|---|---|---|---|"]
    base = result["baseline"]
    t = base.get("target") or {}
    lines.append(f"| baseline | {base['precision']} | {mark.get(t.get('latency_provenance'), '')}{_f(t.get('latency_ms'))} | "
                 f"1.00 | {mark.get(t.get('score_provenance'), '')}{_f(t.get('score'), 4)} | {_f(base['p50_ms'], 3)} | 1.00 | "
                 f"{_f(base['score'], 4)} | |")
    for c in result["candidates"]:
        if c["status"] != "ok":
            lines.append(f"| {c['id']} | – | {c['status']}: {(c['error'] or '')[:50]} | | | | | | |")
            continue
        t = c.get("target") or {}
        band = t.get("latency_band")
        band = f" [{band[0]:.1f}–{band[1]:.1f}]" if band else ""
        ci = c.get("speedup_ci")
        gates = ", ".join(f"{k} {v}{mark.get(c['gate_sources'].get(k), '')}" for k, v in c.get("verdicts", {}).items())
        lines.append(f"| {c['id']} | {c['precision']} | {mark.get(t.get('latency_provenance'), '')}{_f(t.get('latency_ms'))}{band} | "
                     f"{_f(t.get('speedup'))} | {mark.get(t.get('score_provenance'), '')}{_f(t.get('score'), 4)}"
                     f"{'!' if t.get('outputs_differ') else ''} | {_f(c['p50_ms'], 3)} | {_f(c['speedup'])}"
                     f"{f' [{ci[0]:.2f}–{ci[1]:.2f}]' if ci else ''} | {_f(c['score'], 4)} | {gates} |")
    return "\n".join(lines)


def table(name: str, result: dict) -> str:
    base = result["baseline"]
    llm = base.get("llm") is not None
    title = (f"#### {name} ({result['metric']}; figures {result['provenance']}; build {result['build_seconds']} s, "
             f"rebuild {result['rebuild_seconds']} s = {result['rebuild_speedup']}x)")
    lines = [title, ""]
    if llm:
        lines += ["| candidate | framework | precision | perplexity | gen tok/s | TTFT ms | speedup | peak RSS MB | size MB | gates |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        b = base["llm"]
        lines.append(f"| baseline | {base['framework']} | {base['precision']} | {_f(base['score'])} | "
                     f"{_f(b['generation_tokens_per_s'], 1)} | {_f(b['ttft_ms'], 1)} | 1.00 | {_f(base['peak_rss_mb'], 0)} | "
                     f"{_f(base['size_mb'], 1)} | |")
    else:
        lines += ["| candidate | framework | precision | p50 ms | speedup | peak RSS MB | size MB | score | retained | gates |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines.append(f"| baseline | {base['framework']} | {base['precision']} | {_f(base['p50_ms'], 3)} | 1.00 | "
                     f"{_f(base['peak_rss_mb'], 0)} | {_f(base['size_mb'], 1)} | {_f(base['score'], 4)} | 1 | |")
    for c in result["candidates"]:
        if c["status"] != "ok":
            lines.append(f"| {c['id']} | {c['framework']} | – | {c['status']}: {(c['error'] or '')[:60]} | | | | | | |")
            continue
        verdict = "pass" if c["passed_all_gates"] else "fail"
        if llm:
            m = c["llm"] or {}
            lines.append(f"| {c['id']} | {c['framework']} | {c['precision']} | {_f(c['score'])} | "
                         f"{_f(m.get('generation_tokens_per_s'), 1)} | {_f(m.get('ttft_ms'), 1)} | {_f(c['speedup'])} | "
                         f"{_f(c['peak_rss_mb'], 0)} | {_f(c['size_mb'], 1)} | {verdict} |")
        else:
            lines.append(f"| {c['id']} | {c['framework']} | {c['precision']} | {_f(c['p50_ms'], 3)} | {_f(c['speedup'])} | "
                         f"{_f(c['peak_rss_mb'], 0)} | {_f(c['size_mb'], 1)} | {_f(c['score'], 4)} | "
                         f"{_f(c['accuracy_retained'], 3)} | {verdict} |")
    return "\n".join(lines)


def main(paths: list[str]) -> None:
    for path in paths:
        with open(path) as f:
            results = json.loads(f.read())
        print(f"### {path} — target {results.get('target')}, {results['machine']['cpu']}\n")
        for name, result in results["examples"].items():
            has_target = (result["baseline"].get("target") is not None
                          or any(c.get("target") for c in result["candidates"]))
            print(target_table(name, result, results.get("target") or "") if has_target else table(name, result), "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
