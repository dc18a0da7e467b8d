"""Validated, frozen configurations of every compression step.

A config has no side effects: it creates no folders and never changes mid-run. Invalid
values raise `ConfigError` from `__post_init__` with a message that names the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compression.config.checks import as_number as _number
from compression.config.checks import require as _require
from compression.config.presets import CALIBRATIONS, QUANT_PRESETS
from compression.config.pruning import PRUNE_SCOPES, PruneConfig  # noqa: F401 (re-exported)
from compression.core.digest import config_fields
from compression.core.errors import ConfigError
from inference.qa import WindowSettings

# data.task: None (a label per text), tagged sentences, or questions with answer spans.
DATA_TASKS = (None, "token-classification", "question-answering")


@dataclass(frozen=True)
class DataConfig:
    train: str
    dev: str | None = None  # None: carve dev out of train (dev_fraction)
    text_column: str = "sentence"
    label_column: str = "label"
    # Display names for raw label values, e.g. {"0": "negative", "1": "positive"}.
    label_names: dict[str, str] = field(default_factory=dict)
    max_length: int = 64
    limit_train: int | None = None  # use only the first N training rows (smoke runs)
    limit_dev: int | None = None
    # No dev file: this fraction of train, stratified by label, drawn with dev_seed
    # (core.data.carve_dev), is the dev split, and the rest trains.
    dev_fraction: float | None = None
    dev_seed: int = 0
    # Each row holds any number of labels, comma-separated names (sigmoid heads, BCE).
    multi_label: bool = False
    # The labels, one a line, in the head's order; a data label it lacks is an error.
    labels_file: str | None = None
    # "token-classification": tagged sentences (core.conll), one tag a word; None: a
    # label per text (sequence classification, single- or multi-label).
    task: str | None = None
    # Token data only: "conll" or "jsonl"; None: from the file's suffix (.jsonl: JSONL).
    format: str | None = None
    # question-answering only (inference.qa.WindowSettings): windows share `doc_stride`
    # tokens; a question keeps `max_question_length` tokens; an answer is at most
    # `max_answer_length` tokens, among the `n_best` best starts and ends of a window.
    doc_stride: int = 128
    max_question_length: int = 64
    max_answer_length: int = 30
    n_best: int = 20

    # Joined the reuse key after runs existed: hashed only when set (core.digest).
    ADDED_LATER = ("dev_fraction", "dev_seed", "multi_label", "labels_file", "task", "format",
                   "doc_stride", "max_question_length", "max_answer_length", "n_best")

    def __post_init__(self) -> None:
        _require(8 <= self.max_length <= 512, f"max_length must be 8..512, got {self.max_length}")
        for name in ("limit_train", "limit_dev"):
            value = getattr(self, name)
            _require(value is None or value > 0, f"{name} must be positive, got {value}")
        if self.dev_fraction is not None:
            object.__setattr__(self, "dev_fraction", _number(self.dev_fraction, "dev_fraction"))
        _require((self.dev is None) != (self.dev_fraction is None),
                 "data: give a dev file (dev, --dev) or carve one from train (dev_fraction, "
                 "--dev-fraction 0.1), not both" if self.dev is not None
                 else "data: no dev split: give a dev file (dev, --dev) or carve one from "
                 "train (dev_fraction, --dev-fraction 0.1)")
        _require(self.dev_fraction is None or 0 < self.dev_fraction < 1,
                 f"dev_fraction must be in (0, 1), got {self.dev_fraction}")
        _require(isinstance(self.multi_label, bool),
                 f"multi_label must be true or false, got {self.multi_label!r}")
        _require(self.task in DATA_TASKS,
                 f"data.task: {self.task!r} is not a task; use token-classification, "
                 "question-answering or leave it out (a label per text)")
        _require(self.format in (None, "conll", "jsonl"),
                 f"data.format: {self.format!r}; use conll or jsonl")
        _require(self.format is None or self.task == "token-classification",
                 "data.format is for task: token-classification")
        _require(self.task is None or not self.multi_label,
                 f"data: {self.task} is not multi_label")
        if self.task == "question-answering":
            self.window_settings()  # a ConfigError when the windows cannot work

    def window_settings(self) -> WindowSettings:
        """How question-answering reads a context and searches its answer."""
        try:
            return WindowSettings(self.max_length, self.doc_stride, self.max_question_length,
                                  self.max_answer_length, self.n_best)
        except ValueError as exc:
            raise ConfigError(f"data: {exc}") from exc

    def digest_fields(self) -> dict[str, Any]:
        """The fields a step's reuse key hashes (see ADDED_LATER)."""
        return config_fields(self, added_later=self.ADDED_LATER)


