"""PyTorch classifier -> ONNX, graph optimisation, and an output parity check.

The TorchScript exporter (`dynamo=False`) is used on purpose: onnxruntime's transformer
optimizer fuses attention on its graph but not on the dynamo exporter's
(docs/experiments/sst2.md, findings).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.transformers.optimizer import optimize_model

from compression.core.errors import ParityError
from compression.models.architectures import adapter_for
from compression.models.low_rank import factorized_copy
from compression.models.outputs import is_per_token, output_logits

log = logging.getLogger(__name__)

INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]  # at most these, in order
OPSET = 17


class _LogitsOnly(torch.nn.Module):
    """The classifier as a function of its encoder inputs, positionally, returning logits."""

    def __init__(self, inner: torch.nn.Module, input_names: list[str]) -> None:
        super().__init__()
        self.inner = inner
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return output_logits(self.inner(**dict(zip(self.input_names, inputs, strict=True))))


def export_onnx(model: torch.nn.Module, out_path: Path, opset: int = OPSET) -> Path:
    """Export a BERT-family sequence classifier with dynamic batch and sequence axes.
    The graph takes the inputs its architecture reads (`token_type_ids` only where the
    model uses token types), in INPUT_NAMES' order."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # A student trained with low-rank embeddings is exported as its two factors.
    model = factorized_copy(model.eval().to("cpu"))
    # Eager attention exports as plain MatMul/Softmax, which the optimizer can fuse.
    model.config._attn_implementation = "eager"
    names = adapter_for(model).input_names(model.config)
    dummy = torch.ones(2, 8, dtype=torch.long)
    examples = {"input_ids": dummy, "attention_mask": torch.ones_like(dummy),
                "token_type_ids": torch.zeros_like(dummy)}
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names}
    # A token classifier's logits are per token: (batch, sequence, n_tags); a QA head's
    # start and end logits are one output too, (batch, sequence, 2).
    dynamic["logits"] = {0: "batch", 1: "sequence"} if is_per_token(model) else {0: "batch"}
    # In eval mode: the exporter restores the wrapper's mode afterwards, and a wrapper in
    # training mode would leave `model` training too (dropout on).
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LogitsOnly(model, names).eval(),
            tuple(examples[name] for name in names),
            str(out_path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=dynamic,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(out_path))
    return out_path


def optimize_onnx(in_path: Path, out_path: Path, num_heads: int, hidden_size: int,
                  model_type: str) -> Path:
    """Fuse attention, LayerNorm and GELU with onnxruntime's transformer optimizer
    (`model_type`: the optimizer's name for the architecture, from its adapter)."""
    optimized = optimize_model(
        str(in_path),
        model_type=model_type,
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=1,
        use_gpu=False,
    )
    optimized.save_model_to_file(str(out_path))
    counts = optimized.get_fused_operator_statistics()
    log.info("optimizer fusions: %s", {k: v for k, v in counts.items() if v})
    return Path(out_path)


def onnx_logits(session: ort.InferenceSession, batch: dict[str, np.ndarray]) -> np.ndarray:
    """Run an ONNX classifier on a tokenized batch, feeding only the inputs it declares."""
    wanted = {i.name for i in session.get_inputs()}
    feed = {k: v.astype(np.int64) for k, v in batch.items() if k in wanted}
    return session.run(["logits"], feed)[0]


def check_parity(
    model: torch.nn.Module,
    onnx_path: Path,
    batches: list[dict[str, np.ndarray]],
    tolerance: float = 1e-3,
) -> float:
    """Max |ONNX - PyTorch| over the logits of `batches`; ParityError above `tolerance`."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model = model.eval()
    names = adapter_for(model).input_names(model.config)  # what the model reads
    worst = 0.0
    with torch.no_grad():
        for batch in batches:
            inputs = {k: torch.from_numpy(v) for k, v in batch.items() if k in names}
            expected = output_logits(model(**inputs)).numpy()
            got = onnx_logits(session, batch)
            worst = max(worst, float(np.abs(expected - got).max()))
    if worst > tolerance:
        raise ParityError(
            f"{onnx_path}: ONNX logits differ from PyTorch by {worst:.3g} "
            f"(tolerance {tolerance:g})"
        )
    return worst
