"""RKNN's pass: ONNX → .rknn for a Rockchip NPU (fp16, or int8 calibrated on the manifest's data with the
toolkit's normal / mmse / kl_divergence algorithm), with the toolkit's per-layer accuracy analysis of an int8 model
kept in the lineage. Runs in the rknn environment."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from edgeopt.artifact import ModelArtifact
from edgeopt.frameworks.common import fresh_dir
from edgeopt.frameworks.rknn.toolkit import (
    DATASET,
    MAX_OPSET,
    MODEL,
    RECIPE,
    SOURCE,
    built,
    call,
    toolkit_version,
)
from edgeopt.passes import Pass, PassConfig, PassContext

# the platforms rknn-toolkit2 2.5.0's config(target_platform=…) accepts for the NPUs edgeopt's targets have
Platform = Literal["rk3562", "rk3566", "rk3568", "rk3576", "rk3588"]
ANALYSED_LAYERS = 5  # the most divergent layers kept in the lineage
ANALYSIS = "error_analysis.txt"  # the toolkit's per-layer table, kept beside the model


class ConvertConfig(PassConfig):
    target_platform: Platform
    precision: Literal["fp16", "int8"]
    quantized_algorithm: Literal["normal", "mmse", "kl_divergence"] = "normal"
    quantized_method: Literal["channel", "layer"] = "channel"
    subset_size: int = Field(default=64, ge=1, description="calibration samples for int8")
    analyse: bool = Field(default=True, description="int8: the toolkit's per-layer accuracy analysis on a sample")
    float_layers: int = Field(default=0, ge=0, description="int8: keep this many of the layers the toolkit's "
                              "analysis finds most divergent in fp16 (hybrid quantization)")

    @model_validator(mode="after")
    def _hybrid_is_int8(self):
        if self.float_layers and self.precision != "int8":
            raise ValueError("float_layers keeps layers of an int8 model in fp16: it needs precision int8")
        return self


class Convert(Pass):
    name = "convert"
    Config = ConvertConfig
    needs_calibration = True
    needs_timing_data = True  # the NPU runs fixed shapes: the timed batch's, at batch 1
    lowers_precision = True
    cost = 3
    summary = "ONNX → .rknn for a Rockchip NPU (fp16, or int8 calibrated), built with rknn-toolkit2"

    @classmethod
    def calibrates(cls, config: ConvertConfig) -> bool:
        return config.precision == "int8"

    def apply(self, config: ConvertConfig, artifact: ModelArtifact | None, context: PassContext) -> ModelArtifact:
        if artifact is None or artifact.format != "onnx":
            raise ValueError(f"rknn.convert takes an ONNX model, not {artifact.format if artifact else 'nothing'}")
        folder = fresh_dir(context.output_dir)
        inputs, outputs, opset_note = _write_source(Path(artifact.path), folder / SOURCE)
        sizes = _input_sizes(context.timing_data, inputs)
        quantize = config.precision == "int8"
        files = [RECIPE, SOURCE]
        if quantize:
            files += [DATASET, *_write_dataset(context.calibration_data, inputs, folder, config.subset_size)]
        recipe = {"config": {"target_platform": config.target_platform,
                             "quantized_algorithm": config.quantized_algorithm,
                             "quantized_method": config.quantized_method},
                  "inputs": inputs, "input_sizes": sizes, "outputs": outputs, "quantize": quantize,
                  "toolkit": toolkit_version()}
        hybrid_notes = {}
        if config.float_layers:
            hybrid_notes = _hybrid(folder, recipe, config.float_layers)
        (folder / RECIPE).write_text(json.dumps(recipe, indent=2))
        rknn = built(folder, recipe)
        try:
            call(rknn, "export_rknn", export_path=str(folder / MODEL))
            analysis = _analyse(rknn, folder) if quantize and (config.analyse or config.float_layers) else None
        finally:
            rknn.release()
        if analysis is not None:
            files.append(ANALYSIS)
        notes = {"toolkit": f"rknn-toolkit2 {recipe['toolkit']}", "input_sizes": dict(zip(inputs, sizes)),
                 **({"opset": opset_note} if opset_note else {}), **hybrid_notes,
                 **({"layer_analysis": analysis} if analysis else {})}
        return ModelArtifact(path=str(folder / MODEL), files=tuple(files), format="rknn", framework="rknn",
                             precision="int8-mixed" if config.float_layers else config.precision,
                             lineage=(*artifact.lineage, context.lineage("rknn.convert", config, notes)))


def _write_source(path: Path, out: Path) -> tuple[list[str], list[str], str | None]:
    """The ONNX model beside the .rknn, in one file, at an opset the toolkit reads; its inputs and outputs."""
    import onnx

    model = onnx.load(str(path))
    note = None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset > MAX_OPSET:
        from onnx import version_converter

        model = version_converter.convert_version(model, MAX_OPSET)
        note = f"converted from opset {opset} to {MAX_OPSET} (the toolkit reads up to {MAX_OPSET})"
    onnx.save(model, str(out))
    weights = {init.name for init in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in weights]
    return inputs, [o.name for o in model.graph.output], note


def _input_sizes(timing_data: Path | None, inputs: list[str]) -> list[list[int]]:
    """Each input's shape in the timed batch, at batch 1 (the toolkit takes no dynamic dimension)."""
    from edgeopt.datafiles import load_samples

    if timing_data is None:
        raise ValueError("rknn.convert needs the timed batch for the input shapes")
    timed = load_samples(timing_data)
    feeds = timed.feed(0, 1)
    missing = [name for name in inputs if name not in feeds]
    if missing:
        raise KeyError(f"the data has no array for model input(s) {missing}; it has {sorted(feeds)}")
    return [[int(n) for n in np.shape(feeds[name])] for name in inputs]