# `epochs: auto`, `calibration_size: auto`: the number follows the data (config/scaling.py).
AUTO = "auto"


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings shared by fine-tuning and distillation."""

    # Or AUTO: resolved when the step knows its training set (config.scaling.epochs_for).
    epochs: float | str = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    warmup: float = 0.06  # fraction of all steps
    weight_decay: float = 0.01
    seed: int = 42
    max_steps: int = -1  # > 0 overrides epochs (smoke runs)
    # bfloat16 autocast (master weights stay fp32): about 2x faster training on CPUs with
    # AVX512-BF16/AMX and on GPUs; slow on CPUs without bf16 units.
    bf16: bool = False

    def __post_init__(self) -> None:
        # YAML gives "2" for 2.0 and a string for "5e-5": normalise so digests match.
        auto = isinstance(self.epochs, str) and self.epochs.strip().lower() == AUTO
        # One spelling of auto, so that an `auto` config has one digest.
        object.__setattr__(self, "epochs", AUTO if auto else _number(self.epochs,
                                                                     f"epochs (or {AUTO})"))
        for name in ("learning_rate", "warmup", "weight_decay"):
            object.__setattr__(self, name, _number(getattr(self, name), name))
        _require(auto or self.epochs > 0, f"epochs must be > 0 or {AUTO}, got {self.epochs}")
        _require(0 < self.learning_rate < 1, f"learning_rate must be in (0, 1), got "
                 f"{self.learning_rate}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(0 <= self.warmup < 1, f"warmup is a fraction of steps in [0, 1), got "
                 f"{self.warmup}")


@dataclass(frozen=True)
class DistillConfig:
    """Student shape and the weights of the distillation loss terms.

    loss = alpha_ce * CE(labels) + alpha_kl * T^2 * KL(student/T || teacher/T)
         + alpha_cos * (1 - cos(hidden states))
         + alpha_hidden * MSE(mapped hidden states) + alpha_attention * MSE(attention maps)
    The last two are TinyBERT's intermediate-layer losses.
    """

    num_layers: int = 3
    layers: tuple[int, ...] | None = None  # teacher layers to copy; default evenly spaced
    hidden_size: int | None = None  # narrower student, randomly initialised
    num_heads: int | None = None
    intermediate_size: int | None = None
    temperature: float = 2.0
    alpha_ce: float = 0.5
    alpha_kl: float = 0.5
    alpha_cos: float = 0.0
    alpha_hidden: float = 0.0
    alpha_attention: float = 0.0
    cache_teacher_logits: bool = True

    def __post_init__(self) -> None:
        for name in ("temperature", "alpha_ce", "alpha_kl", "alpha_cos", "alpha_hidden",
                     "alpha_attention"):
            object.__setattr__(self, name, _number(getattr(self, name), name))
        _require(self.num_layers >= 1, f"num_layers must be >= 1, got {self.num_layers}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
            _require(len(self.layers) == self.num_layers,
                     f"layers {list(self.layers)} must list num_layers={self.num_layers} indices")
        _require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        weights = [self.alpha_ce, self.alpha_kl, self.alpha_cos, self.alpha_hidden,
                   self.alpha_attention]
        _require(all(w >= 0 for w in weights), "loss weights must be >= 0")
        _require(sum(weights) > 0, "at least one loss weight (alpha_*) must be > 0")
        _require(self.hidden_size is None or self.hidden_size >= 8,
                 f"hidden_size must be >= 8, got {self.hidden_size}")

    @property
    def needs_teacher_states(self) -> bool:
        return self.alpha_cos > 0 or self.alpha_hidden > 0 or self.alpha_attention > 0


@dataclass(frozen=True)
class AugmentConfig:
    """TinyBERT-style augmentation for distillation (training/augment.py): `copies` variants of
    every training sentence, each whole word swapped with probability `replace_prob` for
    one of its `candidates` nearest words in the teacher's input embeddings. The variants
    train on the teacher's outputs only (no hard label)."""

    copies: int = 1
    replace_prob: float = 0.3
    candidates: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "replace_prob", _number(self.replace_prob, "replace_prob"))
        _require(isinstance(self.copies, int) and self.copies >= 1,
                 f"copies must be a whole number >= 1, got {self.copies}")
        _require(0 < self.replace_prob <= 1,
                 f"replace_prob must be in (0, 1], got {self.replace_prob}")
        _require(isinstance(self.candidates, int) and self.candidates >= 1,
                 f"candidates must be a whole number >= 1, got {self.candidates}")


