"""INT8: the file shrinks, predictions agree with fp32, only weight MatMuls are
quantized, and static INT8 answers a text the same alone or in any batch."""

from __future__ import annotations

import collections
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tiny_models import build_classifier, toy_sentences

from compression.config.steps import DataConfig, QuantConfig, TrainConfig
from compression.core.errors import ConfigError, ModelError
from compression.exporting.onnx_export import onnx_logits
from compression.exporting.steps import ONNX_FILE, TOKENIZER_FILE, export_step, quantize_step
from compression.quantization.post_training import weight_node_names
from compression.tasks.encoding import BatchEncoder
from compression.training.finetune import finetune

LAYERS = 2
MAX_LENGTH = 32


@pytest.fixture(scope="module")
def wide_onnx(tmp_path_factory: pytest.TempPathFactory, toy_data: dict[str, Path],
              dev_texts: list[str]) -> Path:
    """A 128-wide, 2-layer teacher fine-tuned on the toy task and exported: wide enough
    that its weights, not the graph's bookkeeping, dominate the file."""
    work = tmp_path_factory.mktemp("wide")
    encoder = build_classifier(work / "encoder", labels=("0", "1"), layers=LAYERS,
                               hidden=128, heads=2, seed=5)
    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=MAX_LENGTH)
    result = finetune(str(encoder), data, TrainConfig(epochs=6, learning_rate=1e-3,
                                                      batch_size=16, warmup=0.0, seed=0),
                      work / "teacher")
    assert result["dev_accuracy"] >= 0.95
    export_step(Path(result["model_dir"]), work / "fp32", dev_texts, MAX_LENGTH)
    return work / "fp32"


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory, wide_onnx: Path,
              dev_texts: list[str]) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("int8")
    calibration, _ = toy_sentences(64, seed=1)
    check, _ = toy_sentences(100, seed=9)
    return {
        mode: quantize_step(wide_onnx, out / mode, QuantConfig.preset(mode), calibration,
                            check, MAX_LENGTH)
        for mode in ("static", "static-int4-embeddings", "static-float-outputs",
                     "static-float-outputs-int4-embeddings", "dynamic", "weight-only-int8",
                     "weight-only-int4")
    }


def _ops(path: str | Path) -> collections.Counter:
    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("preset", ["static", "static-int4-embeddings", "static-float-outputs",
                                    "static-float-outputs-int4-embeddings",
                                    "dynamic", "weight-only-int8", "weight-only-int4"])
def test_quantized_agrees_with_fp32(quantized: dict[str, dict], preset: str) -> None:
    result = quantized[preset]
    assert result["agreement"] >= 0.9
    assert result["config"] == asdict(QuantConfig.preset(preset))
    folder = Path(result["model_path"]).parent
    assert {p.name for p in folder.iterdir()} == {ONNX_FILE, TOKENIZER_FILE, "result.json"}


def test_static_int8_is_at_least_3x_smaller(quantized: dict[str, dict]) -> None:
    result = quantized["static"]
    assert result["size_after_bytes"] == Path(result["model_path"]).stat().st_size
    assert result["size_before_bytes"] >= 3 * result["size_after_bytes"]


def test_dynamic_int8_is_smaller(quantized: dict[str, dict]) -> None:
    result = quantized["dynamic"]
    assert result["size_before_bytes"] >= 2.5 * result["size_after_bytes"]


def test_static_graph_is_qdq_and_leaves_attention_scores_in_float(
    quantized: dict[str, dict],
) -> None:
    model = onnx.load(quantized["static"]["model_path"])
    ops = _ops(quantized["static"]["model_path"])
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    float_matmuls = [
        node.name for node in model.graph.node
        if node.op_type == "MatMul"
        and not any(producer.get(i) == "DequantizeLinear" for i in node.input)
    ]
    # Q.K^T and softmax.V in each layer: activation x activation, kept in float.
    assert len(float_matmuls) == 2 * LAYERS
    assert ops["MatMul"] - len(float_matmuls) == 6 * LAYERS  # Q, K, V, out, FFN in, FFN out
    gemms = [node for node in model.graph.node if node.op_type == "Gemm"]
    assert len(gemms) == 2  # pooler and classifier, weights through DequantizeLinear
    assert all(producer.get(node.input[1]) == "DequantizeLinear" for node in gemms)


