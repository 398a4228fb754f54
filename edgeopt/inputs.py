"""The model's inputs as it declares them, and the data checked against them before any pass runs.

Data arrays are samples first. For each model input this decides how a run of samples is fed (its batch
axis, or none for a scalar; or a constant from the manifest) and checks names, ranks, fixed sizes and
kinds against what the model declares, so that a mismatch is one exit-2 message naming the input, what
the model wants, what the data gives and the manifest line that fixes it, instead of every candidate
failing in the runtime with "Got invalid dimensions for input: state".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeopt.datafiles import InputLayout
from edgeopt.errors import ManifestError, Problem, closest
from edgeopt.manifest import InputSpec, Manifest

BATCH_NAMES = frozenset({"batch", "batch_size", "batchsize", "n", "b", "bs"})

_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
                11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}


@dataclass(frozen=True)
class DeclaredInput:
    """One graph input as the model file declares it: fixed sizes as ints, named dynamic axes as strings,
    unnamed dynamic axes as None."""

    name: str
    dims: tuple[int | str | None, ...]
    dtype: str | None

    def shape_text(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.dims) + "]"


@dataclass(frozen=True)
class DeclaredOutput:
    name: str
    dims: tuple[int | str | None, ...]
    dtype: str | None


def declared_io(model) -> tuple[list[DeclaredInput], list[DeclaredOutput]]:
    """An ONNX ModelProto's graph inputs (initializers excluded: older exporters list weights as inputs) and
    outputs."""
    weights = {t.name for t in model.graph.initializer}

    def describe(value):
        tensor = value.type.tensor_type
        # a dim_value of -1 (paddle2onnx's way of writing "dynamic") is read as an unnamed dynamic dimension
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else (d.dim_param or None)
                     for d in tensor.shape.dim)
        return value.name, dims, _ONNX_DTYPES.get(tensor.elem_type)

    inputs = [DeclaredInput(*describe(v)) for v in model.graph.input if v.name not in weights]
    outputs = [DeclaredOutput(*describe(v)) for v in model.graph.output]
    return inputs, outputs


def batch_symbol(declared: list[DeclaredInput]) -> str | None:
    """The name the model gives its batch axis: one named like a batch, else the first input's first axis
    when that is a named dynamic one (`input[frames, 64]` and `state[2, frames, 16]` share `frames`)."""
    for model_input in declared:
        for dim in model_input.dims:
            if isinstance(dim, str) and dim.lower() in BATCH_NAMES:
                return dim
    firsts = [d.dims[0] for d in declared if d.dims]
    return firsts[0] if firsts and isinstance(firsts[0], str) else None


def batch_axis_of(dims: tuple | list, symbol: str | None = None) -> int | None:
    """The axis a run of samples goes on: where the batch's name is; else the first axis not fixed to a size
    above one (`[2, ?, 16]` → 1; `[1, 3, h, w]` → 0: a batch of one); else the first. None for a scalar."""
    if not dims:
        return None
    if symbol is not None and symbol in dims:
        return list(dims).index(symbol)
    named = [i for i, d in enumerate(dims) if isinstance(d, str) and d.lower() in BATCH_NAMES]
    if named:
        return named[0]
    free = [i for i, d in enumerate(dims) if not (isinstance(d, int) and d > 1)]
    return free[0] if free else 0


def input_layouts(manifest: Manifest, declared: list[DeclaredInput] | None,
                  arrays: dict[str, np.ndarray], where: str,
                  outputs: list[DeclaredOutput] | None = None) -> dict[str, InputLayout]:
    """Each input's layout, with every problem between the data, the manifest and the model found at once."""
    specs = {spec.name: spec for spec in manifest.inputs}
    problems: list[Problem] = []
    if declared is not None:
        names = [d.name for d in declared]
        for i, spec in enumerate(manifest.inputs):
            if spec.name not in names:
                problems.append(Problem(f"inputs[{i}].name", f"the model has no input {spec.name!r}; it has "
                                        f"{', '.join(names)}", tuple(closest(spec.name, names))))
    layouts: dict[str, InputLayout] = {}
    symbol = batch_symbol(declared or [])
    for model_input in declared or ():
        spec = specs.get(model_input.name)
        if spec is not None and spec.from_output is not None:
            layout = _recurrent(model_input, spec, symbol, manifest, outputs, problems)
        else:
            layout = _layout(model_input, spec, symbol, arrays, where, problems)
        if layout is not None:
            layouts[model_input.name] = layout
    if declared is None:  # no model file to read (a Hugging Face folder, exported later): the manifest's word
        for i, spec in enumerate(manifest.inputs):
            if spec.from_output is not None:
                problems.append(Problem(f"inputs[{i}].from_output", "a recurrent input is sized from the ONNX "
                                        "model's declaration: give an ONNX source (model.format: onnx)"))
            layouts[spec.name] = _from_spec(spec, None, None)
    if problems:
        raise ManifestError(manifest.name, problems=problems,
                            summary=f"the data does not fit the model's inputs ({len(problems)} "
                                    f"problem{'s' if len(problems) > 1 else ''})")
    return layouts


