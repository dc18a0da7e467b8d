"""ONNX export and quantization of every supported model type: the graph takes
token_type_ids only where the model uses them, its logits match PyTorch's (plain and
after onnxruntime's optimizer), every quantization preset keeps the fp32 model's
answers, and the float-outputs rewrite finds every weight MatMul by graph structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from arch_chain import MAX_LENGTH, Chain
from tiny_architectures import ARCHITECTURES
from transformers import AutoTokenizer

from compression.config.steps import QUANT_PRESETS, QuantConfig
from compression.exporting.onnx_export import onnx_logits
from compression.exporting.steps import export_step, float_outputs_step, quantize_step
from compression.models.architectures import adapter_for
from compression.models.loading import load_classifier

TOKEN_TYPES = {"bert", "electra"}  # the tiny deberta-v2 has type_vocab_size 0


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_onnx_logits_match_pytorch(arch: str, chain: Chain, tmp_path: Path,
                                   texts: dict[str, list[str]]) -> None:
    teacher = chain.teacher(arch)
    model = load_classifier(str(teacher)).eval()
    # Padded by the model's own tokenizer, with its own pad id (RoBERTa's and MPNet's
    # position ids count from it).
    batch = AutoTokenizer.from_pretrained(str(teacher))(
        texts["dev"][:16], padding=True, truncation=True, max_length=MAX_LENGTH,
        return_tensors="np")
    names = adapter_for(model).input_names(model.config)
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in batch.items()
                            if k in names}).logits.numpy()
    assert set(expected.argmax(-1)) == {0, 1}  # a trained model: parity means something
    for optimize in (False, True):
        out = tmp_path / f"optimize-{optimize}"
        export_step(teacher, out, texts["dev"], MAX_LENGTH, optimize=optimize)
        session = ort.InferenceSession(str(out / "model.onnx"),
                                       providers=["CPUExecutionProvider"])
        inputs = [i.name for i in session.get_inputs()]
        assert inputs == ["input_ids", "attention_mask"] + (
            ["token_type_ids"] if arch in TOKEN_TYPES else [])
        got = onnx_logits(session, dict(batch))
        assert np.abs(got - expected).max() < 1e-4, (optimize, np.abs(got - expected).max())


def _ops(path: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_quantization_preset_agrees_with_fp32(arch: str, chain: Chain, tmp_path: Path,
                                                    texts: dict[str, list[str]]) -> None:
    fp32 = tmp_path / "fp32"
    export_step(chain.student(arch), fp32, texts["dev"], MAX_LENGTH)
    check = texts["dev"][:8]
    for preset in QUANT_PRESETS:
        result = quantize_step(fp32, tmp_path / preset, QuantConfig.preset(preset),
                               texts["train"][:32], check, MAX_LENGTH)
        assert result["agreement"] >= 0.8, (preset, result["agreement"])
        assert result["size_after_bytes"] < result["size_before_bytes"], preset
    # One encoder layer: q, k, v, attention output, FFN in and out are weight MatMuls.
    assert _ops(tmp_path / "static-float-outputs" / "model.onnx").count(
        "MatMulIntegerToFloat") >= 6
    rewritten = float_outputs_step(tmp_path / "static", tmp_path / "rewritten", check,
                                   MAX_LENGTH)
    assert rewritten["matmuls_fused"] >= 6
    assert rewritten["agreement_with_source"] >= 0.8
