"""Defaults that scale with the data (issue 27): a vocabulary threshold given as a
coverage of the training tokens, `epochs: auto` and `calibration_size: auto`. A number
tuned on SST-2's 67k sentences must not silently misfit a 5k-sentence set."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest
from tiny_models import build_classifier, build_tokenizer, toy_sentences, write_toy_tsv

from compression.cli.main import build_parser, main
from compression.config.scaling import (
    AUTO,
    CALIBRATION_SENTENCES,
    MAX_EPOCHS,
    MIN_EPOCHS,
    calibration_size,
    calibration_size_for,
    epochs_for,
    resolve_epochs,
)
from compression.config.steps import DataConfig, DistillConfig, TrainConfig
from compression.core.digest import config_digest
from compression.core.errors import ConfigError
from compression.pipeline import Pipeline, PipelineConfig
from compression.pruning.token_counts import count_threshold, covered_share, token_counts
from compression.pruning.tokenizer_models import special_tokens
from compression.pruning.vocabulary import kept_token_ids, prune_vocabulary

os.environ.setdefault("OMP_NUM_THREADS", "1")

TOKENIZER = build_tokenizer()
DATA = TOKENIZER.to_str()
# The ones pruning always keeps: [UNK] and the post-processor's [CLS] and [SEP] here.
SPECIAL_IDS = special_tokens(json.loads(DATA))[1]
# Word counts a threshold can be read off: 40 + 40 + 20 + 10 + 5 + 3 + 1 + 1 = 120 uses.
COUNTED = {"good": 40, "film": 40, "bad": 20, "plot": 10, "dull": 5, "fun": 3, "mess": 1,
           "story": 1}
COUNTED_TEXTS = [word for word, n in COUNTED.items() for _ in range(n)]


def _counts(texts: list[str]) -> dict[int, int]:
    return token_counts(json.loads(DATA), texts, SPECIAL_IDS)


def _ids(*words: str) -> set[int]:
    return {TOKENIZER.token_to_id(w) for w in words}


# -- coverage ------------------------------------------------------------------------------
@pytest.mark.parametrize("coverage", [0.3, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0])
def test_coverage_keeps_at_least_that_share_and_no_more_than_it_needs(coverage: float) -> None:
    texts = toy_sentences(300, seed=3)[0]
    counts = _counts(texts)
    kept = set(kept_token_ids(TOKENIZER, texts, keep_chars=False, coverage=coverage))
    seen_kept = {i for i in kept if i in counts}
    assert covered_share(counts, kept) >= coverage
    assert kept - seen_kept <= SPECIAL_IDS  # only the specials join, no characters
    # Without the least used kept tokens (all of those tied at the cut: they go together)
    # the share falls below the coverage asked for.
    least = min(counts[i] for i in seen_kept)
    assert least == count_threshold(counts, coverage)
    assert covered_share(counts, {i for i in seen_kept if counts[i] > least}) < coverage
    assert seen_kept == {i for i, n in counts.items() if n >= least}


def test_coverage_cut_on_known_counts_and_ties_kept_together() -> None:
    counts = _counts(COUNTED_TEXTS)
    assert {w: counts[TOKENIZER.token_to_id(w)] for w in COUNTED} == COUNTED
    # 90 % of 120 = 108: good + film + bad = 100 fall short, with plot 110 do not.
    kept = set(kept_token_ids(TOKENIZER, COUNTED_TEXTS, keep_chars=False, coverage=0.9))
    assert kept - SPECIAL_IDS == _ids("good", "film", "bad", "plot")
    assert covered_share(counts, kept - _ids("plot")) < 0.9  # dropping the least: too few
    # 30 %: "good" alone (40/120) would do, but "film" is used as often: both, in any order.
    tied = set(kept_token_ids(TOKENIZER, COUNTED_TEXTS, keep_chars=False, coverage=0.3))
    assert tied - SPECIAL_IDS == _ids("good", "film")
    assert kept_token_ids(TOKENIZER, list(reversed(COUNTED_TEXTS)), keep_chars=False,
                          coverage=0.3) == sorted(tied)
    # 1.0 keeps every seen token: min_count 1.
    assert kept_token_ids(TOKENIZER, COUNTED_TEXTS, coverage=1.0) == \
        kept_token_ids(TOKENIZER, COUNTED_TEXTS)


def test_coverage_still_keeps_specials_and_characters() -> None:
    kept = set(kept_token_ids(TOKENIZER, COUNTED_TEXTS, coverage=0.3))
    assert SPECIAL_IDS <= kept and _ids("[UNK]", "[CLS]", "[SEP]") <= SPECIAL_IDS
    assert _ids("a", "z", "##q") <= kept  # unseen characters, kept for unseen words


def test_the_same_coverage_is_a_lower_count_on_a_smaller_set() -> None:
    """What went wrong with min_count 7 on a small set: the threshold a coverage chooses
    falls with the data."""
    large, small = toy_sentences(2000, seed=1)[0], toy_sentences(100, seed=1)[0]
    assert count_threshold(_counts(large), 0.99) > count_threshold(_counts(small), 0.99)


@pytest.mark.parametrize("coverage", [0.0, -0.5, 1.01, float("nan"), True, "0.9"])
def test_a_coverage_outside_zero_to_one_is_one_config_error(coverage: object) -> None:
    with pytest.raises(ConfigError, match=r"in \(0, 1\]") as error:
        kept_token_ids(TOKENIZER, COUNTED_TEXTS, coverage=coverage)  # type: ignore[arg-type]
    assert "\n" not in str(error.value)


def test_min_count_and_coverage_together_are_one_config_error(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    with pytest.raises(ConfigError, match="not both") as error:
        kept_token_ids(TOKENIZER, COUNTED_TEXTS, min_count=2, coverage=0.9)
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="not both"):
        prune_vocabulary(tmp_path, tmp_path / "out", COUNTED_TEXTS, min_count=3, coverage=0.9)
    train = write_toy_tsv(tmp_path / "train.tsv", 8)
    code = main(["prune-vocab", "--model", str(tmp_path), "--train", str(train), "--output",
                 str(tmp_path / "out"), "--min-count", "2", "--coverage", "0.9"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "not both" in err and "\n" not in err


def test_prune_vocabulary_records_the_coverage_and_what_it_reached(tmp_path: Path) -> None:
    model = build_classifier(tmp_path / "teacher")
    result = prune_vocabulary(model, tmp_path / "out", COUNTED_TEXTS, coverage=0.9)
    assert result["coverage"] == 0.9 and result["min_count"] == 1
    assert result["count_threshold"] == 10  # plot's count: the last one the cut needed
    assert 0.9 <= result["coverage_achieved"] <= 1
    plain = prune_vocabulary(model, tmp_path / "plain", COUNTED_TEXTS)
    assert plain["coverage"] is None and plain["count_threshold"] == 1
    assert plain["coverage_achieved"] == 1.0
    assert plain["config_digest"] != result["config_digest"]
    assert result["vocab_after"] < plain["vocab_after"]


# -- epochs: auto --------------------------------------------------------------------------
def test_epochs_for_scales_with_the_data_and_is_clamped() -> None:
    sizes = [1, 16, 500, 2000, 5400, 10_003, 14_041, 43_410, 67_349, 1_000_000]
    epochs = [epochs_for(n, 32) for n in sizes]
    assert all(MIN_EPOCHS <= e <= MAX_EPOCHS and isinstance(e, int) for e in epochs)
    assert epochs == sorted(epochs, reverse=True)  # more data, no more epochs
    assert epochs_for(67_349, 32) == 2  # SST-2
    assert epochs_for(5_400, 32) == 10  # the 5.4k-sentence set of the issue
    assert MIN_EPOCHS < epochs_for(14_041, 32) < MAX_EPOCHS  # CoNLL-2003: in between
    assert epochs_for(5_400, 8) <= epochs_for(5_400, 32)  # smaller batches: more steps each
    with pytest.raises(ConfigError):
        epochs_for(0, 32)


def test_epochs_auto_is_read_checked_and_numbers_keep_their_digest() -> None:
    auto = TrainConfig(epochs=" Auto ")  # type: ignore[arg-type]
    assert auto.epochs == AUTO and asdict(auto)["epochs"] == AUTO
    assert config_digest(auto) == config_digest(TrainConfig(epochs=AUTO))
    numeric = TrainConfig(epochs="2")  # type: ignore[arg-type]
    assert numeric.epochs == 2.0 and isinstance(numeric.epochs, float)
    assert config_digest(numeric) == config_digest(TrainConfig(epochs=2.0))
    assert resolve_epochs(numeric, 5400) is numeric  # untouched, whatever the size
    assert resolve_epochs(auto, 5400).epochs == 10.0
    with pytest.raises(ConfigError, match="training set"):
        resolve_epochs(auto, None)
    with pytest.raises(ConfigError, match="or auto"):
        TrainConfig(epochs="many")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="> 0 or auto"):
        TrainConfig(epochs=0)
    args = build_parser().parse_args(["finetune", "--model", "m", "--output", "o",
                                      "--train", "t.tsv", "--dev", "d.tsv", "--epochs", "auto"])
    assert args.epochs == AUTO


def test_epochs_auto_resolves_where_the_trainer_is_configured(tmp_path: Path) -> None:
    from compression.training.trainer import training_arguments

    auto = TrainConfig(epochs=AUTO, batch_size=32)
    assert training_arguments(tmp_path, auto, train_size=5400).num_train_epochs == 10
    assert training_arguments(tmp_path, auto, train_size=67_349).num_train_epochs == 2
    assert training_arguments(tmp_path, TrainConfig(epochs=3.0),
                              train_size=5400).num_train_epochs == 3.0
    with pytest.raises(ConfigError):
        training_arguments(tmp_path, auto)


def test_finetune_and_distill_record_the_epochs_auto_chose(tmp_path: Path) -> None:
    from compression.training.distill import distill
    from compression.training.finetune import finetune

    data = DataConfig(train=str(write_toy_tsv(tmp_path / "train.tsv", 48, seed=1)),
                      dev=str(write_toy_tsv(tmp_path / "dev.tsv", 16, seed=2)), max_length=16,
                      label_names={"0": "negative", "1": "positive"})
    # max_steps keeps the test short; the epochs asked for are still resolved and recorded.
    train = TrainConfig(epochs=AUTO, batch_size=16, max_steps=1, warmup=0.0)
    teacher = finetune(str(build_classifier(tmp_path / "encoder")), data, train,
                       tmp_path / "teacher")
    assert teacher["epochs"] == epochs_for(48, 16) == MAX_EPOCHS
    assert teacher["config"]["train"]["epochs"] == AUTO  # what was asked, beside it
    student = distill(teacher["model_dir"], data, train, DistillConfig(num_layers=1),
                      tmp_path / "student")
    assert student["epochs"] == MAX_EPOCHS


# -- the pipeline file ---------------------------------------------------------------------
def _pipeline(**evaluate: object) -> dict:
    return {
        "name": "small-set",
        "data": {"train": "train.tsv", "dev": "dev.tsv"},
        "teacher": {"pretrained": "some/encoder", "train": {"epochs": "auto"}},
        "students": [{"name": "l3", "train": {"epochs": "auto", "batch_size": 16},
                      "prune_vocab": {"unseen": "nearest", "coverage": 0.995}}],
        "evaluate": dict(evaluate),
    }


def test_a_pipeline_file_with_epochs_auto_and_a_vocabulary_coverage_parses() -> None:
    config = PipelineConfig.from_dict(_pipeline())
    student = config.students[0]
    assert config.teacher_train.epochs == AUTO and student.train.epochs == AUTO
    assert (student.prune_vocab, student.prune_vocab_coverage,
            student.prune_vocab_min_count) == ("nearest", 0.995, 1)
    assert config.calibration_size == AUTO  # the default when absent


@pytest.mark.parametrize("prune_vocab, expected", [
    ({"unseen": "nearest"}, ("nearest", 1, None)),  # neither key: every seen token, as before
    ({"unseen": "chars", "min_count": 7}, ("chars", 7, None)),
    ({"coverage": 1}, ("chars", 1, 1.0)),
    ("nearest", ("nearest", 1, None)),
])
def test_prune_vocab_mappings(prune_vocab: object, expected: tuple) -> None:
    raw = _pipeline()
    raw["students"][0]["prune_vocab"] = prune_vocab
    s = PipelineConfig.from_dict(raw).students[0]
    assert (s.prune_vocab, s.prune_vocab_min_count, s.prune_vocab_coverage) == expected


@pytest.mark.parametrize("prune_vocab, message", [
    ({"unseen": "nearest", "min_count": 7, "coverage": 0.99}, "not both"),
    ({"unseen": "nearest", "coverage": 1.5}, r"prune_vocab.coverage: .*\(0, 1\]"),
    ({"unseen": "nearest", "coverage": float("nan")}, r"\(0, 1\]"),
    ({"unseen": "nearest", "coverage": 0}, r"\(0, 1\]"),
])
def test_prune_vocab_coverage_mistakes_are_one_config_error(prune_vocab: dict,
                                                            message: str) -> None:
    raw = _pipeline()
    raw["students"][0]["prune_vocab"] = prune_vocab
    with pytest.raises(ConfigError, match=message) as error:
        PipelineConfig.from_dict(raw)
    assert str(error.value).startswith("students[0].prune_vocab") and "\n" not in str(error.value)


# -- calibration_size: auto ----------------------------------------------------------------
def test_calibration_size_auto_resolution() -> None:
    assert calibration_size_for(67_349) == calibration_size_for(5_400) == CALIBRATION_SENTENCES
    assert calibration_size_for(100) == 100  # a small set: all of it
    assert calibration_size(AUTO, 100) == 100 and calibration_size(256, 5_400) == 256
    # The default 512 of before, for every set at least that large: same texts, same digest.
    assert all(calibration_size(AUTO, n) == 512 for n in (512, 5_400, 67_349))
    assert PipelineConfig.from_dict(_pipeline(calibration_size=256)).calibration_size == 256
    assert PipelineConfig.from_dict(_pipeline(calibration_size="auto")).calibration_size == AUTO
    for bad in (0, "many", True):
        with pytest.raises(ConfigError, match="evaluate.calibration_size"):
            PipelineConfig.from_dict(_pipeline(calibration_size=bad))


@pytest.mark.parametrize("setting, n_train, expected", [
    (AUTO, 40, 40), (AUTO, 2000, 512), (64, 2000, 64)])
def test_onnx_variants_calibrate_on_the_resolved_count(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: object, n_train: int,
        expected: int) -> None:
    import compression.pipeline as pipeline

    texts = [f"sentence {i}" for i in range(n_train)]
    splits = SimpleNamespace(train=SimpleNamespace(texts=texts),
                             dev=SimpleNamespace(texts=texts[:8]))
    calibrated: list[int] = []
    monkeypatch.setattr(pipeline, "load_data", lambda data: splits)
    monkeypatch.setattr(pipeline, "export_step", lambda *args, **kwargs: None)
    monkeypatch.setattr(pipeline, "quantize_step",
                        lambda fp32, out, config, calibration, *rest, **kwargs:
                        calibrated.append(len(calibration)))
    raw = _pipeline(calibration_size=setting)
    raw.update(work_dir=str(tmp_path), quantize=[{"name": "int8", "mode": "static"}])
    Pipeline(PipelineConfig.from_dict(raw)).onnx_variants({"l3": str(tmp_path / "l3")})
    assert calibrated == [expected]
