"""The 4-bit embedding lookup rewrite: same floats as onnxruntime's GatherBlockQuantized,
in plain operators, for any index shape; layouts it does not handle are left alone."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from compression.quantization.nibble_lookup import plain_op_4bit_lookups

ROWS, WIDTH, BLOCK = 50, 64, 16


def _table(seed: int) -> tuple[onnx.TensorProto, onnx.TensorProto]:
    rng = np.random.default_rng(seed)
    values = rng.integers(-8, 8, (ROWS, WIDTH))
    data = helper.make_tensor(f"table{seed}", TensorProto.INT4, [ROWS, WIDTH],
                              values.flatten().tolist())
    scales = numpy_helper.from_array(
        rng.uniform(0.001, 0.05, (ROWS, WIDTH // BLOCK)).astype(np.float32), f"scales{seed}")
    return data, scales


def _lookup_model(tables: list[str], opset: int = 21,
                  data_type: int = TensorProto.INT4) -> onnx.ModelProto:
    """Two lookups (`ids_a`, `ids_b`) into the named tables, summed: a shared table
    when both name the same one."""
    initializers = {}
    for seed in sorted({int(name[-1]) for name in tables}):
        data, scales = _table(seed)
        data.data_type = data_type
        initializers[data.name], initializers[scales.name] = data, scales
    nodes = [
        helper.make_node("GatherBlockQuantized", [table, ids, "scales" + table[-1]], [out],
                         domain="com.microsoft", block_size=BLOCK, gather_axis=0,
                         quantize_axis=1, name=f"lookup_{out}")
        for table, ids, out in zip(tables, ("ids_a", "ids_b"), ("a", "b"), strict=True)
    ]
    nodes.append(helper.make_node("Add", ["a", "b"], ["out"]))
    graph = helper.make_graph(
        nodes, "lookups",
        [helper.make_tensor_value_info(name, TensorProto.INT64, None)
         for name in ("ids_a", "ids_b")],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        list(initializers.values()))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                   helper.make_opsetid("com.microsoft", 1)])


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def _ops(model: onnx.ModelProto) -> collections.Counter:
    return collections.Counter(node.op_type for node in model.graph.node)


@pytest.mark.parametrize("shape", [(1, 7), (3, 11), (2, 3, 5)])
@pytest.mark.parametrize("tables", [["table0", "table1"], ["table0", "table0"]])
def test_rewritten_lookup_gives_the_contrib_ops_floats(shape: tuple[int, ...],
                                                       tables: list[str]) -> None:
    rng = np.random.default_rng(1)
    feed = {name: rng.integers(0, ROWS, shape).astype(np.int64) for name in ("ids_a", "ids_b")}
    original = _lookup_model(tables)
    expected = _run(original, feed)
    rewritten = _lookup_model(tables)
    assert plain_op_4bit_lookups(rewritten) == 2
    ops = _ops(rewritten)
    assert ops["GatherBlockQuantized"] == 0 and ops["BitShift"] == 2
    # A shared table is repacked once, and the original INT4 tables are gone.
    packed = [init for init in rewritten.graph.initializer if init.name.endswith("_nibbles")]
    assert len(packed) == len(set(tables))
    assert all(init.data_type != TensorProto.INT4 for init in rewritten.graph.initializer)
    assert sum(numpy_helper.to_array(p).nbytes for p in packed) == \
        len(set(tables)) * ROWS * WIDTH // 2
    result = _run(rewritten, feed)
    assert result.shape == (*shape, WIDTH)
    np.testing.assert_array_equal(result, expected)


def test_layouts_it_does_not_handle_are_left_alone() -> None:
    unsigned = _lookup_model(["table0", "table1"], data_type=TensorProto.UINT4)
    before = unsigned.SerializeToString()
    assert plain_op_4bit_lookups(unsigned) == 0
    assert unsigned.SerializeToString() == before
    old_opset = _lookup_model(["table0", "table1"], opset=17)
    assert plain_op_4bit_lookups(old_opset) == 0
    assert _ops(old_opset)["GatherBlockQuantized"] == 2
