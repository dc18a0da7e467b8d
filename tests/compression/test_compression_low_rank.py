"""Low-rank word embeddings: trained as two factors, saved as a plain BERT checkpoint of
that rank, exported as the two factors, kept through a second distillation and through
vocabulary pruning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from compression.config.steps import DataConfig, DistillConfig, TrainConfig
from compression.core.errors import ConfigError
from compression.exporting.steps import ONNX_FILE, export_step
from compression.models.loading import load_classifier
from compression.models.low_rank import (
    LowRankEmbedding,
    factorize_word_embeddings,
    factorized_copy,
    merge_word_embeddings,
    rank_of,
)
from compression.pipeline import PipelineConfig
from compression.quantization.qat import QatConfig
from compression.training.distill import distill

RANK = 8  # the tiny models are 32 wide


def _table(model: torch.nn.Module) -> torch.Tensor:
    return model.bert.embeddings.word_embeddings.weight.detach()


def test_factorised_table_is_the_truncated_svd_and_merges_back_to_that_rank(
        teacher_dir: Path) -> None:
    model = load_classifier(str(teacher_dir))
    full = _table(model).clone()
    factorize_word_embeddings(model, RANK)
    low_rank = model.bert.embeddings.word_embeddings
    assert isinstance(low_rank, LowRankEmbedding)
    assert low_rank.table.shape == (full.shape[0], RANK)
    assert low_rank.projection.shape == (RANK, full.shape[1])
    assert rank_of(model) == RANK

    merge_word_embeddings(model)
    merged = _table(model)
    assert isinstance(model.bert.embeddings.word_embeddings, torch.nn.Embedding)
    assert int(torch.linalg.matrix_rank(merged)) == RANK
    # Eckart-Young: no rank-8 matrix is closer to the table than its truncated SVD.
    s = torch.linalg.svdvals(full)
    assert float(torch.linalg.norm(full - merged)) == pytest.approx(
        float(torch.sqrt((s[RANK:] ** 2).sum())), rel=1e-3)


@pytest.mark.parametrize("rank", [0, 32, 40])
def test_a_rank_outside_one_to_hidden_minus_one_is_refused(teacher_dir: Path,
                                                           rank: int) -> None:
    with pytest.raises(ConfigError, match="embedding rank must be in"):
        factorize_word_embeddings(load_classifier(str(teacher_dir)), rank)


def test_refactorising_a_merged_model_gives_the_same_logits(teacher_dir: Path,
                                                          dev_texts: list[str]) -> None:
    from compression.models.loading import load_tokenizer

    model = load_classifier(str(teacher_dir)).eval()
    factorize_word_embeddings(model, RANK)
    merge_word_embeddings(model)
    copy = factorized_copy(model)
    assert isinstance(copy.bert.embeddings.word_embeddings, LowRankEmbedding)
    assert isinstance(model.bert.embeddings.word_embeddings, torch.nn.Embedding), (
        "the export copy changed the model it was made from")
    batch = load_tokenizer(str(teacher_dir))(dev_texts[:8], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(copy(**batch).logits, model(**batch).logits, atol=1e-5)
    plain = load_classifier(str(teacher_dir))
    assert factorized_copy(plain) is plain, "a model without a rank was copied"


def _data(toy_data: dict[str, Path]) -> DataConfig:
    return DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=32,
                      limit_train=64, limit_dev=16)


@pytest.fixture(scope="module")
def low_rank_student(tmp_path_factory: pytest.TempPathFactory, teacher_dir: Path,
                     toy_data: dict[str, Path]) -> dict:
    out = tmp_path_factory.mktemp("low-rank")
    return distill(str(teacher_dir), _data(toy_data), TrainConfig(max_steps=3, batch_size=16),
                   DistillConfig(num_layers=1), out / "student", cache_dir=out / "cache",
                   embedding_rank=RANK)


def test_distillation_with_a_rank_saves_a_plain_checkpoint_of_that_rank(
        low_rank_student: dict) -> None:
    model = load_classifier(low_rank_student["model_dir"])
    assert rank_of(model) == RANK
    assert int(torch.linalg.matrix_rank(_table(model))) <= RANK
    assert low_rank_student["embedding_rank"] == RANK


def test_a_second_distillation_keeps_the_rank(tmp_path: Path, teacher_dir: Path,
                                              toy_data: dict[str, Path],
                                              low_rank_student: dict) -> None:
    again = distill(str(teacher_dir), _data(toy_data),
                    TrainConfig(max_steps=2, batch_size=16, learning_rate=1e-2),
                    DistillConfig(), tmp_path / "again", cache_dir=tmp_path / "cache",
                    student_ref=low_rank_student["model_dir"])
    model = load_classifier(again["model_dir"])
    before = load_classifier(low_rank_student["model_dir"])
    assert not torch.equal(_table(model), _table(before)), "the table did not train"
    assert int(torch.linalg.matrix_rank(_table(model))) <= RANK


def test_the_onnx_file_holds_the_two_factors_and_matches_pytorch(
        tmp_path: Path, low_rank_student: dict, dev_texts: list[str]) -> None:
    from compression.pruning.vocabulary import prune_vocabulary

    # Vocabulary pruning keeps rows, so the rank, and the export factorises the result.
    pruned = prune_vocabulary(Path(low_rank_student["model_dir"]), tmp_path / "vocab",
                              dev_texts)
    model = load_classifier(pruned["model_dir"])
    vocab, hidden = _table(model).shape
    result = export_step(Path(pruned["model_dir"]), tmp_path / "onnx", dev_texts, 32)
    shapes = {tuple(numpy_helper.to_array(t).shape)
              for t in onnx.load(str(tmp_path / "onnx" / ONNX_FILE)).graph.initializer}
    assert (vocab, RANK) in shapes and (RANK, hidden) in shapes
    assert (vocab, hidden) not in shapes, "the full table was exported"
    assert result["max_abs_diff"] < 1e-4
    assert np.isfinite(result["max_abs_diff"])


def test_distillation_refuses_a_rank_of_zero(tmp_path: Path, teacher_dir: Path,
                                             toy_data: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="embedding rank must be in"):
        distill(str(teacher_dir), _data(toy_data), TrainConfig(max_steps=1), DistillConfig(),
                tmp_path / "out", student_ref=str(teacher_dir), embedding_rank=0)


def test_qat_refuses_a_low_rank_table_asked_for_or_inherited(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        low_rank_student: dict) -> None:
    # QAT rounds nn.Embedding tables only: the factorised table's projection would be
    # quantized without having trained under rounding.
    fp32 = TrainConfig(max_steps=1, bf16=False)
    with pytest.raises(ConfigError, match="qat does not simulate a low-rank"):
        distill(str(teacher_dir), _data(toy_data), fp32, DistillConfig(num_layers=1),
                tmp_path / "asked", quantization_aware=QatConfig(), embedding_rank=RANK)
    with pytest.raises(ConfigError, match=f"low-rank embedding table \\(rank {RANK}\\)"):
        distill(str(teacher_dir), _data(toy_data), fp32, DistillConfig(),
                tmp_path / "inherited", quantization_aware=QatConfig(),
                student_ref=low_rank_student["model_dir"])
    assert not (tmp_path / "inherited" / "model").exists()


def _pipeline_config(tmp_path: Path, rank: object, **student: object) -> dict:
    return {"name": "x", "work_dir": str(tmp_path), "registry": str(tmp_path / "models"),
            "data": {"train": "t.tsv", "dev": "d.tsv"},
            "teacher": {"finetuned": "teacher"},
            "students": [{"name": "s", "embedding_rank": rank, **student,
                          "distill": {"num_layers": 1}, "train": {"epochs": 1, "bf16": False}}],
            "quantize": [{"name": "int8", "mode": "static"}],
            "register": {"variants": ["s-int8"], "max_drop": 100}}


def test_pipeline_refuses_qat_on_a_low_rank_student(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"students\[0\]: qat does not simulate"):
        PipelineConfig.from_dict(_pipeline_config(tmp_path, 64, qat=True))
    config = _pipeline_config(tmp_path, 64)
    config["students"].append({"name": "q", "init": "s", "qat": True,
                               "train": {"epochs": 1, "bf16": False}})
    with pytest.raises(ConfigError, match=r"students\[1\]: qat does not simulate.*'s' has"):
        PipelineConfig.from_dict(config)
    # A student started from a low-rank one keeps its rank, so QAT after it is refused too.
    config["students"].insert(1, {"name": "t", "init": "s", "train": {"epochs": 1}})
    config["students"][2]["init"] = "t"
    with pytest.raises(ConfigError, match=r"students\[2\]: qat does not simulate.*'t' has"):
        PipelineConfig.from_dict(config)
    config["students"][0].pop("embedding_rank")  # the same chain without a rank is fine
    assert PipelineConfig.from_dict(config).students[2].qat is not None


def test_pipeline_reads_embedding_rank_and_refuses_a_bad_one(tmp_path: Path) -> None:
    def config(rank: object) -> dict:
        return _pipeline_config(tmp_path, rank)

    assert PipelineConfig.from_dict(config(64)).students[0].embedding_rank == 64
    for bad in (0, "many", True, 1.5):
        with pytest.raises(ConfigError, match=r"students\[0\].embedding_rank"):
            PipelineConfig.from_dict(config(bad))
