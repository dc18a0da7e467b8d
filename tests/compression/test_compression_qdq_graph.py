"""The float_outputs graph rewrites on a hand-built QDQ graph: the residual reads float,
the MatMul and its bias become one MatMulIntegerToFloat, and the numbers are the
expected INT8 arithmetic."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from compression.quantization.qdq_graph import (
    fuse_integer_matmuls,
    int8_inside_matmuls_only,
    unround_other_readers,
)

RNG = np.random.default_rng(0)
X_SCALE, X_ZERO = np.float32(0.02), np.uint8(128)
W = RNG.integers(-127, 128, size=(4, 4), dtype=np.int8)
W_SCALE = RNG.uniform(0.001, 0.01, size=4).astype(np.float32)
BIAS = RNG.normal(size=4).astype(np.float32)


def x_to_out_model(nodes: list[onnx.NodeProto],
                   init: list[onnx.TensorProto]) -> onnx.ModelProto:
    """A model of `nodes` from input "x" to output "out", both float (rows, 4)."""
    graph = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


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
    return x_to_out_model(nodes, init)


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
    assert [n.op_type for n in graph.node if n.name in ("q", "dq")] == [
        "QuantizeLinear", "DequantizeLinear"]


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


def _init(array: np.ndarray, name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name)


def test_q_k_v_sharing_one_rounded_input_are_all_fused() -> None:
    # Query, key and value read one QDQ'd tensor, as in every BERT layer.
    weights = [RNG.integers(-127, 128, size=(4, 4), dtype=np.int8) for _ in range(3)]
    biases = [RNG.normal(size=4).astype(np.float32) for _ in range(3)]
    init = [_init(X_SCALE, "x_scale"), _init(X_ZERO, "x_zero"),
            _init(np.zeros(4, np.int8), "w_zero"), _init(W_SCALE, "w_scale")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"])]
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        init += [_init(w, f"w{i}"), _init(b, f"b{i}")]
        nodes += [helper.make_node("DequantizeLinear", [f"w{i}", "w_scale", "w_zero"],
                                   [f"wd{i}"], axis=1),
                  helper.make_node("MatMul", ["xd", f"wd{i}"], [f"y{i}"], name=f"mm{i}"),
                  helper.make_node("Add", [f"y{i}", f"b{i}"], [f"z{i}"])]
    nodes += [helper.make_node("Sum", ["z0", "z1", "z2"], ["out"])]
    model = x_to_out_model(nodes, init)
    x = RNG.normal(size=(2, 4)).astype(np.float32)
    before = run(model, x)

    assert fuse_integer_matmuls(model) == 3
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulIntegerToFloat") == 3 and ops.count("QuantizeLinear") == 1
    assert "DequantizeLinear" not in ops and "MatMul" not in ops
    np.testing.assert_allclose(run(model, x), before, atol=1e-5)


def test_a_rounded_output_that_feeds_another_weight_matmul_stays_rounded() -> None:
    # x -> Q -> DQ -> MatMul(W) -> Q -> DQ -> MatMul(W) -> Add(bias): the first MatMul's
    # rounded output is the second one's INT8 input.
    init = [_init(a, n) for a, n in [
        (X_SCALE, "x_scale"), (X_ZERO, "x_zero"), (W, "w"), (W_SCALE, "w_scale"),
        (np.zeros(4, np.int8), "w_zero"), (BIAS, "bias"), (np.float32(0.05), "y_scale"),
        (np.uint8(128), "y_zero")]]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=1),
        helper.make_node("MatMul", ["xd", "wd"], ["y"], name="first"),
        helper.make_node("QuantizeLinear", ["y", "y_scale", "y_zero"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["yd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd2"], axis=1),
        helper.make_node("MatMul", ["yd", "wd2"], ["y2"], name="second"),
        helper.make_node("Add", ["y2", "bias"], ["out"]),
    ]
    model = x_to_out_model(nodes, init)
    x = RNG.normal(size=(2, 4)).astype(np.float32)
    before = run(model, x)

    assert int8_inside_matmuls_only(model) == {
        "outputs_unrounded": 0, "readers_unrounded": 0, "matmuls_fused": 1}
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMul") == 1 and ops.count("MatMulIntegerToFloat") == 1
    np.testing.assert_allclose(run(model, x), before, atol=1e-5)


def test_a_weight_scaled_along_the_wrong_axis_is_not_fused() -> None:
    model = qdq_block()
    for node in model.graph.node:
        if node.name == "dqw":
            node.attribute[0].i = 0  # scales per row of W: not what MatMulIntegerToFloat takes
    assert fuse_integer_matmuls(model) == 0
