"""Markdown tables from a results JSON written by run_examples.py (for notes and reviews).

Usage: python benchmarks/to_markdown.py benchmarks/results/examples.json
"""

from __future__ import annotations

import json
import sys


def _f(value, digits=2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(name: str, result: dict) -> str:
    base = result["baseline"]
    llm = base.get("llm") is not None
    lines = [f"#### {name} ({result['metric']}; figures {result['provenance']}; build {result['build_seconds']} s, "
             f"rebuild {result['rebuild_seconds']} s = {result['rebuild_speedup']}x)", ""]
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
        results = json.loads(open(path).read())
        print(f"### {path} — target {results.get('target')}, {results['machine']['cpu']}\n")
        for name, result in results["examples"].items():
            print(table(name, result), "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
