"""Run this package's .rknn model on a Rockchip board's NPU with rknn-toolkit-lite2 (no edgeopt needed there).

    pip install 'rknn-toolkit-lite2>=2.5,<2.6' numpy   # on the board; the exact range is in edgeopt-artifact.json
    python run_example.py                # one run (the packaged sample, else placeholders), then a short timing
    python run_example.py --input x.npz  # your own inputs: one array per model input name
    python run_example.py --image a.jpg  # image models: preprocessed as edgeopt measured it (pip install pillow)
    python run_example.py --check        # on the board: one run; exit 0 when it runs

The board needs Rockchip's NPU runtime library (librknnrt.so) of the same release line in /usr/lib. On a build
host, where only rknn-toolkit2 is installed, --check loads the .rknn with the toolkit (a check of the file) and
says so: the toolkit's simulator runs only a model it has built in the same session, never a loaded .rknn.
"""

import argparse
import json
import pathlib
import statistics
import time

import numpy as np
import preprocess  # beside this file: real inputs (images, the packaged sample) → model inputs

HERE = pathlib.Path(__file__).resolve().parent
SPEC = json.loads((HERE / "edgeopt-artifact.json").read_text())


def placeholder(spec: dict) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(spec["shape"]).astype(np.float32)


def loaded_on_build_host(model: pathlib.Path) -> int:
    """No rknn-toolkit-lite2 here: the build host's toolkit loads the file (which parses it) and stops there."""
    try:
        from rknn.api import RKNN
    except ImportError:
        print("neither rknn-toolkit-lite2 (the board's runtime) nor rknn-toolkit2 is installed: "
              f"{SPEC['runtime']['install']}")
        return 2
    rknn = RKNN(verbose=False)
    try:
        status = rknn.load_rknn(str(model))
    finally:
        rknn.release()
    if status != 0:
        print(f"rknn-toolkit2 could not load {model.name} (status {status})")
        return 1
    print(f"loaded by rknn-toolkit2 on the build host ({model.name}, for {SPEC['io']['target_platform']}); "
          "running it needs the board: the toolkit's simulator runs only models it built itself")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=pathlib.Path, help=".npz with one array per model input")
    parser.add_argument("--image", type=pathlib.Path, help="an image file, preprocessed as packaged")
    parser.add_argument("--check", action="store_true", help="run once and exit")
    args = parser.parse_args()
    model = HERE / SPEC["model"]["path"]
    try:
        from rknnlite.api import RKNNLite
    except ImportError:
        if args.check:
            return loaded_on_build_host(model)
        print(f"rknn-toolkit-lite2 is not installed (it runs on the board): {SPEC['runtime']['install']}")
        return 2
    inputs = SPEC["io"]["inputs"]
    placeholders = {i["name"]: placeholder(i) for i in inputs}
    feeds, what = preprocess.model_inputs(placeholders, args.input, None, args.image)
    print(f"input: {what}")
    ordered = [np.ascontiguousarray(feeds[i["name"]], dtype=np.float32) for i in inputs]
    formats = ["nchw" if a.ndim == 4 else None for a in ordered]  # as the ONNX model took them
    rknn = RKNNLite(verbose=False)
    if rknn.load_rknn(str(model)) != 0 or rknn.init_runtime() != 0:
        print(f"rknn-toolkit-lite2 could not load {model.name} on this board (is librknnrt.so of the same release in "
              "/usr/lib?)")
        return 1
    try:
        outputs = rknn.inference(inputs=ordered, data_format=formats)
        for meta, value in zip(SPEC["io"]["outputs"], outputs):
            value = np.asarray(value)
            top = preprocess.describe_output(value)
            print(f"{meta['name']}: shape {list(value.shape)}, dtype {value.dtype}" + (f"; top: {top}" if top else ""))
        if args.check:
            return 0
        times = []
        for _ in range(20):
            started = time.perf_counter()
            rknn.inference(inputs=ordered, data_format=formats)
            times.append((time.perf_counter() - started) * 1000)
        print(f"median latency over 20 runs: {statistics.median(times):.3f} ms (NPU, rknn-toolkit-lite2)")
    finally:
        rknn.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
