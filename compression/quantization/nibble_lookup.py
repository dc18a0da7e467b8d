"""4-bit embedding lookups in plain ONNX operators, about 3x faster than the contrib op.

onnxruntime's block quantizer writes a 4-bit embedding table as `GatherBlockQuantized`
(com.microsoft). On CPU that kernel dequantizes the looked-up rows element by element:
64 us for 20 rows of a 384-wide table on the 2-core EPYC, 5 % of a small tagger's
batch-1 latency for one table, and BERT has three. The same lookup written as a Gather of
packed bytes, two bit operations and a block-wise scale takes 17 us and gives the same
floats: each value is the same small integer times the same fp32 scale.

The table is repacked so that unpacking needs no interleave: byte `j` of a row holds
column `j` in its low nibble and column `j + width/2` in its high one, both stored with
an offset of 8 (signed 4-bit values -8..7 as 0..15). The size is unchanged.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger(__name__)

_OFFSET = 8  # signed 4-bit -8..7 stored as unsigned 0..15


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return int(helper.get_attribute_value(attribute))
    return default


def _rewritable(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> bool:
    """Rows of a 2-D signed table, blocks along the row, no zero points: the quantizer's
    symmetric embedding layout, which is all this rewrite handles (others stay as they are)."""
    if node.op_type != "GatherBlockQuantized" or len(node.input) != 3:
        return False
    data, scales = initializers.get(node.input[0]), initializers.get(node.input[2])
    if data is None or scales is None or data.data_type != TensorProto.INT4:
        return False
    if len(data.dims) != 2 or _attribute(node, "gather_axis", 0) != 0:
        return False
    width, block = data.dims[1], _attribute(node, "block_size", 128)
    return (_attribute(node, "quantize_axis", 1) in (1, -1) and width % 2 == 0
            and block > 0 and width % block == 0 and list(scales.dims) == [data.dims[0],
                                                                           width // block])


def _split_nibbles(values: np.ndarray) -> np.ndarray:
    """(rows, width) signed 4-bit values -> (rows, width/2) bytes, column j low, j+width/2 high."""
    stored = (values.astype(np.int16) + _OFFSET).astype(np.uint8)
    half = stored.shape[1] // 2
    return (stored[:, :half] | (stored[:, half:] << 4)).astype(np.uint8)


def _lookup_nodes(node: onnx.NodeProto, packed: str, scales: str, blocks: int,
                  block: int, constants: dict[str, str]) -> list[onnx.NodeProto]:
    name, ids, out = node.name or node.output[0], node.input[1], node.output[0]

    def tmp(suffix: str) -> str:
        return f"{name}/nibbles/{suffix}"

    blocks_shape = tmp("blocks_shape")
    scale_shape = tmp("scale_shape")
    return [
        helper.make_node("Constant", [], [blocks_shape], value=numpy_helper.from_array(
            np.array([-1, blocks, block], np.int64))),
        helper.make_node("Constant", [], [scale_shape], value=numpy_helper.from_array(
            np.array([-1, blocks, 1], np.int64))),
        helper.make_node("Gather", [packed, ids], [tmp("bytes")], axis=0),
        helper.make_node("BitwiseAnd", [tmp("bytes"), constants["low_mask"]], [tmp("low")]),
        helper.make_node("BitShift", [tmp("bytes"), constants["four"]], [tmp("high")],
                         direction="RIGHT"),
        helper.make_node("Concat", [tmp("low"), tmp("high")], [tmp("stored")], axis=-1),
        helper.make_node("Cast", [tmp("stored")], [tmp("float")], to=TensorProto.FLOAT),
        helper.make_node("Sub", [tmp("float"), constants["offset"]], [tmp("signed")]),
        helper.make_node("Reshape", [tmp("signed"), blocks_shape], [tmp("by_block")]),
        helper.make_node("Gather", [scales, ids], [tmp("row_scales")], axis=0),
        helper.make_node("Reshape", [tmp("row_scales"), scale_shape], [tmp("block_scales")]),
        helper.make_node("Mul", [tmp("by_block"), tmp("block_scales")], [tmp("scaled")]),
        helper.make_node("Shape", [tmp("stored")], [tmp("shape")]),
        helper.make_node("Reshape", [tmp("scaled"), tmp("shape")], [out]),
    ]


def _shared_constants(graph: onnx.GraphProto) -> dict[str, str]:
    values = {"low_mask": np.array(15, np.uint8), "four": np.array(4, np.uint8),
              "offset": np.array(_OFFSET, np.float32)}
    names = {key: f"nibble_lookup/{key}" for key in values}
    graph.initializer.extend(numpy_helper.from_array(value, names[key])
                             for key, value in values.items())
    return names


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


def plain_op_4bit_lookups(model: onnx.ModelProto) -> int:
    """Replace every rewritable `GatherBlockQuantized` in `model` (in place) by the
    plain-operator lookup; returns how many were replaced. Needs opset 18+ (BitwiseAnd)."""
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    initializers = {init.name: init for init in graph.initializer}
    nodes = [_copy(n) for n in graph.node]
    targets = {i for i, n in enumerate(nodes) if _rewritable(n, initializers)}
    if not targets or opset < 18:
        return 0
    constants = _shared_constants(graph)
    packed_names: dict[str, str] = {}  # a table two lookups share is repacked once
    rewritten: list[onnx.NodeProto] = []
    for index, node in enumerate(nodes):
        if index not in targets:
            rewritten.append(node)
            continue
        data = initializers[node.input[0]]
        if data.name not in packed_names:
            packed = numpy_helper.from_array(_split_nibbles(numpy_helper.to_array(data)),
                                             data.name + "_nibbles")
            graph.initializer.remove(data)
            graph.initializer.append(packed)
            packed_names[data.name] = packed.name
        block = _attribute(node, "block_size", 128)
        rewritten.extend(_lookup_nodes(node, packed_names[data.name], node.input[2],
                                       data.dims[1] // block, block, constants))
    del graph.node[:]
    graph.node.extend(rewritten)
    log.info("quantize: %d 4-bit embedding lookup(s) in plain operators", len(targets))
    return len(targets)