def _write_dataset(calibration: Path | None, inputs: list[str], folder: Path, limit: int) -> list[str]:
    """One .npy per input per sample and dataset.txt naming them (one sample per line, inputs space-separated,
    paths relative to the folder): the toolkit's calibration set."""
    from edgeopt.datafiles import load_samples

    if calibration is None:
        raise ValueError("int8 needs calibration data")
    samples = load_samples(calibration, limit=limit)
    (folder / "calibration").mkdir()
    written, lines = [], []
    for i in range(samples.count):
        feeds = samples.feed(i, i + 1)
        names = []
        for k, name in enumerate(inputs):
            relative = f"calibration/{i:04d}_{k}.npy"
            np.save(folder / relative, np.ascontiguousarray(feeds[name], dtype=np.float32))
            names.append(relative)
        written += names
        lines.append(" ".join(names))
    (folder / DATASET).write_text("\n".join(lines) + "\n")
    return written


_NUMBER = r"[-+\d.eE]+"
_LAYER = re.compile(rf"^\[(?P<op>[^\]]+)\]\s+(?P<name>\S+)\s+(?P<entire>{_NUMBER})\s*\|\s*{_NUMBER}\s+"
                    rf"(?P<single>{_NUMBER})\s*\|\s*{_NUMBER}")


def parse_error_analysis(text: str) -> list[dict]:
    """The layers of the toolkit's error_analysis.txt: cosine of each layer's simulated output against the float
    ('golden') one, accumulated over the layers before it (entire) and of the layer alone (single)."""
    rows = []
    for line in text.splitlines():
        match = _LAYER.match(line.strip())
        if match:
            rows.append({"layer": match["name"], "op": match["op"], "cosine_entire": float(match["entire"]),
                         "cosine_single": float(match["single"])})
    return rows


def _analyse(rknn, folder: Path) -> dict:
    """The toolkit's accuracy_analysis of the built int8 model, kept beside it (error_analysis.txt): the layers
    whose own output diverges most from float, and the output's accumulated cosine."""
    text = _analysis_text(rknn, folder)
    (folder / ANALYSIS).write_text(text)
    rows = parse_error_analysis(text)
    worst = sorted(rows, key=lambda r: r["cosine_single"])[:ANALYSED_LAYERS]
    return {"by": "rknn-toolkit2 accuracy_analysis (simulator vs float, one calibration sample)",
            "layers": len(rows), "output_cosine": rows[-1]["cosine_entire"] if rows else None,
            "most_divergent": worst}


def _hybrid(folder: Path, recipe: dict, count: int) -> dict:
    """Hybrid quantization: the plain int8 model is built and analysed, and the `count` layers whose own output
    diverges most are put in the recipe as sections kept in fp16 ([the node's input, its output]). Only layers
    that are ONNX nodes can be named; the toolkit's own conversion layers are left to it."""
    plain = built(folder, {**recipe, "hybrid": None})
    try:
        rows = parse_error_analysis(_analysis_text(plain, folder))
    finally:
        plain.release()
    # both ends of a section must be tensors of the toolkit's own graph (it fuses some away): the analysis names them
    known = {r["layer"] for r in rows} | set(recipe["inputs"])
    sections = _onnx_sections(folder / SOURCE, known)
    ranked = sorted((r for r in rows if r["layer"] in sections), key=lambda r: r["cosine_single"])[:count]
    if not ranked:
        raise ValueError("the toolkit's analysis names no ONNX layer to keep in fp16")
    recipe["hybrid"] = [sections[r["layer"]] for r in ranked]
    return {"float_layers": [{"layer": r["layer"], "op": r["op"], "cosine_single_int8": r["cosine_single"]}
                             for r in ranked],
            "int8_output_cosine": rows[-1]["cosine_entire"] if rows else None}


def _analysis_text(rknn, folder: Path) -> str:
    """error_analysis.txt of the model built in `rknn`, on the first calibration sample in the simulator (the
    per-layer dumps it writes beside it are large, and the table says what they show: they are removed)."""
    sample = (folder / DATASET).read_text().splitlines()[0].split()
    out = folder / "analysis"
    try:
        call(rknn, "accuracy_analysis", inputs=[str(folder / p) for p in sample], output_dir=str(out), target=None)
        return (out / "error_analysis.txt").read_text()
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _onnx_sections(path: Path, known: set[str]) -> dict[str, list[str]]:
    """Each ONNX node output the toolkit's graph has → the section its custom_hybrid keeps in fp16, [first input,
    the output]: the node itself, back to the nearest tensor the toolkit's graph still has (it fuses some away, an
    activation into the convolution before it among them), so a fused layer is kept in fp16 whole."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}

    def activation(node) -> str | None:
        return next((name for name in node.input if name and name not in weights), None)

    sections = {}
    for node in graph.node:
        start = activation(node)
        for _ in range(len(graph.node)):  # a walk up the graph ends at a known tensor or the graph's inputs
            if start is None or start in known or start not in producers:
                break
            start = activation(producers[start])
        if start is None or start not in known:
            continue
        for output in node.output:
            if output in known:
                sections[output] = [start, output]
    return sections


PASSES = {"convert": Convert}
