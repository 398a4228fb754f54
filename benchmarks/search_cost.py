"""What the cheap-first search saves, and what it gives up: one example built cold twice, exhaustive then
cheap-first, under the same gates, and the two reports compared.

Usage: python benchmarks/search_cost.py [--example minilm] [--gates '{"speedup": 1.5, "memory_cut": 0.3}']
                                        [--out benchmarks/results/search-cost-minilm.json]

Written: per search, the whole build's wall seconds (an `edgeopt build` process against an empty cache), the
candidates measured, the steps pruned (with the reason the build gives) and those left unevaluated once it
stopped, and the selected candidate with its figures; then whether cheap-first selected a candidate that the
exhaustive build also passed, and its speedup against the exhaustive build's selection. Every figure is what
the builds' report.json says; the machine is recorded with it. With gates no candidate can pass on this
machine the cheap-first search never stops early, and what it saves is what it pruned.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers import machine  # noqa: E402
from edgeopt.candidates import CandidateRecord  # noqa: E402


def build(manifest: Path, out: Path, cache: Path, strategy: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgeopt", "build", str(manifest), "--out", str(out), "--quiet",
                           "--search", strategy, "--cache-dir", str(cache)], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    report = out / "report.json"
    if not report.exists():
        raise SystemExit(f"{strategy} build wrote no report (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, json.loads(report.read_text())


def summary(seconds: float, report: dict) -> dict:
    candidates = [CandidateRecord.model_validate(c) for c in report["candidates"]]
    selected = report.get("selected")
    chosen = next((c for c in candidates if c.id == selected), None)
    skipped = [c for c in candidates if c.status == "skipped"]
    return {
        "seconds": round(seconds, 1),
        "measured": sorted(c.id for c in candidates if c.status == "ok"),
        "pruned": {c.id: c.error for c in skipped if (c.error or "").startswith("pruned:")},
        "not_evaluated": sorted(c.id for c in skipped if (c.error or "").startswith("not evaluated")),
        "stopped": report["search"].get("stopped"),
        "passing": sorted(c.id for c in candidates if c.passed_all_gates),
        "selected": selected,
        "selected_ratios": chosen.ratios.model_dump(mode="json") if chosen else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="minilm")
    parser.add_argument("--gates", default=None, help="gate overrides as JSON (default: the manifest's)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    folder = ROOT / "examples" / args.example
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    if args.gates:
        manifest["gates"] = {**manifest.get("gates", {}), **json.loads(args.gates)}
    # beside the original: a manifest's relative paths (data hooks) are read from its own folder
    variant = folder / f".search-cost-{os.getpid()}.yaml"
    variant.write_text(yaml.safe_dump(manifest, sort_keys=False))
    work = Path(tempfile.mkdtemp(prefix="edgeopt-search-cost-"))
    try:
        runs = {}
        for strategy in ("exhaustive", "cheap-first"):
            print(f"building {args.example} cold, {strategy} ...", flush=True)
            runs[strategy] = summary(*build(variant, work / strategy, work / f"cache-{strategy}", strategy))
            print(f"  {runs[strategy]['seconds']} s, {len(runs[strategy]['measured'])} measured, "
                  f"selected {runs[strategy]['selected']}", flush=True)
    finally:
        variant.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    full, cheap = runs["exhaustive"], runs["cheap-first"]
    full_speed = (full["selected_ratios"] or {}).get("speedup")
    cheap_speed = (cheap["selected_ratios"] or {}).get("speedup")
    result = {
        "machine": machine(),
        "example": args.example, "gates": manifest.get("gates"), "searches": runs,
        "comparison": {
            "time_saved_share": round(1 - cheap["seconds"] / full["seconds"], 3),
            "cheap_first_selection_passes_in_exhaustive": (cheap["selected"] in full["passing"]
                                                           if cheap["selected"] else None),
            "speedup_of_cheap_first_selection_vs_exhaustive_selection": (
                round(cheap_speed / full_speed, 3) if cheap_speed and full_speed else None),
        },
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"search-cost-{args.example}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["comparison"], indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
