"""The float_outputs graph rewrites on a hand-built QDQ graph: the residual reads float,
the MatMul and its bias become one MatMulIntegerToFloat, and the numbers are the
expected INT8 arithmetic."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from compression.qdq_graph import (
    fuse_integer_matmuls,
    int8_inside_matmuls_only,
    unround_other_readers,
)

RNG = np.random.default_rng(0)
X_SCALE, X_ZERO = np.float32(0.02), np.uint8(128)
W = RNG.integers(-127, 128, size=(4, 4), dtype=np.int8)
W_SCALE = RNG.uniform(0.001, 0.01, size=4).astype(np.float32)
BIAS = RNG.normal(size=4).astype(np.float32)


def qdq_block(with_bias: bool = True, round_output: bool = False) -> onnx.ModelProto:
    """x -> Q -> DQ -> MatMul(DQ(W)) [-> Q -> DQ] [-> Add(bias)] -> Add(residual DQ(x))
    -> out: the shape of a BERT sub-layer as onnxruntime's static quantizer writes it
    (with `round_output`, as the `static` preset does)."""
    init = [numpy_helper.from_array(a, n) for a, n in [
        (X_SCALE, "x_scale"), (X_ZERO, "x_zero"), (W, "w"), (W_SCALE, "w_scale"),
        (np.zeros(4, np.int8), "w_zero"), (BIAS, "bias"), (np.float32(0.05), "y_scale"),
        (np.uint8(128), "y_zero")]]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], name="dqw",
                         axis=1),
        helper.make_node("MatMul", ["xd", "wd"], ["y"], name="matmul"),
    ]
    if round_output:
        nodes[-1].output[0] = "y_float"
        nodes += [helper.make_node("QuantizeLinear", ["y_float", "y_scale", "y_zero"], ["yq"]),
                  helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["y"])]
    if with_bias:
        nodes.append(helper.make_node("Add", ["y", "bias"], ["z"], name="bias_add"))
    nodes.append(helper.make_node("Add", ["z" if with_bias else "y", "xd"], ["out"],
                                  name="residual"))
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_rewrites_keep_int8_inside_the_matmul_and_the_residual_in_float() -> None:
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    x_rounded = (np.clip(np.round(x / X_SCALE) + X_ZERO, 0, 255) - X_ZERO) * X_SCALE
    int8_matmul = x_rounded @ (W.astype(np.float32) * W_SCALE) + BIAS

    model = qdq_block()
    np.testing.assert_allclose(run(model, x), int8_matmul + x_rounded, atol=1e-5)

    assert unround_other_readers(model) == 1  # the residual Add
    assert fuse_integer_matmuls(model) == 1
    ops = [node.op_type for node in model.graph.node]
    assert ops == ["QuantizeLinear", "MatMulIntegerToFloat", "Add"]
    assert any(o.domain == "com.microsoft" for o in model.opset_import)
    np.testing.assert_allclose(run(model, x), int8_matmul + x, atol=1e-5)


def test_a_matmul_without_a_bias_add_is_left_as_qdq() -> None:
    model = qdq_block(with_bias=False)
    assert fuse_integer_matmuls(model) == 0
    assert [n.op_type for n in model.graph.node] == [
        "QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "MatMul", "Add"]


def test_a_rounded_tensor_no_weight_matmul_reads_keeps_its_qdq_pair() -> None:
    # An embedding Gather's output is rounded for the Add that sums the embeddings;
    # onnxruntime needs that pair to gather from the INT8 table.
    model = qdq_block()
    graph = model.graph
    for node in graph.node:
        if node.name == "matmul":
            node.op_type, node.input[1] = "Add", "xd"  # now nothing multiplies by a weight
    graph.node.remove(next(n for n in graph.node if n.name == "dqw"))
    assert unround_other_readers(model) == 0
    assert fuse_integer_matmuls(model) == 0
    assert [n.input[1] for n in graph.node if n.name == "residual"] == ["xd"]


def test_output_rounding_of_a_static_graph_is_removed_before_fusing() -> None:
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    x_rounded = (np.clip(np.round(x / X_SCALE) + X_ZERO, 0, 255) - X_ZERO) * X_SCALE
    model = qdq_block(round_output=True)
    assert int8_inside_matmuls_only(model) == {
        "outputs_unrounded": 1, "readers_unrounded": 1, "matmuls_fused": 1}
    assert [n.op_type for n in model.graph.node] == [
        "QuantizeLinear", "MatMulIntegerToFloat", "Add"]
    # The output scale and zero point went with the pair: no unread initializer left.
    assert not {"y_scale", "y_zero"} & {init.name for init in model.graph.initializer}
    expected = x_rounded @ (W.astype(np.float32) * W_SCALE) + BIAS + x
    np.testing.assert_allclose(run(model, x), expected, atol=1e-5)
