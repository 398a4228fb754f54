"""Reading a QDQ graph back as float: exact weights, per-axis scales, the range a Q/DQ pair lets through."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeopt.quantized import dequantize_qdq, quantized_form  # noqa: E402


def qdq_model(activation_source: str = "x") -> onnx.ModelProto:
    weights = np.array([[1, -2, 3], [4, 5, -6]], dtype=np.int8)  # [2, 3], per output column (axis 1)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
        helper.make_node("DequantizeLinear", [activation_source if activation_source != "x" else "x_q", "x_scale",
                                              "x_zero"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], axis=1),
        helper.make_node("MatMul", ["x_dq", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(np.float32(0.5), "x_scale"), numpy_helper.from_array(np.uint8(10), "x_zero"),
         numpy_helper.from_array(weights, "w_q"), numpy_helper.from_array(np.array([1, 2, 4], np.float32), "w_scale"),
         numpy_helper.from_array(np.zeros(3, np.int8), "w_zero")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_weights_are_dequantized_per_axis_and_activation_pairs_become_their_clip():
    model = qdq_model()
    assert quantized_form(model).startswith("QDQ")
    counts = dequantize_qdq(model)
    assert counts == {"dequantized_weights": 1, "activation_pairs_removed": 1, "quantize_nodes_left": 0}
    assert quantized_form(model) is None
    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(tensors["w"], [[1, -4, 12], [4, 10, -24]])
    assert "w_q" not in tensors  # the int8 copy is gone once nothing reads it
    clip = next(n for n in model.graph.node if n.op_type == "Clip")
    # uint8 with zero point 10 and scale 0.5 lets [-5, 122.5] through
    assert (tensors[clip.input[1]], tensors[clip.input[2]]) == (-5.0, 122.5)
    onnx.checker.check_model(model)


def test_a_dequantize_of_something_else_is_not_read_as_float():
    with pytest.raises(ValueError, match="neither a constant nor a QuantizeLinear output"):
        dequantize_qdq(qdq_model(activation_source="x_raw"))
