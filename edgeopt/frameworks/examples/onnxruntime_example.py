"""Run this package's model with ONNX Runtime alone (no edgeopt needed on the device).

    pip install onnxruntime numpy        # the version range is in edgeopt-artifact.json
    python run_example.py                # one run (the packaged sample, else placeholders), then a short timing
    python run_example.py --input x.npz  # your own inputs: one array per model input name
    python run_example.py --text "..."   # text models: tokenized with the packaged tokenizer (pip install tokenizers)
    python run_example.py --image a.jpg  # image models: preprocessed as edgeopt measured it (pip install pillow)
    python run_example.py --check        # one run only (the packaged sample when there is one); exit 0 when it runs
"""

import argparse
import json
import pathlib
import statistics
import time

import numpy as np
import onnxruntime as ort
import preprocess  # beside this file: real inputs (text, images, the packaged sample) → model inputs

HERE = pathlib.Path(__file__).resolve().parent
SPEC = json.loads((HERE / "edgeopt-artifact.json").read_text())
DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int64": np.int64,
          "int32": np.int32, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}
LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}


def session(model: str = SPEC["model"]["path"]) -> ort.InferenceSession:
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
    return ort.InferenceSession(str(HERE / model), options, providers=["CPUExecutionProvider"])


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
    parser.add_argument("--text", help="a text, tokenized with the packaged tokenizer")
    parser.add_argument("--image", type=pathlib.Path, help="an image file, preprocessed as packaged")
    parser.add_argument("--check", action="store_true", help="run once and exit")
    args = parser.parse_args()
    sess = session()
    placeholders = {i["name"]: placeholder(i) for i in SPEC["io"]["inputs"]}
    feeds, what = preprocess.model_inputs(placeholders, args.input, args.text, args.image)
    print(f"input: {what}")
    outputs = sess.run(None, feeds)
    for meta, value in zip(sess.get_outputs(), outputs):
        top = preprocess.describe_output(value)
        print(f"{meta.name}: shape {list(value.shape)}, dtype {value.dtype}" + (f"; top: {top}" if top else ""))
    mobile = SPEC.get("mobile")
    if mobile:  # the .ort form a phone app loads: same inputs, same answers
        again = session(mobile["model"]).run(None, feeds)
        drift = max(float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0 for a, b in zip(again, outputs))
        print(f"mobile form {mobile['model']}: runs; max |difference| from {SPEC['model']['path']}: {drift:.3g}")
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
