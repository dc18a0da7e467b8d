"""Students built from a teacher: which layers are copied, and which shapes are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import build_classifier

from compression.config.steps import DistillConfig
from compression.core.errors import ConfigError, ModelError
from compression.models.loading import labels_of, load_classifier
from compression.models.students import count_parameters, evenly_spaced_layers, make_student
from compression.training.distill import layer_map


@pytest.fixture(scope="module")
def teacher4(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A random 4-layer tiny classifier (weights differ layer to layer)."""
    folder = build_classifier(tmp_path_factory.mktemp("teacher4") / "model", layers=4, seed=3)
    return load_classifier(str(folder))


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_evenly_spaced_layers() -> None:
    assert evenly_spaced_layers(6, 3) == [0, 2, 4]
    assert evenly_spaced_layers(12, 4) == [0, 3, 6, 9]
    assert evenly_spaced_layers(4, 4) == [0, 1, 2, 3]
    assert evenly_spaced_layers(2, 1) == [0]
    with pytest.raises(ConfigError):
        evenly_spaced_layers(2, 3)
    with pytest.raises(ConfigError):
        evenly_spaced_layers(2, 0)


@pytest.mark.parametrize("layers", [[1, 3], [0, 2], [3], [0, 1, 2, 3]])
def test_student_layers_are_the_chosen_teacher_layers(teacher4, layers: list[int]) -> None:
    student = make_student(teacher4, layers=layers)
    assert student.config.num_hidden_layers == len(layers)
    assert len(student.bert.encoder.layer) == len(layers)
    for s_index, t_index in enumerate(layers):
        assert _same(student.bert.encoder.layer[s_index], teacher4.bert.encoder.layer[t_index])
        # ...and not merely any teacher layer: the others differ (random weights).
        for other in set(range(4)) - {t_index}:
            assert not _same(student.bert.encoder.layer[s_index],
                             teacher4.bert.encoder.layer[other])
    assert _same(student.bert.embeddings, teacher4.bert.embeddings)
    assert _same(student.bert.pooler, teacher4.bert.pooler)
    assert _same(student.classifier, teacher4.classifier)
    assert labels_of(student) == labels_of(teacher4)
    assert count_parameters(student) <= count_parameters(teacher4)


def test_default_student_takes_evenly_spaced_layers(teacher4) -> None:
    student = make_student(teacher4, num_layers=2)
    assert _same(student.bert.encoder.layer[0], teacher4.bert.encoder.layer[0])
    assert _same(student.bert.encoder.layer[1], teacher4.bert.encoder.layer[2])
    half = make_student(teacher4)  # no count: half the teacher's depth
    assert half.config.num_hidden_layers == 2


def test_student_of_two_layer_teacher_copies_both(teacher_dir: Path) -> None:
    teacher = load_classifier(str(teacher_dir))
    student = make_student(teacher, layers=[0, 1])
    assert _same(student, teacher)
    batch = {"input_ids": torch.tensor([[2, 10, 20, 3]]),
             "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        torch.testing.assert_close(student.eval()(**batch).logits, teacher.eval()(**batch).logits)


def test_student_does_not_share_tensors_with_teacher(teacher4) -> None:
    student = make_student(teacher4, layers=[0])
    with torch.no_grad():
        student.bert.encoder.layer[0].output.dense.weight.add_(1.0)
    assert not _same(student.bert.encoder.layer[0], teacher4.bert.encoder.layer[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_layers": 5},  # deeper than the 4-layer teacher
        {"layers": [0, 1, 2, 3, 3]},
        {"layers": [0, 4]},  # index out of range
        {"layers": [-1]},
        {"layers": [0, 1], "num_layers": 3},  # count and list disagree
        {"num_layers": 1, "hidden_size": 18, "num_heads": 4},  # 18 % 4 != 0
    ],
)
def test_impossible_students_are_refused(teacher4, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        make_student(teacher4, **kwargs)


def test_narrower_student_has_requested_width(teacher4) -> None:
    student = make_student(teacher4, num_layers=1, hidden_size=16, num_heads=2)
    assert student.config.hidden_size == 16
    assert student.config.num_attention_heads == 2
    assert student.config.num_hidden_layers == 1
    assert student.config.intermediate_size == 64
    assert student.bert.embeddings.word_embeddings.weight.shape == (
        teacher4.config.vocab_size, 16)
    assert student.classifier.out_features == teacher4.config.num_labels
    assert labels_of(student) == labels_of(teacher4)
    assert count_parameters(student) < count_parameters(teacher4) / 2
    logits = student(input_ids=torch.tensor([[2, 10, 3]])).logits
    assert logits.shape == (1, 2)


def test_distill_config_checks_layer_list() -> None:
    with pytest.raises(ConfigError, match="num_layers"):
        DistillConfig(num_layers=2, layers=(0,))
    with pytest.raises(ConfigError):
        DistillConfig(alpha_ce=0, alpha_kl=0)
    with pytest.raises(ConfigError):
        DistillConfig(hidden_size=4)
    assert DistillConfig(num_layers=2, layers=[0, 2]).layers == (0, 2)  # type: ignore[arg-type]


def test_layer_map_is_tinybert_uniform() -> None:
    assert layer_map(1, 2) == [0, 2]
    assert layer_map(3, 6) == [0, 2, 4, 6]
    assert layer_map(2, 2) == [0, 1, 2]


def test_load_classifier_refuses_non_bert(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ModelError, match="gpt2"):
        load_classifier(str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="config.json"):
        load_classifier(str(empty))
