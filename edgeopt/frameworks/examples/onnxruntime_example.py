"""Run this package's model with ONNX Runtime alone (no edgeopt needed on the device).

    pip install onnxruntime numpy        # the version range is in edgeopt-artifact.json
    python run_example.py                # one run on placeholder inputs, then a short timing
    python run_example.py --input x.npz  # your own inputs: one array per model input name
    python run_example.py --check        # one run only; exit status 0 when the model runs
"""

import argparse
import json
import pathlib
import statistics
import time

import numpy as np
import onnxruntime as ort

HERE = pathlib.Path(__file__).resolve().parent
SPEC = json.loads((HERE / "edgeopt-artifact.json").read_text())
DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int64": np.int64,
          "int32": np.int32, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}
LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}


def session() -> ort.InferenceSession:
    config = SPEC.get("runtime_config", {})
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                               LEVELS[config.get("graph_optimization_level", "all")])
    if config.get("intra_op_threads"):
        options.intra_op_num_threads = int(config["intra_op_threads"])
    if config.get("inter_op_threads"):
        options.inter_op_num_threads = int(config["inter_op_threads"])
    options.enable_cpu_mem_arena = bool(config.get("enable_mem_arena", True))
    options.enable_mem_pattern = bool(config.get("enable_mem_pattern", True))
    return ort.InferenceSession(str(HERE / SPEC["model"]["path"]), options, providers=["CPUExecutionProvider"])


def placeholder(spec: dict) -> np.ndarray:
    # symbolic dimensions become 1 (batch) or 8 (anything else, e.g. sequence length)
    shape = [d if isinstance(d, int) else (1 if i == 0 else 8) for i, d in enumerate(spec["shape"])]
    dtype = DTYPES.get(spec["dtype"], np.float32)
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return np.ones(shape, dtype=dtype)  # valid token ids and attention masks alike
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=pathlib.Path, help=".npz with one array per model input")
    parser.add_argument("--check", action="store_true", help="run once and exit")
    args = parser.parse_args()
    sess = session()
    if args.input:
        with np.load(args.input) as data:
            feeds = {i["name"]: data[i["name"]].astype(DTYPES.get(i["dtype"], np.float32)) for i in SPEC["io"]["inputs"]}
    else:
        feeds = {i["name"]: placeholder(i) for i in SPEC["io"]["inputs"]}
    outputs = sess.run(None, feeds)
    for meta, value in zip(sess.get_outputs(), outputs):
        print(f"{meta.name}: shape {list(value.shape)}, dtype {value.dtype}")
    if args.check:
        return 0
    times = []
    for _ in range(20):
        started = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - started) * 1000)
    print(f"median latency over 20 runs: {statistics.median(times):.3f} ms (onnxruntime {ort.__version__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