def _weight_matmul_consumers(path: str | Path) -> dict[str, list[str]]:
    """For each weight MatMul/Gemm (a weight through DequantizeLinear), the op types that
    read its output."""
    model = onnx.load(str(path))
    initializers = {init.name for init in model.graph.initializer}
    dequantized_weights = {n.output[0] for n in model.graph.node
                           if n.op_type == "DequantizeLinear" and n.input[0] in initializers}
    readers: dict[str, list[str]] = collections.defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            readers[name].append(node.op_type)
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    chosen = [n for n in model.graph.node
              if n.op_type in ("MatMul", "Gemm") and n.input[1] in dequantized_weights]
    # The activation side is quantized with its calibrated scale in both presets.
    assert all(producer.get(n.input[0]) == "DequantizeLinear" for n in chosen)
    return {n.name: readers[n.output[0]] for n in chosen}


def test_float_outputs_keeps_int8_inside_the_weight_matmuls(quantized: dict[str, dict]) -> None:
    rounded = _weight_matmul_consumers(quantized["static"]["model_path"])
    assert len(rounded) == 6 * LAYERS + 2  # and pooler + classifier Gemm
    assert all("QuantizeLinear" in readers for readers in rounded.values())

    path = quantized["static-float-outputs"]["model_path"]
    model = onnx.load(path)
    # Each weight MatMul, with its bias Add, is one MatMulIntegerToFloat: uint8 input
    # (a calibrated QuantizeLinear), int8 weight, float output; the Gemms keep QDQ.
    ops = _ops(path)
    assert ops["MatMulIntegerToFloat"] == 6 * LAYERS
    assert ops["MatMul"] == 2 * LAYERS  # only the attention-score MatMuls, in float
    unrounded = _weight_matmul_consumers(path)
    assert len(unrounded) == 2 and not any("QuantizeLinear" in r for r in unrounded.values())
    initializers = {init.name: init for init in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.op_type == "MatMulIntegerToFloat":
            assert node.domain == "com.microsoft"
            assert producer[node.input[0]].op_type == "QuantizeLinear"
            assert initializers[node.input[1]].data_type == onnx.TensorProto.INT8
            assert node.input[6] in initializers  # the bias
    # Where a weight Gemm reads a rounded activation, nothing else does: the residual
    # connections read the float tensor. (The embedding Gathers' outputs keep their QDQ
    # pair: onnxruntime then gathers rows of the INT8 table.)
    gathered = 0
    for node in model.graph.node:
        source = producer.get(node.input[0]) if node.input else None
        if node.op_type == "DequantizeLinear" and source and source.op_type == "QuantizeLinear":
            readers = {n.op_type for n in model.graph.node if node.output[0] in n.input}
            if not readers <= {"MatMul", "Gemm"}:
                assert not readers & {"MatMul", "Gemm"}, readers
                assert producer[source.input[0]].op_type == "Gather"
                gathered += 1
    assert gathered == 3  # word, position and token-type embeddings
    # The weights are still INT8: no bigger than static (only output scales are gone).
    sizes = [quantized[p]["size_after_bytes"] for p in ("static-float-outputs", "static")]
    assert 0.9 * sizes[1] <= sizes[0] <= sizes[1]


def test_dynamic_graph_quantizes_weight_matmuls_only(quantized: dict[str, dict]) -> None:
    model = onnx.load(quantized["dynamic"]["model_path"])
    ops = _ops(quantized["dynamic"]["model_path"])
    assert ops["DynamicQuantizeLinear"] > 0
    assert ops["MatMulInteger"] >= 6 * LAYERS
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    attention = [n for n in model.graph.node
                 if n.op_type == "MatMul" and "Softmax" in {producer.get(i) for i in n.input}]
    assert len(attention) == LAYERS  # softmax(QK^T).V stays a float MatMul


def test_dynamic_graph_leaves_no_float_weight_matmul(quantized: dict[str, dict]) -> None:
    """The pooler's and classifier's Gemm are quantized too (the CLI promises "weight
    MatMuls, Gemm and the embedding Gather"). The dynamic quantizer rewrites each Gemm as
    MatMul + Add, so the nodes to quantize must follow that rename."""
    model = onnx.load(quantized["dynamic"]["model_path"])
    initializers = {init.name for init in model.graph.initializer}
    float_weight = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm")
                    and any(i in initializers for i in n.input)]
    assert float_weight == []