# What vocabulary pruning does with a dropped token (see `pruning.vocabulary`).
UNSEEN_POLICIES = ("chars", "nearest")


@dataclass(frozen=True)
class QuantConfig:
    """Post-training quantization.

    mode:
    - "static": INT8 weights and activations, activation scales calibrated once
      (`calibration_method` over `calibration_size` training texts). Batch-invariant.
    - "dynamic": INT8 weights, activation scales computed per call over the whole batch
      tensor, so an answer can depend on what it is batched with.
    - "weight-only": `bits`-bit block-wise weights (onnxruntime MatMulNBits), activations
      quantized per row and block at run time (`accuracy_level` 4 = INT8 compute), so each
      token's row is independent of the others: batch-invariant.
    Presets: `static`, `static-int4-embeddings`, `static-float-outputs`,
    `static-float-outputs-int4-embeddings`, `dynamic`,
    `dynamic-per-channel`, `weight-only-int8`, `weight-only-int4`.
    """

    mode: str = "static"
    per_channel: bool = True
    calibration_method: str = "minmax"  # static only: minmax, entropy, percentile
    calibration_size: int = 512
    quantize_embeddings: bool = True
    bits: int = 8  # weight-only only: 4 or 8
    block_size: int = 32  # weight-only only
    accuracy_level: int = 4  # weight-only only: 4 = INT8 activations, 0 = fp32
    # Embedding tables at 8 bits (INT8 with the rest) or 4 (block-wise, GatherBlockQuantized):
    # the word embeddings are most of a small student's bytes.
    embedding_bits: int = 8
    # static only: INT8 inside the weight MatMuls only. Each weight MatMul/Gemm's output
    # stays float instead of being rounded to uint8, and the tensors the MatMuls read are
    # rounded for them alone: the residual connections read the float values
    # (quantization/qdq_graph.py). Each MatMul and its bias become one MatMulIntegerToFloat, a CPU
    # kernel of onnxruntime. The inputs keep their calibrated scales, so answers stay
    # batch-invariant. QAT (quantization/qat.py) simulates `static`, all its roundings included.
    float_outputs: bool = False

    def __post_init__(self) -> None:
        _require(self.mode in ("dynamic", "static", "weight-only"),
                 f"mode must be static, dynamic or weight-only, got {self.mode!r}")
        _require(self.calibration_method in CALIBRATIONS,
                 f"calibration_method must be minmax, entropy or percentile, got "
                 f"{self.calibration_method!r}")
        _require(self.calibration_size >= 1, "calibration_size must be >= 1")
        _require(self.bits in (4, 8), f"bits must be 4 or 8, got {self.bits}")
        _require(self.embedding_bits in (4, 8),
                 f"embedding_bits must be 4 or 8, got {self.embedding_bits}")
        _require(self.block_size >= 16 and self.block_size & (self.block_size - 1) == 0,
                 f"block_size must be a power of two >= 16, got {self.block_size}")
        _require(not self.float_outputs or self.mode == "static",
                 "float_outputs applies to mode static only")
        _require(self.accuracy_level in (0, 1, 2, 3, 4),
                 f"accuracy_level must be 0..4, got {self.accuracy_level}")

    @classmethod
    def preset(cls, name: str) -> QuantConfig:
        """The named preset of `QUANT_PRESETS`."""
        if name not in QUANT_PRESETS:
            raise ConfigError(
                f"unknown quantization preset {name!r}; choose from {sorted(QUANT_PRESETS)}"
            )
        return cls(**QUANT_PRESETS[name])


