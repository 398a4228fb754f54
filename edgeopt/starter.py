"""`edgeopt init MODEL`: a manifest to start from, written from what the model declares.

It lists the model's inputs and outputs (names, shapes with their named axes, element types), guesses
the task from the outputs, and leaves a data section to fill, saying which arrays the data file needs
(samples first). Scalars are marked: most are constants (a sample rate) that belong under `value:`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from edgeopt.errors import UsageError
from edgeopt.inputs import DeclaredInput, DeclaredOutput, batch_axis_of, batch_symbol, declared_io

PRECISIONS = {"float32", "float16", "int64", "int32", "uint8", "int8", "bool"}  # manifest.Precision


def starter_manifest(model: Path, manifest_dir: Path) -> str:
    """The manifest text for `model`, with paths relative to `manifest_dir`."""
    if model.suffix.lower() != ".onnx" or not model.is_file():
        raise UsageError(f"{model}: `edgeopt init` reads an ONNX model file (.onnx); a Hugging Face folder takes "
                         "`model: {path: FOLDER, format: hf-transformers}` written by hand (see `edgeopt schema`)")
    from edgeopt.model_checks import check_onnx

    inputs, outputs = declared_io(check_onnx(model))
    symbol = batch_symbol(inputs)
    task, metric, output = _guess_task(outputs)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", model.stem).strip("-._") or "model"
    lines = [
        f"# written by `edgeopt init {model.name}`: fill in the data section, then `edgeopt plan` and `edgeopt build`",
        f"name: {name}",
        "model:",
        f"  path: {_quote(_relative(model, manifest_dir))}",
        "  format: onnx",
        f"  task: {task}  # guessed from the outputs: {', '.join(_shape(o) for o in outputs)}",
        "",
        "# the model's inputs as it declares them; data arrays are samples first and go on each input's batch axis",
        "inputs:",
    ]
    for item in inputs:
        lines += _input_lines(item, symbol, outputs)
    arrays = [f"{i.name} {_sample_shape(i, symbol)}" for i in inputs if i.dims]
    lines += [
        "",
        "evaluation:",
        "  data:",
        "    type: npz",
        "    path: data.npz  # TODO: arrays " + (", ".join(arrays) or "(none: every input is a scalar)") +
        (", and `labels` for top1" if metric == "top1" else ""),
        "  metric:",
        f"    name: {metric}",
        f"    output: {_quote(output)}",
        "",
        "target: host  # or a device from `edgeopt targets` (rk3566, rpi5, intel-n100, ...)",
        "",
    ]
    return "\n".join(lines)


def _input_lines(item: DeclaredInput, symbol: str | None, outputs: list[DeclaredOutput]) -> list[str]:
    dims = [d if d is not None else f"dim{i}" for i, d in enumerate(item.dims)]
    lines = [f"  - name: {_quote(item.name)}", f"    shape: [{', '.join(_quote(d) for d in dims)}]"]
    if item.dtype in PRECISIONS:
        lines.append(f"    dtype: {item.dtype}")
    if not item.dims:
        lines.append("    # a scalar: if it is the same on every call (a sample rate), give it here: value: 16000")
    else:
        axis = batch_axis_of(item.dims, symbol)
        twins = [o.name for o in outputs if o.dims == item.dims and o.dtype == item.dtype]
        if twins and len(item.dims) > 1:  # an output shaped like this input: likely the next state
            lines.append(f"    # a recurrent state? `from_output: {_quote(twins[0])}` feeds it that output of the "
                         "previous call (then the data need not hold it)")
        if axis:
            size = item.dims[axis] if item.dims[axis] is not None else "unnamed, free size"
            lines.append(f"    batch_axis: {axis}  # samples go on axis {axis} ({size})")
    return lines


def _guess_task(outputs: list[DeclaredOutput]) -> tuple[str, str, str | int]:
    first = outputs[0]
    classes = first.dims[-1] if first.dims else None
    if len(outputs) == 1 and len(first.dims) == 2 and isinstance(classes, int) and classes > 1:
        return "classification", "top1", first.name
    return "generic", "fidelity", first.name


def _sample_shape(item: DeclaredInput, symbol: str | None) -> str:
    axis = batch_axis_of(item.dims, symbol)
    rest = [d for i, d in enumerate(item.dims) if i != axis]
    return "[N" + "".join(f", {d if d is not None else '?'}" for d in rest) + "]"


def _shape(item: DeclaredOutput) -> str:
    return f"{item.name} [{', '.join('?' if d is None else str(d) for d in item.dims)}]"


def _quote(value) -> str:
    """A YAML scalar that reads back as written: ints bare, strings in JSON quotes (never `yes`, `null`, ...)."""
    return str(value) if isinstance(value, int) else json.dumps(str(value))


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path.resolve())
