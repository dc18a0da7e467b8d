"""Quantization-aware fine-tuning: train a student under the rounding of static INT8.

`post_training.py`'s static mode (onnxruntime QDQ) rounds, in every weight MatMul/Gemm:
- the activation going in, and the product coming out, to uint8, asymmetric, one scale
  per tensor, each range taken from calibration sentences (min-max). An encoder Linear
  exports as MatMul then Add, so its output is rounded before the bias; the pooler and
  classifier export as Gemm, rounded after it;
- the weight to int8, symmetric in [-127, 127], one scale per output channel;
and the embedding tables (Gather) like activations: uint8, asymmetric, one scale per
table, from the table's own min and max. The `static-float-outputs` layout
(`float_outputs: true`) leaves the product and the residual stream in float: with
`QatConfig(float_outputs=True)` only inputs, weights and tables are rounded.
Post-training, that rounding is a fixed error the weights never saw. Here the forward
pass applies the same rounding ("fake quantization"); gradients pass through it as if
it were the identity inside the range and zero outside (the straight-through
estimator), so training moves the weights to where rounding costs least (Jacob et al.
2018). Activation ranges start from a min-max calibration of the float model
(`calibrate_ranges`, as onnxruntime calibrates) and stay there by default, since the
exported model is calibrated the same way; `momentum > 0` makes them follow a moving
average of each batch's min/max, as PyTorch's observers do. On SST-2 (l3, one epoch)
fixed ranges gave 88.53 % in static INT8 against 87.61 % with momentum 0.01.

Not simulated: the int32 rounding of Gemm biases (below 1e-6 of a logit), and the
float32 arithmetic of onnxruntime's scales (computed in float64 here). The graph
optimizer's fused Attention nodes are not quantized by `post_training.py`, so QAT assumes an
unoptimized export (the pipeline refuses the two together). Training runs in fp32:
bf16 autocast would round between the int8 grid points.

`attach_fake_quant` wraps a model's Linear and Embedding modules in place;
`detach_fake_quant` puts the trained originals back, so the result is a plain float
checkpoint that exports to ONNX and is then statically quantized like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compression.config.steps import QatConfig
from compression.models.architectures import ADAPTERS, adapter_for

UINT8_MAX = 255
INT8_SYMMETRIC_MAX = 127  # onnxruntime's symmetric int8 leaves -128 unused


def fake_quantize_weight(weight: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """`weight` rounded to symmetric int8 and back; gradients pass straight through
    (every weight is inside its own range)."""
    # weight (out, in) for Linear, (rows, dim) for Embedding
    source = weight.float()
    if per_channel:
        scale = source.detach().abs().amax(dim=1).clamp(min=1e-8) / INT8_SYMMETRIC_MAX  # (out,)
        zero = torch.zeros_like(scale, dtype=torch.int32)
        rounded = torch.fake_quantize_per_channel_affine(
            source, scale, zero, 0, -INT8_SYMMETRIC_MAX, INT8_SYMMETRIC_MAX)
    else:
        scale = source.detach().abs().amax().clamp(min=1e-8) / INT8_SYMMETRIC_MAX
        rounded = torch.fake_quantize_per_tensor_affine(
            source, scale.reshape(1), torch.zeros(1, dtype=torch.int32, device=source.device),
            -INT8_SYMMETRIC_MAX, INT8_SYMMETRIC_MAX)
    return rounded.to(weight.dtype)


def uint8_qparams(low: float, high: float) -> tuple[float, int]:
    """onnxruntime's asymmetric uint8 scale and zero point for the range [low, high]
    (widened to include 0, so that 0 is exactly representable)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / UINT8_MAX or 1.0
    zero_point = int(round(-low / scale))
    return scale, max(0, min(UINT8_MAX, zero_point))


