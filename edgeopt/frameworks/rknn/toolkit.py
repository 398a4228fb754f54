"""rknn-toolkit2 calls shared by the pass and the runtime: one RKNN object configured, loaded and built from a
recorded recipe. The toolkit imports only in the rknn environment (`edgeopt env create rknn`); its simulator runs
only a model it has itself built in the same object (a loaded .rknn runs on a board only), so the runtime rebuilds
from the recipe the pass wrote beside the .rknn."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from edgeopt.frameworks.base import require

INSTALL = "edgeopt env create rknn"
RECIPE = "build.json"
MODEL = "model.rknn"
SOURCE = "source.onnx"
DATASET = "dataset.txt"
MAX_OPSET = 19  # rknn-toolkit2 2.5.0: "Unsupport onnx opset 20, need <= 19!"


class ToolkitFailed(RuntimeError):
    """An rknn-toolkit2 call failed; its own messages are in the worker's log."""


def rknn_api():
    return require("rknn.api", "rknn-toolkit2 (it runs in its own environment)", INSTALL)


def toolkit_version() -> str:
    from importlib import metadata

    return metadata.version("rknn-toolkit2")


def call(rknn, name: str, **kwargs) -> None:
    """One toolkit call, checked: most return a status (0 is success), some raise with the toolkit's traceback as
    the message, whose last line is the toolkit's own reason."""
    try:
        status = getattr(rknn, name)(**kwargs)
    except (ValueError, RuntimeError, KeyError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ToolkitFailed(f"rknn-toolkit2 {name} failed: {lines[-1] if lines else type(exc).__name__}") from exc
    if status != 0:
        raise ToolkitFailed(f"rknn-toolkit2 {name} failed (status {status}; its messages are in the worker's log)")


def built(folder: Path, recipe: dict):
    """An RKNN object that has loaded `folder`'s source ONNX and built it as `recipe` says (simulator-ready):
    plain fp16 or int8, or int8 with the recipe's `hybrid` sections ([first input, last output] pairs of ONNX
    tensor names) kept in fp16, through the toolkit's two hybrid-quantization steps."""
    api = rknn_api()
    quantize, hybrid = recipe["quantize"], recipe.get("hybrid")
    with tempfile.TemporaryDirectory(prefix="edgeopt-rknn-") as scratch:
        dataset = _dataset_in(folder, Path(scratch)) if quantize else None
        rknn = _loaded(api, folder, recipe)
        cwd = os.getcwd()
        os.chdir(scratch)  # the hybrid steps write their intermediate files to the working folder
        try:
            if not hybrid:
                call(rknn, "build", do_quantization=quantize, dataset=dataset)
                return rknn
            try:
                call(rknn, "hybrid_quantization_step1", dataset=dataset, custom_hybrid=hybrid)
            finally:
                rknn.release()
            # step 2 refuses an object that has loaded a model: a fresh one reads what step 1 wrote
            rknn = api.RKNN(verbose=False)
            rknn.config(**recipe["config"])
            stem = Path(SOURCE).stem
            call(rknn, "hybrid_quantization_step2", model_input=f"{stem}.model", data_input=f"{stem}.data",
                 model_quantization_cfg=f"{stem}.quantization.cfg")
            return rknn
        finally:
            os.chdir(cwd)


def _loaded(api, folder: Path, recipe: dict):
    rknn = api.RKNN(verbose=False)
    rknn.config(**recipe["config"])
    call(rknn, "load_onnx", model=str(folder / SOURCE), inputs=recipe["inputs"], input_size_list=recipe["input_sizes"])
    return rknn


def _dataset_in(folder: Path, scratch: Path) -> str:
    """The calibration list with absolute paths (it names its arrays relative to the model's folder, so a moved
    or cached folder still builds), written to the scratch folder the toolkit works in."""
    lines = [" ".join(str(folder / name) for name in line.split())
             for line in (folder / DATASET).read_text().splitlines() if line.strip()]
    path = scratch / DATASET
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def read_recipe(model_path: str | Path) -> dict:
    return json.loads((Path(model_path).parent / RECIPE).read_text())