def _from_spec(spec: InputSpec, model_input: DeclaredInput | None, symbol: str | None) -> InputLayout:
    if spec.value is not None:
        return InputLayout(batch_axis=None, value=spec.value,
                           dtype=spec.dtype or (model_input.dtype if model_input else None) or None)
    if spec.batch_axis is not None:
        return InputLayout(batch_axis=spec.batch_axis)
    if spec.shape is not None:
        return InputLayout(batch_axis=batch_axis_of(spec.shape))
    return InputLayout(batch_axis=batch_axis_of(model_input.dims, symbol) if model_input else 0)


def _recurrent(model_input: DeclaredInput, spec: InputSpec, symbol: str | None, manifest: Manifest,
               outputs: list[DeclaredOutput] | None, problems: list[Problem]) -> InputLayout | None:
    """A state fed from an output of the previous call: that output must exist, and the state's sizes
    other than the batch must be known to start it at its initial value."""
    key = f"inputs.{model_input.name}"
    names = [o.name for o in outputs or ()]
    if outputs is not None and spec.from_output not in names:
        problems.append(Problem(f"{key}.from_output", f"the model has no output {spec.from_output!r}; it has "
                                f"{', '.join(names)}", tuple(closest(spec.from_output, names))))
        return None
    dims = list(spec.shape) if spec.shape is not None else list(model_input.dims)
    axis = spec.batch_axis if spec.batch_axis is not None else batch_axis_of(dims, symbol)
    rest = [d for i, d in enumerate(dims) if i != axis]
    if not all(isinstance(d, int) and d > 0 for d in rest):
        problems.append(Problem(f"{key}.shape", f"the model declares {model_input.shape_text()}: give every size "
                                "but the batch's (e.g. shape: [2, batch, 128]) so the state can start at its "
                                "initial value"))
        return None
    return InputLayout(batch_axis=axis, dtype=spec.dtype or model_input.dtype, from_output=spec.from_output,
                       initial=spec.initial, shape=rest, sequence_length=manifest.evaluation.sequence_length)


