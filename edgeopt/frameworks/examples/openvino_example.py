"""Run this package's model with the OpenVINO runtime alone (no edgeopt needed on the device).

    pip install openvino numpy           # the version range is in edgeopt-artifact.json
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
import openvino as ov
import preprocess  # beside this file: real inputs (text, images, the packaged sample) → model inputs

HERE = pathlib.Path(__file__).resolve().parent
SPEC = json.loads((HERE / "edgeopt-artifact.json").read_text())
HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


def compiled_model():
    runtime = SPEC.get("runtime_config", {})
    config = {"PERFORMANCE_HINT": HINTS[runtime.get("performance_hint", "latency")]}
    if runtime.get("inference_num_threads"):
        config["INFERENCE_NUM_THREADS"] = int(runtime["inference_num_threads"])
    if runtime.get("num_streams"):
        config["NUM_STREAMS"] = int(runtime["num_streams"])
    return ov.Core().compile_model(str(HERE / SPEC["model"]["path"]), "CPU", config)


def placeholder(spec: dict) -> np.ndarray:
    # dynamic dimensions ("?") become 1 (batch) or 8 (anything else, e.g. sequence length)
    shape = [d if isinstance(d, int) else (1 if i == 0 else 8) for i, d in enumerate(spec["shape"])]
    dtype = np.dtype(spec["dtype"])
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
    compiled = compiled_model()
    request = compiled.create_infer_request()
    placeholders = {i["name"]: placeholder(i) for i in SPEC["io"]["inputs"]}
    feeds, what = preprocess.model_inputs(placeholders, args.input, args.text, args.image)
    print(f"input: {what}")
    results = request.infer(feeds)
    for port in compiled.outputs:
        value = results[port]
        top = preprocess.describe_output(value)
        print(f"{port.get_any_name()}: shape {list(value.shape)}, dtype {value.dtype}" + (f"; top: {top}" if top else ""))
    if args.check:
        return 0
    times = []
    for _ in range(20):
        started = time.perf_counter()
        request.infer(feeds)
        times.append((time.perf_counter() - started) * 1000)
    print(f"median latency over 20 runs: {statistics.median(times):.3f} ms (openvino {ov.__version__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
