"""edgeopt's candidates for an ONNX model against what a user would otherwise run, measured side by side in one
process with edgeopt's own evaluation and timing code (examples/fashion-mnist: top-1; examples/ocr: CER).

The peers are built once from the build's source model, calibrated on the very samples edgeopt calibrated on
(BUILD/data/calibration.npz), each the one call its tool's documentation shows (this script installs nothing):

  ort-dynamic     onnxruntime.quantization.quantize_dynamic(src, out)                     defaults (QOperator, per tensor)
  ort-static      onnxruntime.quantization.quantize_static(src, out, reader)              defaults (QDQ, MinMax, per tensor)
  ort-static-pc   quantize_static(src, out, reader, per_channel=True)
  ov-fp32         openvino.convert_model(src)
  nncf-int8       nncf.quantize(openvino.convert_model(src), nncf.Dataset(calibration))  defaults (performance preset)

Usage:
  edgeopt build examples/fashion-mnist/manifest.yaml --out BUILD
  python benchmarks/peers_graph.py build-peers --build BUILD --peers DIR
  python benchmarks/peers_graph.py compare --manifest examples/fashion-mnist/manifest.yaml --build BUILD --peers DIR
                                                                   # -> benchmarks/results/peers-fashion-mnist.json

`compare` scores every variant on the build's evaluation data with edgeopt's accuracy operation (the metric and
decode hook of the manifest), then times the build's baseline, every peer and every measured ONNX Runtime / OpenVINO
candidate of the build in interleaved rounds with edgeopt's timing windows on the build's timed batch: each round
times every variant once, in an order rotated each round, and a speedup is the median of in-round ratios to the
baseline. Peak RSS: a fresh process per variant that loads it and runs the evaluation. The CPU is recorded. The
goal compares edgeopt's best with the best peer per round, with a 95% interval and a verdict on the 1.2x bar
(benchmarks/lead.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.lead import head_to_head  # noqa: E402

ADAPTERS = {"onnxruntime": "edgeopt.frameworks.onnxruntime", "openvino": "edgeopt.frameworks.openvino"}
RETAINED_FLOOR = 0.99  # accuracy kept, as the metric reads it, at which variants are compared for speed


def _report(build: Path) -> dict:
    return json.loads((build / "report.json").read_text())


def _calibration(build: Path) -> list[dict[str, np.ndarray]]:
    from edgeopt.datafiles import load_arrays

    inputs, _ = load_arrays(build / "data" / "calibration.npz")
    count = len(next(iter(inputs.values())))
    return [{name: array[i:i + 1] for name, array in inputs.items()} for i in range(count)]


# -- the peers, built once with their own tools --------------------------------------------------------------
def build_peers(build: Path, peers: Path) -> dict:
    source = Path(_report(build)["baseline"]["model_path"])
    samples = _calibration(build)
    peers.mkdir(parents=True, exist_ok=True)
    built = {}
    for name, make in (("ort-dynamic", _ort_dynamic), ("ort-static", _ort_static), ("ort-static-pc", _ort_static_pc),
                       ("ov-fp32", _ov_fp32), ("nncf-int8", _nncf_int8)):
        out = peers / name
        if out.exists():
            built[name] = "already built"
            continue
        out.mkdir()
        try:
            make(source, out, samples)
            built[name] = "built"
        except Exception as exc:  # noqa: BLE001 - a peer its tool cannot make is recorded, the others go on
            built[name] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return built


class _Reader:
    """onnxruntime's CalibrationDataReader over the build's calibration samples."""

    def __init__(self, samples):
        self._samples = iter(samples)

    def get_next(self):
        return next(self._samples, None)


def _ort_dynamic(source: Path, out: Path, samples) -> None:
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(str(source), str(out / "model.onnx"))


def _ort_static(source: Path, out: Path, samples, per_channel: bool = False) -> None:
    from onnxruntime.quantization import quantize_static

    quantize_static(str(source), str(out / "model.onnx"), _Reader(samples), per_channel=per_channel)


def _ort_static_pc(source: Path, out: Path, samples) -> None:
    _ort_static(source, out, samples, per_channel=True)


def _ov_fp32(source: Path, out: Path, samples) -> None:
    import openvino as ov

    ov.save_model(ov.convert_model(str(source)), str(out / "model.xml"))


def _nncf_int8(source: Path, out: Path, samples) -> None:
    import nncf
    import openvino as ov

    quantized = nncf.quantize(ov.convert_model(str(source)), nncf.Dataset(samples), subset_size=len(samples))
    ov.save_model(quantized, str(out / "model.xml"))


# -- the variants --------------------------------------------------------------------------------------------
def variants(build: Path, peers: Path) -> dict[str, dict]:
    """name → {origin, artifact (edgeopt's ModelArtifact as JSON)}: the build's baseline first."""
    from benchmarks.peers import variants as found_in

    baseline = _report(build)["baseline"]
    found = {"baseline": {"origin": "baseline", "artifact": {
        "path": baseline["model_path"], "framework": baseline["framework"], "format": "onnx", "files": [],
        "runtime_config": baseline["runtime_config"]}}}
    found.update(found_in(peers, build))
    return found


def _model(artifact: dict):
    from edgeopt.artifact import ModelArtifact

    return ModelArtifact(**artifact)


def accuracy(manifest_path: Path, build: Path, artifact: dict) -> dict:
    """edgeopt's accuracy operation on the build's evaluation data: the manifest's metric, batch and hooks."""
    from edgeopt.manifest import load_manifest
    from edgeopt.operations import evaluate_accuracy
    from edgeopt.protocol import AccuracyRequest, MetricRequest

    manifest = load_manifest(manifest_path)
    request = AccuracyRequest(
        adapter=ADAPTERS[artifact["framework"]], artifact=_model(artifact), eval_data=str(build / "data" / "eval.npz"),
        eval_batch_size=manifest.evaluation.batch_size, metric=MetricRequest(**manifest.evaluation.metric.model_dump()),
        import_paths=(manifest.base_dir,))
    result = evaluate_accuracy(request)
    return {"score": result.accuracy["score"], "peak_rss_mb": result.peak_rss_with_eval_mb}


def peak_rss(manifest: Path, build: Path, artifact: dict) -> float:
    """A fresh process that loads the variant and runs the evaluation: its peak RSS in MB."""
    done = subprocess.run([sys.executable, __file__, "rss", "--manifest", str(manifest), "--build", str(build),
                           "--artifact", json.dumps(artifact)],
                          capture_output=True, text=True, env={**os.environ, "CI": "1"})
    return float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else float("nan")


def compare(manifest: Path, build: Path, peers: Path, rounds: int) -> dict:
    from edgeopt.measure.metrics import metric
    from edgeopt.operations import TimingSession
    from edgeopt.protocol import TimingRequest, WindowRequest

    report = _report(build)
    found = variants(build, peers)
    scores, failed = {}, {}
    for name, variant in found.items():
        try:
            scores[name] = accuracy(manifest, build, variant["artifact"])["score"]
        except Exception as exc:  # noqa: BLE001 - a variant the runtime cannot run is recorded, not timed
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    if "baseline" not in scores:
        raise SystemExit(f"the build's baseline does not run: {failed.get('baseline')}")
    timed = [name for name in found if name in scores]
    sessions = {name: TimingSession(TimingRequest(adapter=ADAPTERS[found[name]["artifact"]["framework"]],
                                                  artifact=_model(found[name]["artifact"]),
                                                  timing_data=str(build / "data" / "timing.npz"), batch_size=1))
                for name in timed}
    window = WindowRequest(warmup_runs=5, min_runs=20, max_runs=200, time_budget_s=0.4)
    times = {name: [] for name in timed}
    for name in timed:  # warm every variant before the first round
        sessions[name].window(window)
    for round_index in range(rounds):
        shift = round_index % len(timed)
        for name in timed[shift:] + timed[:shift]:  # no variant always first
            time.sleep(0.2)  # ONNX Runtime's pool threads spin after a run: let the previous variant's go idle
            times[name].append(float(np.median(sessions[name].window(window).samples_ms)))
    measure = metric(report["plan"]["metric"])
    results = {}
    for name in timed:
        ratios = np.asarray(times["baseline"]) / np.asarray(times[name])
        artifact = found[name]["artifact"]
        results[name] = {
            "origin": found[name]["origin"], "path": artifact["path"], "runtime_config": artifact.get("runtime_config", {}),
            "score": round(float(scores[name]), 4), "retained": round(measure.retained(scores[name], scores["baseline"]), 4),
            "ms": round(float(np.median(times[name])), 4), "speedup": round(float(np.median(ratios)), 3),
            "speedup_iqr": [round(float(q), 3) for q in np.percentile(ratios, [25, 75])],
            "size_mb": round(sum(p.stat().st_size for p in _model(artifact).all_paths()) / 1e6, 2),
            "peak_rss_mb": round(peak_rss(manifest, build, artifact), 1)}
    return {"model": report["manifest"], "manifest": str(manifest), "metric": measure.name, "higher_is_better": measure.higher_is_better,
            "variants": results, "failed": failed, "goal": _goal(results, times), "rounds": rounds,
            "timed": f"the build's timed batch (batch 1), {window.min_runs}-{window.max_runs} runs per window, the "
                     "window's median; speedup = median over rounds of baseline / variant in the same round"}


def _goal(results: dict, times: dict) -> dict:
    """edgeopt's fastest against the fastest peer, each among those that keep ≥ RETAINED_FLOOR of the accuracy,
    read from the rounds they were timed in (`times`: ms per round)."""
    best = head_to_head(results, eligible=lambda figures: figures["retained"] >= RETAINED_FLOOR,
                        speedup=lambda figures: figures["speedup"], rounds_of=times.__getitem__)
    for origin in ("peer", "edgeopt"):
        if origin in best:
            best[origin]["retained"] = results[best[origin]["name"]]["retained"]
    best["accuracy_floor"] = RETAINED_FLOOR
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("build-peers", "compare"):
        command = sub.add_parser(name)
        command.add_argument("--build", type=Path, required=True, help="an edgeopt build folder (report.json, data/)")
        command.add_argument("--peers", type=Path, required=True)
        if name == "compare":
            command.add_argument("--manifest", type=Path, required=True, help="the manifest the build was made from")
            command.add_argument("--rounds", type=int, default=12)
            command.add_argument("--out", type=Path, help="default: benchmarks/results/peers-<manifest name>.json")
    rss = sub.add_parser("rss", help="(internal) one variant's peak RSS, in a fresh process")
    rss.add_argument("--manifest", type=Path, required=True)
    rss.add_argument("--build", type=Path, required=True)
    rss.add_argument("--artifact", required=True)
    args = parser.parse_args()
    os.environ.setdefault("CI", "1")  # OpenVINO tools: no telemetry
    if args.command == "rss":
        print(accuracy(args.manifest, args.build, json.loads(args.artifact))["peak_rss_mb"])
        return
    if args.command == "build-peers":
        print(json.dumps(build_peers(args.build, args.peers), indent=1))
        return
    from benchmarks.peers import machine

    started = time.time()
    result = {"machine": machine(), "peak_rss": "of a fresh Python process that loads the variant and runs the "
              "evaluation", **compare(args.manifest, args.build, args.peers, args.rounds)}
    result["seconds"] = round(time.time() - started, 1)
    out = args.out or ROOT / "benchmarks" / "results" / f"peers-{_report(args.build)['manifest']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"goal": result["goal"], "written": str(out)}, indent=1))


if __name__ == "__main__":
    main()
