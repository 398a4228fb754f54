"""The work in an ONNX graph at fixed input shapes, node by node: multiply-accumulates (and in which
precision they run), element operations, and the bytes a node reads and writes. What a roofline needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_INT8_OPS = {"MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeMatMul",
             "MatMulIntegerToFloat", "QGemm"}
_ELEMENT_BYTES = {1: 4, 10: 2, 16: 2, 2: 1, 3: 1, 6: 4, 7: 8, 11: 8, 9: 1}  # onnx TensorProto element types


@dataclass(frozen=True)
class NodeCost:
    op: str
    macs: int
    elements: int  # element-wise work where there is no multiply-accumulate
    bytes: int  # read (inputs, weights) + written (outputs)
    precision: str  # fp32 | fp16 | int8


@dataclass(frozen=True)
class GraphCost:
    nodes: tuple[NodeCost, ...]

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    def macs_by_precision(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for n in self.nodes:
            totals[n.precision] = totals.get(n.precision, 0) + n.macs
        return totals

    @property
    def bytes(self) -> int:
        return sum(n.bytes for n in self.nodes)

    def as_pairs(self) -> list[list]:
        return [[n.op, n.macs, n.elements, n.bytes, n.precision] for n in self.nodes]

    @classmethod
    def from_pairs(cls, pairs: list[list]) -> GraphCost:
        return cls(tuple(NodeCost(*p) for p in pairs))


def onnx_cost(path: str | Path, input_shapes: dict[str, tuple[int, ...]]) -> GraphCost:
    """Per node cost of an ONNX model with its inputs at `input_shapes` (dynamic dims fixed by them)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    for value in graph.input:
        if value.name in input_shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, input_shapes[value.name]):
                dim.ClearField("dim_param")
                dim.dim_value = int(size)
    # what an earlier tool recorded about intermediate tensors may contradict its own rewrite (fp16 converters):
    # shapes are inferred afresh from the inputs
    model.graph.ClearField("value_info")
    _topological(model.graph)  # some converters append the casts they insert after the nodes that read them
    inferred = shape_inference.infer_shapes(model, data_prop=True).graph
    shapes, types = {}, {}
    for value in (*inferred.input, *inferred.value_info, *inferred.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim):
            shapes[value.name] = tuple(d.dim_value for d in tensor.shape.dim)
        types[value.name] = tensor.elem_type
    for name, init in initializers.items():
        shapes[name] = tuple(init.dims)
        types[name] = init.data_type
    constants = {}
    for node in graph.node:  # weights stored as Constant nodes (PP-OCR does that) are weights too
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            array = numpy_helper.to_array(node.attribute[0].t)
            shapes[node.output[0]], types[node.output[0]] = array.shape, node.attribute[0].t.data_type
            constants[node.output[0]] = array
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}

    def size(name: str) -> int:
        shape = shapes.get(name)
        return int(np.prod(shape)) if shape is not None else 0

    def nbytes(name: str) -> int:
        return size(name) * _ELEMENT_BYTES.get(types.get(name, 1), 4)

    nodes = []
    for node in graph.node:
        if node.op_type in ("Constant", "Shape", "Identity"):
            continue
        out = node.output[0] if node.output else ""
        macs = _macs(node, shapes, size)
        precision = ("int8" if node.op_type in _INT8_OPS or any(i in dequantized for i in node.input[:2])
                     or _int8_compute(node) else "fp16" if types.get(out) == 10 else "fp32")
        moved = sum(nbytes(i) for i in node.input if i) + sum(nbytes(o) for o in node.output if o)
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and any(i in initializers for i in node.input[:1]):
            moved = 0  # constant folding turns weight dequantization into int8 weights read by the consumer
        nodes.append(NodeCost(node.op_type, macs, 0 if macs else size(out), moved, precision))
    return GraphCost(tuple(nodes))


def _int8_compute(node) -> bool:
    """A weight-only MatMulNBits computes in int8 at accuracy level 4 (activations quantized on the fly), else in
    float with its 4/8-bit weights widened."""
    return node.op_type == "MatMulNBits" and any(a.name == "accuracy_level" and a.i == 4 for a in node.attribute)


def _topological(graph) -> None:
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:  # a cycle or a dangling input: keep the rest as it was
            ordered += pending
            break
        for node in ready:
            ordered.append(node)
            known.update(node.output)
        placed = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in placed]
    del graph.node[:]
    graph.node.extend(ordered)


def _macs(node, shapes: dict, size) -> int:
    op = node.op_type
    out = shapes.get(node.output[0]) if node.output else None
    if out is None:
        return 0
    if op in ("Conv", "ConvInteger", "QLinearConv", "FusedConv", "ConvTranspose"):
        weight = shapes.get(node.input[3] if op == "QLinearConv" else node.input[1])
        if not weight:
            return 0
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        per_output = int(np.prod(weight[1:])) if op != "ConvTranspose" else int(np.prod(weight[2:])) * weight[0] // group
        return int(np.prod(out)) * per_output
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "FusedMatMul",
              "MatMulIntegerToFloat", "Gemm", "QGemm", "MatMulNBits"):
        a = shapes.get(node.input[0])
        if not a:
            return 0
        transposed = op == "Gemm" and any(a_.name == "transA" and a_.i for a_ in node.attribute)
        k = a[-2] if transposed else a[-1]
        return int(np.prod(out)) * int(k)
    return 0
