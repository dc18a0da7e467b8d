"""Rewrites of onnxruntime's static QDQ graph for the `float_outputs` layout: INT8 only
inside the weight MatMuls.

onnxruntime's quantizer puts one QuantizeLinear/DequantizeLinear pair on a tensor that a
weight MatMul reads, and every other reader of that tensor gets the rounded copy too.
In a BERT layer those readers are the residual connection (the LayerNorm output goes
both into the next MatMul and around it) and a Shape. Rounding the residual stream to
uint8 costs accuracy and buys nothing, since the Add runs in float anyway.

`remove_output_rounding` drops the QuantizeLinear/DequantizeLinear pair after each
weight MatMul/Gemm of a graph quantized with output rounding (the `static` preset), so
an existing static model can take this layout without being quantized again.
`unround_other_readers` points those readers back at the float tensor.
`fuse_integer_matmuls` folds each remaining
QuantizeLinear -> DequantizeLinear -> MatMul <- DequantizeLinear(int8 weight) -> Add(bias)
into one com.microsoft MatMulIntegerToFloat: uint8 input times int8 weight, rescaled to
float with the bias added in the same kernel. onnxruntime's CPU provider already makes
MatMulIntegerToFloat out of this pattern when it loads the graph, but it leaves the
bias Add, and its DequantizeLinear, as separate nodes. A batch-1 call on a small
student is mostly per-node overhead, so fewer nodes means a faster call.

None of the rewrites changes a scale. The activation scales stay the calibrated constants,
so an answer still does not depend on its batch. MatMulIntegerToFloat is a CPU kernel
of onnxruntime; another provider runs those nodes on the CPU.
"""

from __future__ import annotations

from collections import defaultdict

import onnx
from onnx import helper

CONTRIB_DOMAIN = "com.microsoft"
WEIGHT_OPS = ("MatMul", "Gemm")


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {output: node for node in graph.node for output in node.output}


def _readers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    return readers


def _rounded_activation(dq: onnx.NodeProto | None,
                        producers: dict[str, onnx.NodeProto]) -> onnx.NodeProto | None:
    """The QuantizeLinear whose output `dq` dequantizes, if `dq` is one."""
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producers.get(dq.input[0])
    return q if q is not None and q.op_type == "QuantizeLinear" else None


def unround_other_readers(model: onnx.ModelProto) -> int:
    """Where a weight MatMul/Gemm reads a rounded activation, its other readers read the
    float tensor instead. Returns how many inputs were repointed."""
    graph = model.graph
    producers, readers = _producers(graph), _readers(graph)
    moved = 0
    for dq in graph.node:
        q = _rounded_activation(dq, producers)
        if q is None or not any(r.op_type in WEIGHT_OPS for r in readers[dq.output[0]]):
            # Not a MatMul's input: e.g. an embedding Gather's output, whose QDQ pair lets
            # onnxruntime gather from the INT8 table instead of dequantizing all of it.
            continue
        for reader in readers[dq.output[0]]:
            if reader.op_type in WEIGHT_OPS:
                continue
            for index, name in enumerate(reader.input):
                if name == dq.output[0]:
                    reader.input[index] = q.input[0]
                    moved += 1
    return moved


def _drop_unread(graph: onnx.GraphProto) -> None:
    """Remove nodes whose outputs nobody reads, then initializers nobody reads."""
    outputs = {o.name for o in graph.output}
    while True:
        read = {name for node in graph.node for name in node.input} | outputs
        unread = [n for n in graph.node if not any(o in read for o in n.output)]
        if not unread:
            break
        for node in unread:
            graph.node.remove(node)
    for init in [i for i in graph.initializer if i.name not in read]:
        graph.initializer.remove(init)


def _weight_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """MatMul/Gemm nodes whose second input is a dequantized initializer."""
    weights = {init.name for init in graph.initializer}
    producers = _producers(graph)
    return [n for n in graph.node if n.op_type in WEIGHT_OPS
            and (dq := producers.get(n.input[1])) is not None
            and dq.op_type == "DequantizeLinear" and dq.input[0] in weights]


