"""Instruction counts of published architectures on the catalog's cores, for the instruction-count
estimator's calibration and for checking what it says about int8 and fp16 on an A55.

Usage: python benchmarks/calibrate_counts.py [--out targets/calibration/counts.yaml] [--jobs 2]

Builds the architectures with random weights (benchmarks/calibration_models.py: YOLOv8n, MobileNetV2/V3,
ResNet-18 — random weights do the same work as trained ones), runs each variant with ONNX Runtime's
aarch64 build under qemu-user as the core (the `emulate` operation, with the a64count plugin), and writes
per (model, variant, core): instructions per steady-state inference, the instruction classes, llvm-mca's
cycles and IPC on the core's scheduling model, and the uncalibrated single-thread and target-thread
estimates. `edgeopt targets --calibration` then fits the estimator's scale on the published ONNX Runtime
points whose model and board are here, leave-one-out. Needs `edgeopt env create aarch64`; takes ~30 min
on two cores (emulation is ~100-300x slower than native). Every figure is counted here, none is measured
on a board.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# (model, variant, target): the published ONNX Runtime points' models on their boards' cores, and the
# A55 (RK3566) variants the thesis measured (YOLOv8n, MobileNetV3 in fp32, int8 and fp16)
RUNS = [
    ("yolov8n", "fp32", "rpi5"), ("yolov8n", "fp32", "rpi4"), ("yolov8n", "fp32", "rk3566"),
    ("yolov8n", "int8-static", "rk3566"), ("yolov8n", "fp16", "rk3566"),
    ("mobilenet_v3_large", "fp32", "rk3566"), ("mobilenet_v3_large", "int8-static", "rk3566"),
    ("mobilenet_v3_large", "int8-dynamic", "rk3566"), ("mobilenet_v3_large", "fp16", "rk3566"),
    ("mobilenet_v3_large", "fp32", "rpi4"), ("mobilenet_v2", "fp32", "rpi4"), ("resnet18", "fp32", "rk3566"),
]


def count(env, catalog, cores, model_path: Path, variant: str, target_id: str, work: Path) -> dict:
    from edgeopt.artifact import ModelArtifact
    from edgeopt.builder.target import cpu_model
    from edgeopt.estimate.cores import core_for
    from edgeopt.estimate.counts import plugin_arguments, read_counts
    from edgeopt.estimate.cpu import estimate
    from edgeopt.estimate.marks import FIRST_MARK
    from edgeopt.protocol import EmulateRequest, EmulateResult
    from edgeopt.runners import Job, Limits
    from edgeopt.runners.child import run_child

    target = catalog.resolve(target_id)
    core = core_for(target, cores)
    work.mkdir(parents=True, exist_ok=True)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    inputs = {i.name: np.random.default_rng(0).normal(size=[d if isinstance(d, int) else 1 for d in i.shape])
              .astype(np.float32) for i in session.get_inputs()}
    np.savez(work / "data.npz", **inputs, __labels__=np.zeros(1, dtype=np.int64))
    request = EmulateRequest(adapter="edgeopt.frameworks.onnxruntime", eval_data=str(work / "data.npz"),
                             timing_data=str(work / "data.npz"),
                             artifact=ModelArtifact(path=str(model_path), framework="onnxruntime"),
                             save_outputs=str(work / "outputs.npy"), counted_runs=2)
    log = work / "plugin.log"
    job = Job(request, str(work), Limits(timeout_s=7200, stall_s=600),
              environment=(("EDGEOPT_QEMU_ARGS", plugin_arguments(env.plugin(), log, FIRST_MARK)),))
    started = time.perf_counter()
    outcome = run_child(job, {"PATH": os.environ["PATH"]}, python=env.python(core))
    if not outcome.ok:
        raise SystemExit(f"{model_path.name} on {core.uarch}: {outcome.detail or outcome.error}")
    result = EmulateResult.model_validate(outcome.result)
    counts = read_counts(log, result.first_mark)
    model = cpu_model(target, core, None)
    weights = sum(p.stat().st_size for p in [model_path])
    single = estimate(counts, model, weights, 1, ROOT / ".mca-cache" / f"{core.llvm_mca_cpu}.json")
    threads = estimate(counts, model, weights, model.cores, ROOT / ".mca-cache" / f"{core.llvm_mca_cpu}.json")
    return {"instructions": counts.instructions, "classes": counts.classes, "first_inference": counts.first_inference,
            "ipc": round(single.ipc, 3), "coverage": round(single.coverage, 3), "compute_ms_1thread": single.compute_ms,
            "memory_ms": single.memory_ms, "estimate_ms_1thread": single.latency_ms,
            "estimate_ms_all_cores": threads.latency_ms, "cores": model.cores, "ghz": model.ghz,
            "weights_mb": weights / 1e6, "emulated_seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "targets" / "calibration" / "counts.yaml")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="model names to run (default: all)")
    args = parser.parse_args()
    from calibration_models import build_onnx, variants

    from edgeopt.catalog import load_catalog
    from edgeopt.envs import environment
    from edgeopt.estimate.cores import load_cores

    env = environment("aarch64", os.environ)
    env.require()
    catalog, cores = load_catalog(), load_cores()
    runs = [r for r in RUNS if not args.only or r[0] in args.only]
    with tempfile.TemporaryDirectory(prefix="edgeopt-calibrate-") as scratch:
        scratch = Path(scratch)
        paths = {}
        for name in sorted({r[0] for r in runs}):
            fp32 = build_onnx(name, scratch / "models", seed=0)
            paths[name] = variants(fp32, scratch / "models")

        def one(run):
            name, variant, target = run
            print(f"counting {name} {variant} on {target} …", flush=True)
            figures = count(env, catalog, cores, Path(paths[name][variant]), variant, target,
                            scratch / f"{name}-{variant}-{target}")
            print(f"  {name} {variant} {target}: {figures['instructions'] / 1e6:.0f}M instructions, "
                  f"{figures['estimate_ms_all_cores']:.1f} ms estimated ({figures['emulated_seconds']} s)", flush=True)
            return {"model": name, "variant": variant, "target": target, **figures}

        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(one, runs))
    header = ("# Instruction counts of published architectures (random weights), ONNX Runtime's aarch64 build under\n"
              "# qemu-user as each target's core; written by benchmarks/calibrate_counts.py on "
              f"{platform.node() or 'this machine'} ({time.strftime('%Y-%m-%d')}).\n"
              "# Counted, not measured on a board: estimate_ms_* are the uncalibrated instruction-count estimates.\n")
    import onnxruntime

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + yaml.safe_dump({"onnxruntime": onnxruntime.__version__, "runs": rows},
                                                sort_keys=False, width=120))
    print(f"written: {args.out}")
    print(json.dumps({(r['model'] + ' ' + r['variant'] + ' ' + r['target']): round(r['estimate_ms_all_cores'], 2)
                      for r in rows}, indent=1))


if __name__ == "__main__":
    main()