def test_weight_only_graph_uses_block_quantized_matmuls(quantized: dict[str, dict]) -> None:
    for preset in ("weight-only-int8", "weight-only-int4"):
        model = onnx.load(quantized[preset]["model_path"])
        ops = _ops(quantized[preset]["model_path"])
        assert ops["MatMulNBits"] == 6 * LAYERS, preset
        producer = {out: node.op_type for node in model.graph.node for out in node.output}
        attention = [n for n in model.graph.node
                     if n.op_type == "MatMul" and "Softmax" in {producer.get(i) for i in n.input}]
        assert len(attention) == LAYERS, preset
    assert ops["BitShift"] >= 1 and ops["GatherBlockQuantized"] == 0  # int4 embeddings
    result = quantized["weight-only-int4"]
    assert result["size_before_bytes"] >= 3 * result["size_after_bytes"]


def test_static_with_4bit_embeddings_is_qdq_plus_block_quantized_gather(
        quantized: dict[str, dict]) -> None:
    ops = _ops(quantized["static-int4-embeddings"]["model_path"])
    # The 4-bit tables are looked up in plain operators (nibble_lookup), not the contrib op.
    assert ops["BitShift"] >= 1 and ops["GatherBlockQuantized"] == 0
    assert ops["DequantizeLinear"] >= 6 * LAYERS  # the INT8 weight MatMuls are still there
    static = _ops(quantized["static"]["model_path"])
    assert static["BitShift"] == 0
    assert (quantized["static-int4-embeddings"]["size_after_bytes"]
            < quantized["static"]["size_after_bytes"])


def test_float_outputs_with_4bit_embeddings_has_both(quantized: dict[str, dict]) -> None:
    both = quantized["static-float-outputs-int4-embeddings"]
    ops = _ops(both["model_path"])
    assert ops["MatMulIntegerToFloat"] == 6 * LAYERS and ops["BitShift"] >= 1
    assert both["size_after_bytes"] < quantized["static-float-outputs"]["size_after_bytes"]


def test_weight_node_names_skips_activation_matmuls(wide_onnx: Path) -> None:
    model = onnx.load(str(wide_onnx / ONNX_FILE))
    initializers = {init.name for init in model.graph.initializer}
    constants = {out for node in model.graph.node if node.op_type == "Constant"
                 for out in node.output}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    chosen = set(weight_node_names(model, ("MatMul",)))
    assert len(chosen) == 6 * LAYERS
    assert len(matmuls) - len(chosen) == 2 * LAYERS
    for node in matmuls:
        has_weight = any(i in initializers for i in node.input)
        assert (node.name in chosen) == has_weight, node.name
        if node.name not in chosen:  # both inputs computed at run time
            assert not any(i in initializers or i in constants for i in node.input)
    assert len(weight_node_names(model, ("Gemm",))) == 2  # pooler and classifier
    assert weight_node_names(model, ("Softmax",)) == []


@pytest.mark.parametrize("preset", ["static", "static-int4-embeddings", "static-float-outputs",
                                    "static-float-outputs-int4-embeddings",
                                    "weight-only-int8", "weight-only-int4"])