def remove_output_rounding(model: onnx.ModelProto) -> int:
    """Drop the QuantizeLinear -> DequantizeLinear pair(s) that round a weight MatMul's
    or Gemm's output; their readers read the float output. Returns how many
    DequantizeLinear nodes went."""
    graph = model.graph
    readers = _readers(graph)
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    pairs: list[onnx.NodeProto] = []
    for node in _weight_nodes(graph):
        after = readers[node.output[0]]
        if len(after) != 1 or after[0].op_type != "QuantizeLinear":
            continue
        dqs = readers[after[0].output[0]]
        if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs) \
                or after[0].output[0] in outputs:
            continue
        if any(r.op_type in WEIGHT_OPS for d in dqs for r in readers[d.output[0]]):
            continue  # the rounded output is another weight MatMul's INT8 input: keep it
        graph_output = [d.output[0] for d in dqs if d.output[0] in outputs]
        if graph_output:  # the logits: the Gemm now writes the graph output itself
            node.output[0] = graph_output[0]
        rename.update({d.output[0]: node.output[0] for d in dqs})
        pairs += [after[0], *dqs]
    for node in pairs:
        graph.node.remove(node)
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in rename:
                node.input[index] = rename[name]
    _drop_unread(graph)
    return len(rename)


def _fusable_shapes(dq_input: onnx.NodeProto, dq_weight: onnx.NodeProto,
                    weights: dict[str, onnx.TensorProto]) -> bool:
    """MatMulIntegerToFloat takes a 2-D weight (K, N) with one scale or one per column,
    and one scale for the input: what the quantizer writes for a per-tensor activation
    and a per-channel (axis 1) or per-tensor weight."""
    weight = weights[dq_weight.input[0]]
    weight_scale = weights.get(dq_weight.input[1])
    input_scale = weights.get(dq_input.input[1])
    if len(weight.dims) != 2 or weight_scale is None or input_scale is None:
        return False
    axis = next((a.i for a in dq_weight.attribute if a.name == "axis"), 1)
    per_column = list(weight_scale.dims) == [weight.dims[1]] and axis in (1, -1)
    return (per_column or len(weight_scale.dims) == 0) and len(input_scale.dims) == 0


def fuse_integer_matmuls(model: onnx.ModelProto) -> int:
    """Fold Q -> DQ -> MatMul <- DQ(weight) -> Add(bias) into MatMulIntegerToFloat.
    Returns the number of MatMuls fused."""
    graph = model.graph
    producers, readers = _producers(graph), _readers(graph)
    weights = {init.name: init for init in graph.initializer}
    fused: list[tuple[onnx.NodeProto, onnx.NodeProto]] = []  # (new node, node it replaces)
    for matmul in graph.node:
        if matmul.op_type != "MatMul":
            continue
        dq_input, dq_weight = (producers.get(name) for name in matmul.input)
        q = _rounded_activation(dq_input, producers)
        if q is None or dq_weight is None or dq_weight.op_type != "DequantizeLinear":
            continue
        if dq_weight.input[0] not in weights or len(readers[dq_weight.output[0]]) != 1:
            continue
        if not _fusable_shapes(dq_input, dq_weight, weights):
            continue
        after = readers[matmul.output[0]]
        if len(after) != 1 or after[0].op_type != "Add":
            continue
        add = after[0]
        bias = [name for name in add.input if name != matmul.output[0]]
        if len(bias) != 1 or bias[0] not in weights or len(weights[bias[0]].dims) != 1:
            continue
        assert dq_input is not None
        node = helper.make_node(
            "MatMulIntegerToFloat",
            # A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias
            [dq_input.input[0], dq_weight.input[0], dq_input.input[1], dq_weight.input[1],
             dq_input.input[2] if len(dq_input.input) > 2 else "",
             dq_weight.input[2] if len(dq_weight.input) > 2 else "", bias[0]],
            [add.output[0]], name=f"{matmul.name}_integer", domain=CONTRIB_DOMAIN,
        )
        fused.append((node, add))
    for node, add in fused:
        # In the Add's place: everything the fused node reads is computed before the
        # MatMul, so the graph stays topologically sorted.
        graph.node.insert(list(graph.node).index(add), node)
        graph.node.remove(add)
    if fused:
        _drop_unread(graph)  # the MatMuls and their weight DequantizeLinears
        if not any(o.domain == CONTRIB_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    return len(fused)


def int8_inside_matmuls_only(model: onnx.ModelProto) -> dict[str, int]:
    """All three rewrites, in order; how many places each changed."""
    return {"outputs_unrounded": remove_output_rounding(model),
            "readers_unrounded": unround_other_readers(model),
            "matmuls_fused": fuse_integer_matmuls(model)}
