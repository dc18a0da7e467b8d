"""A pipeline file is read and checked before anything trains: every mistake in a section
is one ConfigError that names it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pipeline_config import write_config as _config

from compression.pipeline import PipelineConfig


@pytest.mark.parametrize("student, message", [
    ({"prune_only": True, "prune": {"heads": 1}}, "give 'init' and 'prune'"),
    ({"prune_only": True, "init": "l1", "prune": {"heads": 1},
      "recover": {"train": {"epochs": 1}}}, "give recover.train and recover.distill"),
    ({"prune_only": True, "init": "l1", "prune": {"heads": 1}, "train": {"epochs": 1},
      "recover": {"train": {"epochs": 1}, "distill": {}}}, r"remove \['train'\]"),
    ({"prune_only": "yes"}, "use true or false"),
])
def test_pipeline_refuses_bad_prune_only_students(tmp_path: Path, teacher_dir: Path,
                                                  toy_data: dict[str, Path], student: dict,
                                                  message: str) -> None:
    from compression.core.errors import ConfigError

    config = yaml.safe_load(_config(tmp_path, teacher_dir, toy_data["train"],
                                    toy_data["dev"]).read_text())
    config["students"].append({"name": "l1-narrow", **student})
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_dict(config)


@pytest.mark.parametrize("student, message", [
    ({"recover": {"train": {"epochs": 1}}}, "add 'prune'"),
    ({"prune": {"heads": 0}}, "heads must be >= 1"),
    ({"prune": {"heads": 1}, "recover": {"optimizer": {}}}, "unknown key"),
    ({"prune_heads": 1}, "unknown key"),
    ({"init": "l0"}, "not an earlier student"),
    ({"init": "teacher"}, "for pruning the teacher itself"),
    ({"name": "teacher"}, "names the teacher"),
])
def test_pipeline_refuses_bad_pruning_sections(tmp_path: Path, teacher_dir: Path,
                                               toy_data: dict[str, Path], student: dict,
                                               message: str) -> None:
    from compression.core.errors import ConfigError

    path = _config(tmp_path, teacher_dir, toy_data["train"], toy_data["dev"])
    config = yaml.safe_load(path.read_text())
    config["students"][0].update(student)
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_dict(config)


def test_pipeline_refuses_an_unknown_vocabulary_policy(tmp_path: Path, teacher_dir: Path,
                                                       toy_data: dict[str, Path]) -> None:
    from compression.core.errors import ConfigError

    config = yaml.safe_load(_config(tmp_path, teacher_dir, toy_data["train"],
                                     toy_data["dev"]).read_text())
    config["students"][0]["prune_vocab"] = "closest"
    with pytest.raises(ConfigError, match="one of chars, nearest"):
        PipelineConfig.from_dict(config)
    for bad, message in (({"unseen": "nearest", "min_count": 0}, "min_count"),
                         ({"unseen": "nearest", "count": 3}, r"unknown key\(s\) \['count'\]"),
                         ({"unseen": "closest"}, "one of chars, nearest")):
        config["students"][0]["prune_vocab"] = bad
        with pytest.raises(ConfigError, match=message):
            PipelineConfig.from_dict(config)
    config["students"][0]["prune_vocab"] = {"unseen": "nearest", "min_count": 3}
    student = PipelineConfig.from_dict(config).students[0]
    assert (student.prune_vocab, student.prune_vocab_min_count) == ("nearest", 3)
    assert student.prune_vocab_keep_chars
    config["students"][0]["prune_vocab"] = {"unseen": "nearest", "min_count": 3,
                                            "keep_chars": False}
    assert not PipelineConfig.from_dict(config).students[0].prune_vocab_keep_chars
    config["students"][0]["prune_vocab"] = {"unseen": "nearest", "keep_chars": "no"}
    with pytest.raises(ConfigError, match="keep_chars: use true or false"):
        PipelineConfig.from_dict(config)
    config["students"][0]["prune_vocab"] = True
    config["students"][0]["sparsity"] = {"sparsity": 1.0}
    with pytest.raises(ConfigError, match="sparsity"):
        PipelineConfig.from_dict(config)


def test_pipeline_qat_section_is_checked(tmp_path: Path, teacher_dir: Path,
                                            toy_data: dict[str, Path]) -> None:
    from compression.core.errors import ConfigError

    config = yaml.safe_load(_config(tmp_path, teacher_dir, toy_data["train"],
                                    toy_data["dev"]).read_text())
    config["students"][0]["qat"] = {}  # an empty section still asks for QAT
    assert PipelineConfig.from_dict(config).students[0].qat is not None
    config["export"] = {"optimize": True}
    with pytest.raises(ConfigError, match="optimize"):
        PipelineConfig.from_dict(config)
    config["export"] = {}
    config["students"][0]["train"]["bf16"] = True
    with pytest.raises(ConfigError, match="fp32"):
        PipelineConfig.from_dict(config)
    config["students"][0]["train"]["bf16"] = False
    config["students"][0]["sparsity"] = {"sparsity": 0.5}
    with pytest.raises(ConfigError, match=r"students\[0\]: qat and sparsity"):
        PipelineConfig.from_dict(config)
    del config["students"][0]["sparsity"]
    config["students"][0]["qat"] = {"per_chanel": True}
    with pytest.raises(ConfigError, match="qat: unknown key"):
        PipelineConfig.from_dict(config)


def test_pipeline_init_may_name_an_earlier_pruned_student(tmp_path: Path, teacher_dir: Path,
                                                          toy_data: dict[str, Path]) -> None:
    from compression.core.errors import ConfigError

    config = yaml.safe_load(_config(tmp_path, teacher_dir, toy_data["train"],
                                    toy_data["dev"]).read_text())
    config["students"][0]["prune"] = {"heads": 1, "ffn": 16}
    config["students"].append({"name": "l1-qat", "init": "l1-pruned", "qat": True})
    parsed = PipelineConfig.from_dict(config)
    assert parsed.students[1].init == "l1-pruned"
    assert parsed.students[1].qat is not None
    config["students"][1]["init"] = "l1-vocab"  # a pruned vocabulary cannot be distilled
    with pytest.raises(ConfigError, match="choose one of"):
        PipelineConfig.from_dict(config)


def test_pipeline_augment_section_is_read_and_checked(tmp_path: Path, teacher_dir: Path,
                                                      toy_data: dict[str, Path]) -> None:
    from compression.config.steps import AugmentConfig
    from compression.core.errors import ConfigError

    config = yaml.safe_load(_config(tmp_path, teacher_dir, toy_data["train"],
                                    toy_data["dev"]).read_text())
    assert PipelineConfig.from_dict(config).students[0].augment is None
    config["students"][0]["augment"] = True  # the defaults
    assert PipelineConfig.from_dict(config).students[0].augment == AugmentConfig()
    config["students"][0]["augment"] = {"copies": 2, "replace_prob": 0.4}
    assert PipelineConfig.from_dict(config).students[0].augment == AugmentConfig(
        copies=2, replace_prob=0.4)
    config["students"][0]["augment"] = {}  # an empty section still asks for augmentation
    assert PipelineConfig.from_dict(config).students[0].augment == AugmentConfig()
    config["students"][0]["augment"] = "yes"
    with pytest.raises(ConfigError, match="augment: use true, false or a mapping"):
        PipelineConfig.from_dict(config)
    config["students"][0]["augment"] = {"copies": 1.5}
    with pytest.raises(ConfigError, match="copies must be a whole number"):
        PipelineConfig.from_dict(config)
    config["students"][0]["augment"] = {"copies": 0}
    with pytest.raises(ConfigError, match="copies must be a whole number >= 1"):
        PipelineConfig.from_dict(config)
    config["students"][0]["augment"] = {"copy": 2}
    with pytest.raises(ConfigError, match="augment: unknown key"):
        PipelineConfig.from_dict(config)


@pytest.mark.parametrize("teacher, student, message", [
    ({"pretrained": "p", "candidate_seeds": [42]}, {}, "repeats a seed"),
    ({"finetuned": "t", "candidate_seeds": [7]}, {}, "use it with 'pretrained'"),
    ({"pretrained": "p", "candidate_seeds": [7], "ensemble_seeds": [8]}, {}, "use one of them"),
    ({"finetuned": "t", "ensemble_seeds": [7]}, {}, "use it with 'pretrained'"),
    ({"pretrained": "p", "ensemble_seeds": [42]}, {}, "repeats a seed"),
    ({"pretrained": "p", "ensemble_seeds": [7, 7]}, {}, "repeats a seed"),
    ({"pretrained": "p", "ensemble_seeds": "7"}, {}, "a list of whole numbers"),
    ({"pretrained": "p", "seeds": [7]}, {}, r"unknown key\(s\) \['seeds'\]"),
    ({"pretrained": "p"}, {"ensemble": True}, "add teacher.ensemble_seeds"),
    ({"pretrained": "p", "ensemble_seeds": [7]}, {"ensemble": "yes"}, "use true or false"),
])
def test_pipeline_refuses_bad_ensemble_sections(tmp_path: Path, teacher_dir: Path,
                                                toy_data: dict[str, Path], teacher: dict,
                                                student: dict, message: str) -> None:
    from compression.core.errors import ConfigError

    config = yaml.safe_load(_config(tmp_path, teacher_dir, toy_data["train"],
                                    toy_data["dev"]).read_text())
    config["teacher"] = teacher
    config["students"][0].update(student)
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_dict(config)


@pytest.mark.parametrize("value, message", [
    (2, "a list like"), ([0, 2], "whole number >= 1"), ([True], "whole number >= 1"),
])
def test_pipeline_refuses_bad_latency_threads(tmp_path: Path, teacher_dir: Path,
                                              toy_data: dict[str, Path], value: object,
                                              message: str) -> None:
    from compression.core.errors import ConfigError

    config = yaml.safe_load(_config(tmp_path, teacher_dir, toy_data["train"],
                                    toy_data["dev"]).read_text())
    config["evaluate"]["latency_threads"] = value
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_dict(config)
    config["evaluate"]["latency_threads"] = [1, 2]
    assert PipelineConfig.from_dict(config).eval_latency_threads == (1, 2)


def test_a_student_may_start_from_an_earlier_vocabulary_cut(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path]) -> None:
    from compression.core.errors import ConfigError

    config = yaml.safe_load(_config(tmp_path, teacher_dir, toy_data["train"],
                                    toy_data["dev"]).read_text())
    second = {"name": "l1-again", "init": "l1-vocab", "distill": config["students"][0]["distill"],
              "train": config["students"][0]["train"]}
    config["students"].append(second)
    with pytest.raises(ConfigError, match="not an earlier student"):
        PipelineConfig.from_dict(config)  # l1 cuts no vocabulary yet
    config["students"][0]["prune_vocab"] = {"unseen": "nearest", "min_count": 2}
    assert PipelineConfig.from_dict(config).students[1].init == "l1-vocab"