def _layout(model_input: DeclaredInput, spec: InputSpec | None, symbol: str | None, arrays: dict[str, np.ndarray],
            where: str, problems: list[Problem]) -> InputLayout | None:
    name, dims = model_input.name, model_input.dims
    key = f"inputs.{name}" if spec else where
    if spec is not None and spec.shape is not None and not _same_shape(spec.shape, dims):
        problems.append(Problem(key, f"the manifest says shape {_text(spec.shape)}, the model declares "
                                     f"{model_input.shape_text()}"))
        return None
    layout = _from_spec(spec, model_input, symbol) if spec else InputLayout(batch_axis=batch_axis_of(dims, symbol))
    if layout.value is not None:
        given = np.asarray(layout.value)
        if not _fits(given.shape, dims):
            problems.append(Problem(f"inputs.{name}.value", f"a value of shape {list(given.shape)}; the model "
                                    f"wants {model_input.shape_text()}"))
        return layout
    if name not in arrays:
        hint = " (a constant such as a sample rate goes in the manifest: `inputs: [{name: %s, value: ...}]`)" % name \
            if not dims else ""
        problems.append(Problem(where, f"the model's input {name!r} {model_input.shape_text()} has no array in the "
                                       f"data; it has {', '.join(sorted(arrays)) or 'none'}{hint}",
                                tuple(closest(name, arrays))))
        return None
    array = arrays[name]
    problem = _shape_problem(name, model_input, array, layout.batch_axis)
    if problem:
        problems.append(Problem(where, problem))
        return None
    if model_input.dtype and _kind(model_input.dtype) in "iub" and array.dtype.kind == "f":
        problems.append(Problem(where, f"{name}: the model wants {model_input.dtype}; your data holds {array.dtype} "
                                       "(integer data, such as token ids, must be stored as integers)"))
        return None
    return layout


def _shape_problem(name: str, model_input: DeclaredInput, array: np.ndarray, axis: int | None) -> str | None:
    dims = model_input.dims
    if array.ndim == 0:
        return f"{name}: the data holds one value; data arrays hold one entry per sample (samples first)"
    # other axes the samples would fit on, where the model's size is free (a batch axis is seldom fixed)
    fixes = [k for k in range(len(dims)) if k != axis and not _fixed(dims[k]) and _fits(_fed_shape(array.shape, k), dims)]
    if _fits(_fed_shape(array.shape, axis), dims) and not (axis is not None and _fixed(dims[axis]) > 1 and fixes):
        return None
    wants, gives = model_input.shape_text(), list(array.shape)
    axis_dim = dims[axis] if axis is not None and axis < len(dims) else None
    if axis is not None and axis and array.ndim == len(dims) and _fits(tuple(
            -1 if i == axis else s for i, s in enumerate(array.shape)), dims):
        order = [gives[axis], *gives[:axis], *gives[axis + 1:]]
        return (f"{name}: your data {gives} looks like the model's own layout {wants} (batch on axis {axis}, "
                f"{axis_dim}); data files hold samples first: store it as {order} "
                f"(numpy: np.moveaxis({name}, {axis}, 0)) and edgeopt moves it back when feeding")
    if fixes:
        k = fixes[0]
        shape = _text(["batch" if i == k else (d if d is not None else f"d{i}") for i, d in enumerate(dims)])
        return (f"{name}: the model wants {wants}; your data gives {gives} (samples first) — add "
                f"`batch_axis: {k}` or shape `{shape}` for {name} under `inputs`")
    rank = len(dims) - (0 if axis is None else 1)
    return (f"{name}: the model wants {wants}; your data gives {gives}, that is samples of shape "
            f"{list(array.shape[1:])} where the model takes {rank}-d samples of its declared sizes")


def _fed_shape(shape: tuple, axis: int | None) -> tuple | None:
    """The shape a batch of these samples is fed as: the batch (any size) moved to `axis`; None when the
    samples have too few axes to put it there."""
    sample = list(shape[1:])
    if axis is None:
        return tuple(sample)
    if axis > len(sample):
        return None
    return tuple([*sample[:axis], -1, *sample[axis:]])


def _fixed(dim) -> int:
    return dim if isinstance(dim, int) and dim > 0 else 0


def _fits(shape: tuple | None, dims: tuple) -> bool:
    """Same rank, and every fixed size of the model's equal to the data's (-1: the batch, any size)."""
    return shape is not None and len(shape) == len(dims) and all(
        not isinstance(d, int) or d <= 0 or s == -1 or s == d for s, d in zip(shape, dims))


def _same_shape(spec: list, dims: tuple) -> bool:
    return len(spec) == len(dims) and all(
        not (isinstance(s, int) and isinstance(d, int) and d > 0) or s == d for s, d in zip(spec, dims))


def _kind(dtype: str) -> str:
    return "b" if dtype == "bool" else np.dtype(dtype).kind if dtype != "bfloat16" else "f"


def _text(dims) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"