class ActivationFakeQuant(nn.Module):
    """Rounds a tensor to uint8 over a per-tensor range. The range is set by
    `calibrate_ranges` (min-max over float passes, as onnxruntime calibrates) and stays
    fixed unless `momentum` > 0, which makes it follow a moving average of each training
    batch's min/max."""

    def __init__(self, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum
        self.calibrating = False  # observe the float tensor's extremes, round nothing
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        if bool(self.seen) and not self.calibrating and self.momentum == 0:
            return  # fixed ranges: nothing to follow
        low, high = x.detach().min().float(), x.detach().max().float()
        if not bool(self.seen):
            self.low.copy_(low)
            self.high.copy_(high)
            self.seen.fill_(True)
        elif self.calibrating:  # min-max over everything seen
            self.low.copy_(torch.minimum(self.low, low))
            self.high.copy_(torch.maximum(self.high, high))
        else:
            self.low.lerp_(low, self.momentum)
            self.high.lerp_(high, self.momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.calibrating:
            self._observe(x)
        if self.calibrating or not bool(self.seen):
            return x
        scale, zero_point = uint8_qparams(float(self.low), float(self.high))
        return torch.fake_quantize_per_tensor_affine(
            x.float(), scale, zero_point, 0, UINT8_MAX).to(x.dtype)


class FakeQuantLinear(nn.Module):
    """A Linear whose input, weight and (unless float_outputs) output are rounded as
    static INT8 rounds them."""

    def __init__(self, linear: nn.Linear, config: QatConfig) -> None:
        super().__init__()
        self.linear = linear
        self.per_channel = config.per_channel
        self.calibrating = False
        self.input_quant = ActivationFakeQuant(config.momentum)
        self.output_quant: nn.Module = (nn.Identity() if config.float_outputs
                                        else ActivationFakeQuant(config.momentum))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.linear.weight
        if not self.calibrating:
            weight = fake_quantize_weight(weight, self.per_channel)
        x = self.input_quant(x)
        bias = self.linear.bias
        if x.dim() == 2 or bias is None:  # exported as Gemm: rounded after the bias
            return self.output_quant(F.linear(x, weight, bias))
        return self.output_quant(F.linear(x, weight)) + bias  # MatMul, rounded, then Add


def fake_quantize_table(table: torch.Tensor) -> torch.Tensor:
    """An embedding table rounded to uint8 over its own [min, max], as onnxruntime's
    static QDQ quantizer stores a Gather's table; gradients pass straight through."""
    scale, zero_point = uint8_qparams(float(table.detach().min()), float(table.detach().max()))
    return torch.fake_quantize_per_tensor_affine(
        table.float(), scale, zero_point, 0, UINT8_MAX).to(table.dtype)


class FakeQuantEmbedding(nn.Module):
    """An Embedding whose table is rounded to uint8, one scale for the table."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        self.embedding = embedding
        self.calibrating = False

    @property
    def weight(self) -> torch.Tensor:
        """The float table, for a model that reads it whole instead of looking rows up
        (DeBERTa's relative-position embeddings): no Gather reads it in the exported
        graph, so static INT8 leaves it float too."""
        return self.embedding.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.embedding
        table = e.weight if self.calibrating else fake_quantize_table(e.weight)
        return F.embedding(ids, table, e.padding_idx, e.max_norm, e.norm_type,
                           e.scale_grad_by_freq, e.sparse)


@torch.no_grad()
def calibrate_ranges(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> int:
    """Set every activation range to the min and max of the float model's activations
    over `batches`, nothing rounded: what onnxruntime's min-max calibration computes.
    QAT then starts from the ranges the exported model will be calibrated to. Returns
    the number of batches seen."""
    wrappers = [m for m in model.modules() if isinstance(m, _CALIBRATED)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    for module in wrappers:
        module.calibrating = True
        if isinstance(module, ActivationFakeQuant):
            module.seen.fill_(False)  # forget earlier ranges
    try:
        count = 0
        for batch in batches:
            model(**{k: v.to(device) for k, v in batch.items()})
            count += 1
    finally:
        for module in wrappers:
            module.calibrating = False
        model.train(was_training)
    return count


class FakeQuantOutput(nn.Module):
    """A module (a LayerNorm) whose output is rounded for every consumer: onnxruntime
    quantizes a tensor once, so a residual branch reads the same rounded values as the
    MatMuls it feeds."""

    def __init__(self, module: nn.Module, config: QatConfig) -> None:
        super().__init__()
        self.module = module
        self.output_quant = ActivationFakeQuant(config.momentum)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.output_quant(self.module(*args, **kwargs))


def _shared_tensors(model: nn.Module) -> list[tuple[nn.Module, str, list[nn.Module]]]:
    """The tensors that feed weight MatMuls and a residual Add, as the model's
    architecture adapter names them; none for a model that has no adapter's config."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in ADAPTERS:
        return []
    return adapter_for(model).shared_activations(model)


def attach_fake_quant(model: nn.Module, config: QatConfig) -> int:
    """Wrap every Linear (and Embedding, if configured) of `model` in place; returns how
    many were wrapped. In an encoder the LayerNorm outputs are rounded where they
    are made, for the residual branch too (see `FakeQuantOutput`), unless the config
    simulates the float-outputs layout. Attention score
    products are not touched: static INT8 leaves activation-by-activation MatMuls in
    float too."""
    # In the float-outputs layout a residual branch reads the float tensor; each MatMul
    # rounds its own input (readers of one tensor share its calibrated range, so its grid).
    shared = [] if config.float_outputs else _shared_tensors(model)
    targets = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children()
               if isinstance(child, nn.Linear)
               or (config.quantize_embeddings and isinstance(child, nn.Embedding))]
    for parent, name, child in targets:
        wrapped = (FakeQuantLinear(child, config) if isinstance(child, nn.Linear)
                   else FakeQuantEmbedding(child))
        setattr(parent, name, wrapped)
    for parent, name, readers in shared:
        setattr(parent, name, FakeQuantOutput(getattr(parent, name), config))
        for linear in readers:  # its input is already rounded, on the same grid
            _wrapper_of(model, linear).input_quant = nn.Identity()
    return len(targets)


def _wrapper_of(model: nn.Module, linear: nn.Module) -> FakeQuantLinear:
    return next(m for m in model.modules()
                if isinstance(m, FakeQuantLinear) and m.linear is linear)


def detach_fake_quant(model: nn.Module) -> int:
    """Put the wrapped (trained) modules back; returns how many Linear and Embedding
    modules were unwrapped."""
    targets = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children()
               if isinstance(child, _MODULE_WRAPPERS)]
    for parent, name, child in targets:
        original = (child.linear if isinstance(child, FakeQuantLinear)
                    else child.embedding if isinstance(child, FakeQuantEmbedding)
                    else child.module)
        setattr(parent, name, original)
    return sum(not isinstance(child, FakeQuantOutput) for _, _, child in targets)


# What `detach_fake_quant` undoes, and what `calibrate_ranges` switches to float.
_MODULE_WRAPPERS = (FakeQuantLinear, FakeQuantEmbedding, FakeQuantOutput)
_CALIBRATED = (ActivationFakeQuant, *_MODULE_WRAPPERS)
