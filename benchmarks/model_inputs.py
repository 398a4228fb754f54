"""Models as new users bring them: a streaming model (a recurrent state with its batch on axis 1, an int64
scalar sample rate) and a model that arrives quantized (QDQ int8). Each is built with `edgeopt build`
against an empty cache, and what every candidate did is written down.

Usage: python benchmarks/model_inputs.py [--out benchmarks/results/model-inputs.json]

Cases:
  streaming-state-data   the state given in the data (samples first), `sr` a constant (`value: 16000`)
  streaming-carried      the state fed from the model's own `stateN` output, 12-step sequences
  qdq-source             the test MLP quantized to QDQ int8 by ONNX Runtime, as the source model
Written per case: the build's exit status and wall time, the plan's skipped steps with their reasons, and
per candidate its status, error, host speedup with its 95% interval and accuracy. The machine is recorded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEASURE = {"warmup_runs": 2, "min_runs": 5, "max_runs": 30, "time_budget_s": 0.1, "rounds": 2}


def streaming(folder: Path, carried: bool) -> Path:
    from tests.integration.conftest import tiny_streaming

    tiny_streaming(folder / "vad.onnx")
    rng = np.random.default_rng(3)
    arrays = {"input": rng.normal(size=(48, 64)).astype(np.float32)}
    if not carried:
        arrays["state"] = rng.normal(size=(48, 2, 16)).astype(np.float32)
    np.savez(folder / "eval.npz", **arrays)
    inputs = [{"name": "sr", "value": 16000}] + ([{"name": "state", "from_output": "stateN"}] if carried else [])
    evaluation = {"data": {"type": "npz", "path": "eval.npz"}, "metric": {"name": "fidelity", "output": "output"},
                  "batch_size": 8, **({"sequence_length": 12} if carried else {})}
    return _manifest(folder, {"name": "vad", "model": {"path": "vad.onnx", "format": "onnx"}, "inputs": inputs,
                              "evaluation": evaluation, "calibration": {"samples": 16}})


def qdq_source(folder: Path) -> Path:
    from onnxruntime.quantization import QuantFormat, quantize_static

    from tests.integration.conftest import write_mlp_project

    write = write_mlp_project(folder)
    with np.load(folder / "calib.npz") as data:
        feeds = iter([{"x": data["x"][i:i + 1]} for i in range(32)])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    quantize_static(str(folder / "mlp.onnx"), str(folder / "mlp-qdq.onnx"), Reader(), quant_format=QuantFormat.QDQ)
    return write(model={"path": "mlp-qdq.onnx", "format": "onnx", "task": "classification"}, measure=MEASURE,
                 search={"frameworks": ["onnxruntime"]})


def _manifest(folder: Path, spec: dict) -> Path:
    spec = {**spec, "measure": MEASURE, "search": {"frameworks": ["onnxruntime"]}}
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def build(manifest: Path) -> dict:
    out, cache = manifest.parent / "out", manifest.parent / "cache"
    command = [sys.executable, "-m", "edgeopt", "build", str(manifest), "--out", str(out), "--cache-dir", str(cache),
               "--quiet"]
    plan = json.loads(subprocess.run([sys.executable, "-m", "edgeopt", "plan", str(manifest), "--json"],
                                     capture_output=True, text=True, check=True).stdout)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    result = {"exit_status": done.returncode, "build_seconds": round(time.perf_counter() - started, 2),
              "source_quantized": plan.get("source_quantized"),
              "skipped_in_plan": {s["id"]: s["reason"] for s in plan["skipped"]}}
    report_path = out / "report.json"
    if not report_path.exists():
        return {**result, "stderr": done.stderr[-2000:]}
    report = json.loads(report_path.read_text())
    result["candidates"] = [_candidate(report["baseline"]), *(_candidate(c) for c in report["candidates"])]
    return result


def _candidate(record: dict) -> dict:
    metrics, ratios = record.get("metrics") or {}, record.get("ratios") or {}
    return {"id": record["id"], "status": record["status"], "error": record.get("error"),
            "precision": record.get("precision"), "p50_ms": (metrics.get("latency_ms") or {}).get("p50"),
            "speedup": ratios.get("speedup"), "speedup_ci": ratios.get("speedup_ci"),
            "accuracy": (metrics.get("accuracy") or {}).get("score"),
            "notes": (record.get("lineage") or [{}])[-1].get("notes") if record.get("lineage") else None}


def machine() -> dict:
    from edgeopt.hostinfo import detect_host

    host = detect_host()
    return {"cpu": host.cpu_model, "cores": host.cores, "isa": list(host.isa), "ram_gb": host.ram_gb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "model-inputs.json")
    args = parser.parse_args()
    cases = {"streaming-state-data": lambda f: streaming(f, carried=False),
             "streaming-carried": lambda f: streaming(f, carried=True), "qdq-source": qdq_source}
    results = {}
    for name, make in cases.items():
        with tempfile.TemporaryDirectory(prefix=f"edgeopt-{name}-") as folder:
            results[name] = build(make(Path(folder)))
        statuses = [c["status"] for c in results[name].get("candidates", [])]
        print(f"{name}: exit {results[name]['exit_status']}, {results[name]['build_seconds']} s, "
              f"{ {s: statuses.count(s) for s in sorted(set(statuses))} }")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "cases": results}, indent=2))
    print(f"→ {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
