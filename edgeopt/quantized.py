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
    # QOperator first: such a graph also has a QuantizeLinear / DequantizeLinear at its edges
    for label, names in (("QOperator int8", QOPERATOR), ("QDQ", QDQ), ("weight-only", WEIGHT_ONLY)):
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


def dequantize_qdq(model) -> dict:
    """Turns a QDQ graph back into a float graph, in place: every DequantizeLinear of a constant becomes the float
    tensor it computes ((q - zero point) × scale, per axis where the scale is), and every QuantizeLinear →
    DequantizeLinear pair on an activation becomes a Clip of the float input to the range the pair lets through.
    What the graph computed in float between those nodes is unchanged; only the rounding of activations is gone. Returns counts;
    a ValueError when a DequantizeLinear has neither (a graph edgeopt cannot read back as float)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    kept, weights, activations = [], 0, 0
    dropped_inputs: set[str] = set()
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            kept.append(node)
            continue
        source = node.input[0]
        if source in constants:
            values = _dequantized(node, constants, numpy_helper)
            graph.initializer.append(numpy_helper.from_array(values, node.output[0]))
            dropped_inputs.update(node.input)
            weights += 1
            continue
        quantizer = producers.get(source)
        if quantizer is None or quantizer.op_type != "QuantizeLinear":
            raise ValueError(f"DequantizeLinear {node.name or node.output[0]} reads {source}, which is neither a "
                             "constant nor a QuantizeLinear output")
        # the pair saturates as well as rounds: a quantizer may have dropped a Relu whose clipping the range
        # (from 0) implies, so the float graph keeps the range as a Clip
        low, high = _representable_range(quantizer, constants, numpy_helper)
        bounds = [f"{node.output[0]}_low", f"{node.output[0]}_high"]
        graph.initializer.extend([numpy_helper.from_array(low, bounds[0]), numpy_helper.from_array(high, bounds[1])])
        kept.append(helper.make_node("Clip", [quantizer.input[0], *bounds], [node.output[0]], name=f"{node.name}_float"))
        activations += 1
    used = {name for node in kept for name in node.input}
    final = [n for n in kept if not (n.op_type == "QuantizeLinear" and not (set(n.output) & used))]
    del graph.node[:]
    graph.node.extend(final)
    used = {name for node in final for name in node.input} | {o.name for o in graph.output}
    unused = [t for t in graph.initializer if t.name in dropped_inputs and t.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)
    return {"dequantized_weights": weights, "activation_pairs_removed": activations,
            "quantize_nodes_left": sum(n.op_type == "QuantizeLinear" for n in final)}


_INTEGER_RANGES = {2: (0, 255), 3: (-128, 127), 4: (0, 65535), 5: (-32768, 32767)}  # uint8, int8, uint16, int16


def _representable_range(quantizer, constants: dict, numpy_helper):
    """The float interval a per-tensor QuantizeLinear → DequantizeLinear pair lets through."""
    import numpy as np

    if len(quantizer.input) < 3 or quantizer.input[2] not in constants or quantizer.input[1] not in constants:
        raise ValueError(f"QuantizeLinear {quantizer.name or quantizer.output[0]} has no constant scale and zero point")
    zero_tensor = constants[quantizer.input[2]]
    if zero_tensor.data_type not in _INTEGER_RANGES:
        raise ValueError(f"QuantizeLinear {quantizer.name or quantizer.output[0]}: type {zero_tensor.data_type} "
                         "is not an 8- or 16-bit integer")
    scale = numpy_helper.to_array(constants[quantizer.input[1]]).astype(np.float32)
    zero = numpy_helper.to_array(zero_tensor).astype(np.float32)
    if scale.size != 1:
        raise ValueError(f"QuantizeLinear {quantizer.name or quantizer.output[0]} quantizes an activation per axis")
    qmin, qmax = _INTEGER_RANGES[zero_tensor.data_type]
    return (np.float32((qmin - zero.item()) * scale.item()), np.float32((qmax - zero.item()) * scale.item()))


def _dequantized(node, constants: dict, numpy_helper):
    import numpy as np

    quantized = numpy_helper.to_array(constants[node.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(constants[node.input[1]]).astype(np.float32)
    zero = (numpy_helper.to_array(constants[node.input[2]]).astype(np.float32)
            if len(node.input) > 2 and node.input[2] else np.zeros_like(scale))
    if scale.ndim == 1 and quantized.ndim > 1:  # per-axis: the scale runs along `axis` (default 1)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % quantized.ndim
        shape = [1] * quantized.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((quantized - zero) * scale).astype(np.float32)
