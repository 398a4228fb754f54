"""Do verdicts survive a noisy machine? Build each example three times against an empty cache — twice on a
quiet machine, once with a CPU hog busy on one core for the whole build — and compare.

Usage: python benchmarks/stability.py [--examples minilm fashion-mnist] [--out benchmarks/results/stability.json]

Written per run: the selected candidate, every gate verdict, every speedup with its 95% interval and the
windows timed again; then, per example, the checks the issue states as goals:
  - contradictory verdicts: a gate that passed in one run and failed in another (inconclusive is allowed)
  - the same selected candidate in the two quiet runs
  - each speedup's interval containing the other runs' medians
Every figure is what the builds' report.json says; the machine is recorded with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("quiet-1", "quiet-2", "hog")


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def prepare(example: str) -> None:
    folder = ROOT / "examples" / example
    if example == "fashion-mnist" and not (folder / "model" / "fashion_cnn.onnx").exists():
        subprocess.run([sys.executable, "train.py"], cwd=folder, check=True)


def build(example: str, work: Path, run: str) -> dict:
    out, cache = work / f"{example}-{run}", work / f"cache-{example}-{run}"
    shutil.rmtree(cache, ignore_errors=True)
    hog = None
    if run == "hog":  # one core kept busy for the whole build, as another job on a CI runner would
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    started = time.perf_counter()
    try:
        completed = subprocess.run([sys.executable, "-m", "edgeopt", "build", str(ROOT / "examples" / example / "manifest.yaml"),
                                    "--out", str(out), "--quiet"], check=False, capture_output=True, text=True,
                                   env={**os.environ, "EDGEOPT_CACHE_DIR": str(cache)})
    finally:
        if hog is not None:
            hog.kill()
    seconds = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        raise SystemExit(f"{example} {run}: build failed ({completed.returncode}): {completed.stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    shutil.rmtree(cache, ignore_errors=True)
    return {
        "seconds": round(seconds, 1), "exit_status": completed.returncode, "selected": report["selected"],
        "notes": report["notes"],
        "candidates": {c["id"]: {
            "status": c["status"], "speedup": c["ratios"].get("speedup"), "speedup_ci": c["ratios"].get("speedup_ci"),
            "rounds": (c["metrics"] or {}).get("timing", {}).get("rounds") if c["metrics"] else None,
            "windows_retimed": len((c["metrics"] or {}).get("timing", {}).get("discarded", [])) if c["metrics"] else 0,
            "verdicts": {name: g["verdict"] for name, g in c["gates"].items()},
        } for c in report["candidates"]},
    }


def compare(runs: dict[str, dict]) -> dict:
    ids = sorted(set.intersection(*(set(r["candidates"]) for r in runs.values())))
    contradictions, outside = [], []
    checked = 0
    for cid in ids:
        per_run = {name: r["candidates"][cid] for name, r in runs.items()}
        gates = set.union(*(set(c["verdicts"]) for c in per_run.values()))
        for gate in gates:
            seen = {c["verdicts"].get(gate) for c in per_run.values()} - {None, "inconclusive"}
            if seen == {"pass", "fail"}:
                contradictions.append({"candidate": cid, "gate": gate,
                                       "verdicts": {n: c["verdicts"].get(gate) for n, c in per_run.items()}})
        for name, c in per_run.items():
            if not c["speedup_ci"]:
                continue
            low, high = c["speedup_ci"]
            for other, o in per_run.items():
                if other != name and o["speedup"] is not None:
                    checked += 1
                    if not low <= o["speedup"] <= high:
                        outside.append({"candidate": cid, "interval_of": name, "interval": [low, high],
                                        "median_of": other, "median": o["speedup"]})
    return {"contradictory_verdicts": contradictions,
            "same_selected_in_quiet_runs": runs["quiet-1"]["selected"] == runs["quiet-2"]["selected"],
            "selected": {n: r["selected"] for n, r in runs.items()},
            "intervals_checked": checked, "medians_outside_other_intervals": outside,
            "share_of_medians_inside": round(1 - len(outside) / checked, 3) if checked else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", nargs="+", default=["minilm", "fashion-mnist"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stability.json")
    args = parser.parse_args()
    results = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform()},
               "examples": {}}
    with tempfile.TemporaryDirectory(prefix="edgeopt-stability-") as scratch:
        for example in args.examples:
            prepare(example)
            runs = {run: build(example, Path(scratch), run) for run in RUNS}
            results["examples"][example] = {"runs": runs, "checks": compare(runs)}
            checks = results["examples"][example]["checks"]
            print(f"{example}: selected {checks['selected']}; contradictions {len(checks['contradictory_verdicts'])}; "
                  f"medians inside other runs' intervals {checks['share_of_medians_inside']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