SPARSITY_SCOPES = ("global", "per-layer")


@dataclass(frozen=True)
class SparsityConfig:
    """Unstructured magnitude pruning.

    sparsity: target fraction of zero weights among the prunable matrices, in [0, 1).
    scope: "global" ranks all prunable weights together (matrices that matter less lose
    more), "per-layer" removes the same fraction from every matrix.
    start, end: fractions of the training steps over which sparsity ramps up (cubic);
    from `end` on the target holds, so the last steps fine-tune the final mask.
    every: re-rank and re-prune every N optimizer steps (and at the last one).
    include_embeddings: also prune the word-embedding matrix (a large share of a small
    student's weights).
    """

    sparsity: float
    scope: str = "global"
    start: float = 0.0
    end: float = 0.7
    every: int = 50
    include_embeddings: bool = False

    def __post_init__(self) -> None:
        # YAML gives "0.5" or 1 as readily as 0.5 and 1.0: normalise so digests match.
        for name in ("sparsity", "start", "end"):
            object.__setattr__(self, name, _number(getattr(self, name), name))
        _require(0 <= self.sparsity < 1,
                 f"sparsity is the fraction of weights set to zero, in [0, 1), got "
                 f"{self.sparsity}")
        _require(self.scope in SPARSITY_SCOPES,
                 f"scope must be global or per-layer, got {self.scope!r}")
        _require(0 <= self.start <= self.end <= 1,
                 f"start and end are fractions of the training steps with 0 <= start <= end "
                 f"<= 1, got start={self.start}, end={self.end}")
        every = self.every
        if isinstance(every, str) and every.strip().isdigit():
            every = int(every)
        _require(isinstance(every, int) and not isinstance(every, bool) and every >= 1,
                 f"every must be a whole number of steps >= 1, got {self.every!r}")
        object.__setattr__(self, "every", every)
        _require(isinstance(self.include_embeddings, bool),
                 f"include_embeddings must be true or false, got {self.include_embeddings!r}")


@dataclass(frozen=True)
class QatConfig:
    """What to simulate. The defaults mirror the `int8-static` preset."""

    per_channel: bool = True  # one weight scale per output channel, as `per_channel: true`
    quantize_embeddings: bool = True  # round the embedding tables too
    # The `static-float-outputs` layout (`float_outputs: true`): only each weight MatMul's
    # input and weight are rounded; its output, and the residual stream, stay float.
    float_outputs: bool = False
    # Weight of each training batch in the activation range average; 0 keeps the ranges
    # of the starting calibration fixed, matching the min-max calibration of the export.
    momentum: float = 0.0

    def __post_init__(self) -> None:
        try:
            momentum = float(self.momentum)  # YAML reads 1e-2 as a string
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"qat momentum must be a number, got {self.momentum!r}") from exc
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"qat momentum must be in [0, 1], got {self.momentum}")
        object.__setattr__(self, "momentum", momentum)

    def digest_fields(self) -> dict[str, Any]:
        """The fields a step's reuse key hashes: `float_outputs` only when set, so that
        runs from before the option keep their digest."""
        return config_fields(self, added_later=("float_outputs",))


def check_qat_training(train: TrainConfig, sparsity: SparsityConfig | None,
                       embedding_rank: int | None = None) -> None:
    """Refuse what QAT cannot train with; the pipeline calls it while reading its config,
    `distill` before loading anything (and again with the loaded student's rank)."""
    if train.bf16:
        raise ConfigError("qat: train in fp32 (bf16: false); bf16 would round the "
                          "simulated INT8 values again, off the int8 grid")
    if sparsity is not None:
        raise ConfigError("qat and sparsity in one run are not supported: distil with "
                          "sparsity first, then run qat from that student")
    if embedding_rank is not None:
        # attach_fake_quant rounds nn.Embedding tables; a factorised table's projection
        # MatMul would be quantized in the export without having trained under rounding.
        raise ConfigError(f"qat does not simulate a low-rank embedding table (rank "
                          f"{embedding_rank}): train without qat, or qat without a rank")