def test_batch_invariant_presets(quantized: dict[str, dict], preset: str) -> None:
    """One text gives the same logits alone and inside a padded batch of longer texts
    (static: fixed activation scales; weight-only: per-row activation quantization)."""
    folder = Path(quantized[preset]["model_path"]).parent
    session = ort.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    encoder = BatchEncoder(folder / TOKENIZER_FILE, MAX_LENGTH)
    text = "good film"
    longer = [
        "the story was really very boring and the plot was a mess , not fun at all",
        "it is the best movie , the actor was wonderful and the film was lovely",
        "this was quite a dull film with a weak story but a charming actor",
    ]
    alone = onnx_logits(session, encoder([text]))[0]
    for position in range(len(longer) + 1):
        texts = longer[:position] + [text] + longer[position:]
        batch = encoder(texts)
        assert batch["attention_mask"][position].sum() < batch["attention_mask"].shape[1]
        np.testing.assert_allclose(onnx_logits(session, batch)[position], alone, atol=1e-5)


def test_quantize_step_reuses_finished_result(quantized: dict[str, dict], wide_onnx: Path) -> None:
    result = quantized["dynamic"]
    target = Path(result["model_path"])
    mtime = target.stat().st_mtime_ns
    check, _ = toy_sentences(100, seed=9)
    again = quantize_step(wide_onnx, target.parent, QuantConfig.preset("dynamic"),
                          toy_sentences(64, seed=1)[0], check, MAX_LENGTH)
    assert again == result
    assert target.stat().st_mtime_ns == mtime


def test_quantize_step_needs_an_exported_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="export"):
        quantize_step(tmp_path, tmp_path / "out", QuantConfig.preset("dynamic"), [], ["x"], 32)


def test_quant_config_presets_and_validation() -> None:
    assert QuantConfig.preset("static").mode == "static"
    assert QuantConfig.preset("dynamic").per_channel is False
    assert QuantConfig.preset("dynamic-per-channel").per_channel is True
    with pytest.raises(ConfigError, match="preset"):
        QuantConfig.preset("int4")
    with pytest.raises(ConfigError):
        QuantConfig(mode="fp16")
    with pytest.raises(ConfigError):
        QuantConfig(calibration_method="magic")
    with pytest.raises(ConfigError, match="float_outputs"):
        QuantConfig(mode="dynamic", float_outputs=True)


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_calibration_handles_sentences_of_different_lengths(
    tmp_path: Path, wide_onnx: Path, method: str
) -> None:
    # Calibration batches of different sequence lengths once crashed the histogram
    # calibrators ("inhomogeneous shape"); they are padded to one length now.
    short, _ = toy_sentences(20, seed=3)
    calibration = short + [" ".join([text] * 3) for text in short]  # two length regimes
    check, _ = toy_sentences(50, seed=4)
    config = QuantConfig(mode="static", calibration_method=method, calibration_size=40)
    result = quantize_step(wide_onnx, tmp_path / method, config, calibration, check, MAX_LENGTH)
    assert result["agreement"] >= 0.9
    assert _ops(result["model_path"])["QuantizeLinear"] > 0


def test_float_outputs_step_gives_a_static_model_the_preset_s_layout(
    quantized: dict[str, dict], tmp_path: Path, dev_texts: list[str],
) -> None:
    from compression.exporting.steps import float_outputs_step

    static = Path(quantized["static"]["model_path"]).parent
    result = float_outputs_step(static, tmp_path / "fo", dev_texts, MAX_LENGTH)
    assert result["outputs_unrounded"] >= 6 * LAYERS + 2  # every weight MatMul and Gemm
    assert result["matmuls_fused"] == 6 * LAYERS
    assert result["agreement_with_source"] >= 0.9
    # The same graph, op for op, as quantizing the fp32 model with the preset.
    assert _ops(result["model_path"]) == _ops(quantized["static-float-outputs"]["model_path"])
    # ... and the same INT8 weights as the source: no bigger.
    assert result["size_bytes"] <= quantized["static"]["size_after_bytes"]

    with pytest.raises(ModelError, match="must not be the source"):
        float_outputs_step(static, static, dev_texts, MAX_LENGTH)
    with pytest.raises(ModelError, match="no static INT8"):
        float_outputs_step(Path(quantized["dynamic"]["model_path"]).parent, tmp_path / "bad",
                           dev_texts, MAX_LENGTH)
