"""Distillation for every supported model type: a same-width student starts from the
teacher's own weights (DistilBERT-style), a narrower one learns through TinyBERT's losses
and a projection, low-rank embeddings export as two factors, and quantization-aware
training yields a model that quantizes like any other."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from arch_chain import LABELS, MAX_LENGTH, Chain
from tiny_architectures import ARCHITECTURES
from transformers import AutoTokenizer

from compression.config.steps import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    QatConfig,
    QuantConfig,
    SparsityConfig,
    TrainConfig,
)
from compression.exporting.steps import export_step, quantize_step
from compression.models.architectures import adapter_for
from compression.models.loading import load_classifier
from compression.models.students import make_student
from compression.pruning.tokenizer_models import whole_words
from compression.training.augment import augmented_texts_for
from compression.training.distill import distill

SHORT = TrainConfig(max_steps=4, learning_rate=1e-3, batch_size=16, warmup=0.0, seed=0)


def _data(chain: Chain) -> DataConfig:
    names = dict(pair.split("=") for pair in LABELS.split(","))
    return DataConfig(train=str(chain.train), dev=str(chain.dev), label_names=names,
                      max_length=MAX_LENGTH)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_same_width_student_starts_from_the_teachers_weights(arch: str,
                                                               chain: Chain) -> None:
    teacher = load_classifier(str(chain.teacher(arch)))
    student = make_student(teacher, layers=[1])
    adapter = adapter_for(teacher)
    assert type(student) is type(teacher)
    assert adapter.shape(student.config).num_layers == 1
    layer, source = adapter.layers(student)[0], adapter.layers(teacher)[1].state_dict()
    for name, value in layer.state_dict().items():
        assert value.equal(source[name]), name
    in_layer = {id(p) for p in layer.parameters()}
    # Everything else (embeddings, relative-position tables, pooler, head) is the teacher's.
    outside = [(n, p) for n, p in student.named_parameters() if id(p) not in in_layer]
    assert len(outside) > 4
    for name, value in outside:
        assert value.equal(teacher.get_parameter(name)), name


def _initializer_shapes(path: Path) -> list[tuple[int, ...]]:
    return [tuple(init.dims) for init in onnx.load(str(path)).graph.initializer]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_narrower_sparse_low_rank_student_learns_through_a_projection(
        arch: str, chain: Chain, tmp_path: Path, texts: dict[str, list[str]]) -> None:
    """TinyBERT's hidden-state and attention losses (through the projection to the
    teacher's width; attention maps averaged over the differing heads), with the word
    embeddings trained as two rank-8 factors, which the ONNX file then holds, and half
    the encoder's weights magnitude-pruned on the way."""
    config = DistillConfig(num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32,
                           alpha_cos=0.5, alpha_hidden=1.0, alpha_attention=1.0)
    result = distill(str(chain.teacher(arch)), _data(chain), SHORT, config,
                     tmp_path / "student", embedding_rank=8,
                     sparsity=SparsityConfig(sparsity=0.5, every=1))
    student = load_classifier(result["model_dir"])
    shape = adapter_for(student).shape(student.config)
    assert (shape.hidden_size, shape.num_heads, shape.num_layers) == (16, 2, 1)
    assert result["student_parameters"] < result["teacher_parameters"]
    assert result["embedding_rank"] == 8
    assert result["sparsity"]["sparsity"] == pytest.approx(0.5, abs=0.01)  # encoder Linears
    width = student.get_input_embeddings().weight.shape[1]  # ELECTRA's may be narrower
    exported = export_step(Path(result["model_dir"]), tmp_path / "onnx", texts["dev"],
                           MAX_LENGTH)
    shapes = _initializer_shapes(tmp_path / "onnx" / "model.onnx")
    assert (shape.vocab_size, 8) in shapes and (8, width) in shapes
    assert (shape.vocab_size, width) not in shapes
    assert exported["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_quantization_aware_training_quantizes_like_any_model(
        arch: str, chain: Chain, tmp_path: Path, texts: dict[str, list[str]]) -> None:
    result = distill(str(chain.teacher(arch)), _data(chain), SHORT, DistillConfig(num_layers=1),
                     tmp_path / "qat", student_ref=str(chain.student(arch)),
                     quantization_aware=QatConfig())
    assert result["dev_metrics_of"] == "simulated static INT8"
    model_dir = Path(result["model_dir"])
    assert "FakeQuant" not in str(load_classifier(str(model_dir)))  # a plain float model
    export_step(model_dir, tmp_path / "onnx", texts["dev"], MAX_LENGTH)
    quantized = quantize_step(tmp_path / "onnx", tmp_path / "int8", QuantConfig.preset("static"),
                              texts["train"][:64], texts["dev"][:16], MAX_LENGTH)
    assert quantized["agreement"] >= 0.8


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_augmentation_finds_whole_words_in_every_vocabulary(
        arch: str, chain: Chain, texts: dict[str, list[str]]) -> None:
    """Word-swapped copies of the toy sentences, with neighbours from each teacher's own
    embeddings, change more than a sentence's first word."""
    teacher = load_classifier(str(chain.teacher(arch)))
    vocab = AutoTokenizer.from_pretrained(str(chain.teacher(arch))).get_vocab()
    sources = texts["train"][:20]
    copies = augmented_texts_for(sources, teacher.get_input_embeddings().weight.detach(),
                                 whole_words(vocab), AugmentConfig(copies=1))
    # Not just a sentence's first word, which byte-level BPE holds unmarked.
    later = [c.split()[1:] != s.split()[1:] for c, s in zip(copies, sources, strict=True)]
    assert sum(later) >= 10


def test_whole_words_are_found_behind_word_start_marks() -> None:
    """Byte-level BPE and SentencePiece hold a mid-sentence word as "Ġgood" or "▁good";
    an unmarked entry, where there is one, stays what it was."""
    vocab = {"\u0120good": 5, "the": 1, "\u2581film": 7, "film": 3, "##s": 9, "\u2581": 2}
    assert whole_words(vocab) == {**vocab, "good": 5}
