"""Whether a source model arrives already quantized, read from its graph at plan time.

A QDQ or QOperator int8 graph, a weight-only MatMulNBits graph or an fp16 graph is not a float graph:
ONNX Runtime's quantizers and fp16 converter and NNCF take it as if it were one and write models that
ONNX Runtime refuses at load ("InvalidGraph"), found only when they are timed. The planner skips those
passes for such a source and says why; runtime and session candidates and OpenVINO's conversion stay.
"""

from __future__ import annotations

from collections import Counter

QDQ = ("QuantizeLinear", "DequantizeLinear")
QOPERATOR = ("QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QGemm", "QAttention", "ConvInteger",
             "MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul")
WEIGHT_ONLY = ("MatMulNBits", "MatMulBnb4", "GatherBlockQuantized")
_FLOAT, _FLOAT16, _BFLOAT16 = 1, 10, 16  # onnx.TensorProto element types


def quantized_form(model) -> str | None:
    """What quantized form an ONNX ModelProto's graph is in, with the evidence ("QDQ int8: 36 QuantizeLinear,
    36 DequantizeLinear"), or None for a float32 graph."""
    ops = Counter(node.op_type for node in _nodes(model.graph))
    for label, names in (("QDQ", QDQ), ("QOperator int8", QOPERATOR), ("weight-only", WEIGHT_ONLY)):
        found = {name: ops[name] for name in names if ops[name]}
        if found:
            return f"{label}: " + ", ".join(f"{count} {name}" for name, count in found.items())
    floats = Counter(t.data_type for t in model.graph.initializer if t.data_type in (_FLOAT, _FLOAT16, _BFLOAT16))
    half = floats[_FLOAT16] + floats[_BFLOAT16]
    if half and half > floats[_FLOAT]:
        return f"16-bit float weights: {half} of {sum(floats.values())} float initializers"
    return None


def _nodes(graph):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
                yield from _nodes(sub)
