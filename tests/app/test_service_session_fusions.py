"""CPU sessions leave residual Add + LayerNormalization unfused and fuse the rest as before
(`inference.session.CPU_UNFUSED`): the name must still be onnxruntime's optimizer, which
ignores names it does not know, and the answers must not change."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from inference.session import CPU, CUDA, disabled_fusions, open_session, session_options

WIDTH = 8


def _block_model() -> onnx.ModelProto:
    """x -> MatMul + bias -> + x (residual) -> LayerNormalization -> erf Gelu: the pattern
    of a BERT layer's output that onnxruntime fuses."""
    rng = np.random.default_rng(0)
    weights = {
        "w": rng.normal(size=(WIDTH, WIDTH)).astype(np.float32),
        "bias": rng.normal(size=WIDTH).astype(np.float32),
        "gamma": np.ones(WIDTH, np.float32), "beta": np.zeros(WIDTH, np.float32),
        "sqrt2": np.array(np.sqrt(2.0), np.float32), "one": np.array(1.0, np.float32),
        "half": np.array(0.5, np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "bias"], ["biased"]),
        helper.make_node("Add", ["biased", "x"], ["residual"]),
        helper.make_node("LayerNormalization", ["residual", "gamma", "beta"], ["ln"],
                         axis=-1, epsilon=1e-12),
        helper.make_node("Div", ["ln", "sqrt2"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["erf1"]),
        helper.make_node("Mul", ["ln", "erf1"], ["product"]),
        helper.make_node("Mul", ["product", "half"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, WIDTH])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _optimized_ops(model_file: Path, out: Path, disabled: list[str]) -> collections.Counter:
    options = session_options(threads=1)
    options.optimized_model_filepath = str(out)
    ort.InferenceSession(str(model_file), sess_options=options, providers=[CPU],
                         disabled_optimizers=disabled)
    return collections.Counter(node.op_type for node in onnx.load(str(out)).graph.node)


def test_cpu_sessions_keep_the_residual_layer_norm_unfused(tmp_path: Path) -> None:
    model_file = tmp_path / "block.onnx"
    onnx.save(_block_model(), str(model_file))
    fused = _optimized_ops(model_file, tmp_path / "fused.onnx", [])
    # The graph is one onnxruntime fuses by default, so the check below can fail.
    assert fused["SkipLayerNormalization"] == 1 and fused["LayerNormalization"] == 0
    assert fused["Gelu"] + fused["BiasGelu"] == 1
    unfused = _optimized_ops(model_file, tmp_path / "unfused.onnx", disabled_fusions([CPU]))
    assert unfused["SkipLayerNormalization"] == 0 and unfused["LayerNormalization"] == 1
    assert unfused["Gelu"] + unfused["BiasGelu"] == 1  # Gelu stays fused: faster so
    x = {"x": np.random.default_rng(1).normal(size=(1, 4, WIDTH)).astype(np.float32)}
    plain = ort.InferenceSession(str(model_file), providers=[CPU])
    np.testing.assert_allclose(open_session(model_file, "cpu", 1).run(None, x)[0],
                               plain.run(None, x)[0], rtol=1e-5, atol=1e-5)


def test_gpu_sessions_keep_every_fusion() -> None:
    assert disabled_fusions([CUDA, CPU]) == []
    assert disabled_fusions([CPU]) == ["SkipLayerNormFusion"]
