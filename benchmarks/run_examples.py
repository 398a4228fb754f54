"""Build the MiniLM and Fashion-MNIST examples and write the measured ratios per candidate to JSON.

Usage: python benchmarks/run_examples.py [--out benchmarks/results/examples.json] [--examples minilm fashion-mnist]
Every figure comes from the builds' report.json (measured in a child process per candidate); the
gates decide nothing here: this is the record of what each candidate achieved on this machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, work: Path) -> dict:
    example = ROOT / "examples" / name
    if name == "fashion-mnist" and not (example / "model" / "fashion_cnn.onnx").exists():
        subprocess.run([sys.executable, "train.py"], cwd=example, check=True)
    out = work / name
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "edgeopt", "build", str(example / "manifest.yaml"),
                                "--out", str(out), "--quiet"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        raise SystemExit(f"{name}: build failed ({completed.returncode}): {completed.stderr}")
    report = json.loads((out / "report.json").read_text())
    baseline = report["baseline"]["metrics"]
    return {
        "build_seconds": round(seconds, 1),
        "exit_status": completed.returncode,
        "provenance": report["provenance"]["label"],
        "metric": report["plan"]["metric"],
        "baseline": {"p50_ms": baseline["latency_ms"]["p50"], "peak_rss_mb": baseline["peak_rss_mb"],
                     "size_mb": baseline["size_mb"], "score": baseline["accuracy"]["score"]},
        "selected": report["selected"],
        "candidates": [
            {
                "id": c["id"], "precision": c["precision"], "status": c["status"], "error": c["error"],
                "p50_ms": (c["metrics"] or {}).get("latency_ms", {}).get("p50") if c["metrics"] else None,
                "speedup": c["ratios"].get("speedup"),
                "peak_rss_cut": c["ratios"].get("peak_rss_cut"),
                "size_cut": c["ratios"].get("size_cut"),
                "accuracy_retained": c["ratios"].get("accuracy_retained"),
                "passed_all_gates": bool(c["gates"]) and all(g["passed"] for g in c["gates"].values()),
            }
            for c in report["candidates"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "examples.json")
    parser.add_argument("--examples", nargs="+", default=["minilm", "fashion-mnist"])
    args = parser.parse_args()
    work = args.out.parent / "builds"
    results = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu": _cpu_model()},
        "examples": {name: run_example(name, work) for name in args.examples},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    for name, result in results["examples"].items():
        print(f"{name}: baseline p50 {result['baseline']['p50_ms']:.3f} ms, selected: {result['selected']}")
        for c in result["candidates"]:
            if c["status"] == "ok":
                print(f"  {c['id']:20} speedup {c['speedup']:.2f}  rss cut {c['peak_rss_cut']:+.2f}  "
                      f"size cut {c['size_cut']:+.2f}  accuracy retained {c['accuracy_retained']:.4f}")
    print(f"written: {args.out}")


def _cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    main()
