"""`auto`'s vocabulary ladder: coverages that keep the same tokens are cut once, a
student's cut that misses the budget is recovered by distillation (the teacher's is not),
and the ladder ends at the first cut that stays over budget."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from compression.auto import AutoRequest, pipeline_config
from compression.auto.search import AutoSearch, Clock, Step
from compression.auto.vocabulary_ladder import VocabularyLadder, recovery_epochs
from compression.config.steps import DataConfig

# "the" 97 times, "cat" twice, "dog" once: 99.9 and 99.5 % need every token (count 1),
# 99 and 98 % the tokens used twice, 97 and 95 % "the" alone.
COUNTS = Counter({10: 97, 11: 2, 12: 1})


def _search(tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path]) -> AutoSearch:
    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=32)
    request = AutoRequest(model=str(teacher_dir), data=data, name="toy-vocab",
                          work_dir=tmp_path / "run")
    search = AutoSearch(pipeline_config(request), Clock(None))
    search.state.teacher.update(score=0.90, model=str(teacher_dir))
    return search


def _scripted(search: AutoSearch, monkeypatch: pytest.MonkeyPatch,
              scores: dict[str, float]) -> list[tuple[str, dict[str, Any]]]:
    """`search.run` records each step and scores it from `scores` (by name), making
    nothing."""
    ran: list[tuple[str, dict[str, Any]]] = []

    def run(name: str, spec: dict[str, Any], make: Any, trains: bool = False) -> Step:
        ran.append((name, spec))
        step = Step(name=name, spec=spec, seconds=1.0, variants={}, scores={"x": scores[name]},
                    models={name: f"dir-of-{name}"}, trains=trains)
        search.state.steps[name] = step
        return step

    monkeypatch.setattr(search, "run", run)
    monkeypatch.setattr(VocabularyLadder, "_counts", lambda self, model_dir: COUNTS)
    return ran


def test_coverages_that_keep_the_same_tokens_are_cut_once(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    search = _search(tmp_path, teacher_dir, toy_data)
    ran = _scripted(search, monkeypatch, {"teacher-v999": 0.90, "teacher-v990": 0.90,
                                          "teacher-v970": 0.90})
    search.vocabulary.climb("teacher", str(teacher_dir), recover=False)
    assert [name for name, _ in ran] == ["teacher-v999", "teacher-v990", "teacher-v970"]
    # WordPiece aliases a dropped token to its nearest kept row: characters go too.
    assert all(spec["unseen"] == "nearest" and spec["keep_chars"] is False for _, spec in ran)


def test_a_students_missed_cut_is_recovered_and_the_ladder_goes_on_only_if_within(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    search = _search(tmp_path, teacher_dir, toy_data)
    scores = {"l1-v999": 0.895, "l1-v990": 0.85, "l1-v990-rec": 0.895,
              "l1-v970": 0.70, "l1-v970-rec": 0.80, "teacher-v999": 0.80}
    ran = _scripted(search, monkeypatch, scores)
    search.vocabulary.climb("l1", str(teacher_dir), recover=True)
    assert [name for name, _ in ran] == ["l1-v999", "l1-v990", "l1-v990-rec", "l1-v970",
                                         "l1-v970-rec"]
    recovery = dict(ran)["l1-v990-rec"]
    assert recovery["model"] == "l1-v990"
    assert recovery["students"][0]["train"]["epochs"] == recovery_epochs(
        len(search.splits.train.texts))

    ran.clear()
    search.state.steps.clear()
    search.vocabulary.climb("teacher", str(teacher_dir), recover=False)
    assert [name for name, _ in ran] == ["teacher-v999"]  # over budget, never retrained


def test_a_recovery_distils_the_cut_model_for_real(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny random models miss any real budget: the first cut misses, is recovered from
    its own (cut) tokenizer's weights, misses again, and the ladder stops there."""
    from compression.evaluation import evaluate

    monkeypatch.setattr(evaluate, "peak_memory_mb", lambda *a, **k: float("nan"))
    search = _search(tmp_path, teacher_dir, toy_data)
    search.state.teacher["score"] = 2.0  # every variant is over budget
    # A made-up word in every text, split into continuation pieces: a cut then keeps some
    # `##` pieces to alias the dropped ones to (the toy sentences alone use none).
    texts = search.splits.train.texts
    texts[:] = [f"{text} qzxv" for text in texts]
    search.vocabulary.climb("l1", str(teacher_dir), recover=True)
    assert list(search.state.steps) == ["l1-v999", "l1-v999-rec"], search.skipped
    cut = Path(search.state.steps["l1-v999"].models["l1-v999"])
    recovered = Path(search.state.steps["l1-v999-rec"].models["l1-v999-rec"])
    vocab = json.loads((teacher_dir / "config.json").read_text())["vocab_size"]
    assert json.loads((cut / "config.json").read_text())["vocab_size"] < vocab
    assert json.loads((recovered / "config.json").read_text())["vocab_size"] == \
        json.loads((cut / "config.json").read_text())["vocab_size"]
    result = json.loads((recovered.parent / "result.json").read_text())
    assert result["step"] == "distill"
    assert result["epochs"] == recovery_epochs(len(search.splits.train.texts))
    assert search.state.steps["l1-v999-rec"].variants  # exported, quantized and scored


def test_a_recovery_the_cut_cannot_take_is_skipped_with_its_reason(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy sentences use no `##` piece, so a cut keeps none to alias the dropped ones
    to: the cut model splits words otherwise than the teacher and cannot learn from it."""
    from compression.evaluation import evaluate

    monkeypatch.setattr(evaluate, "peak_memory_mb", lambda *a, **k: float("nan"))
    search = _search(tmp_path, teacher_dir, toy_data)
    search.state.teacher["score"] = 2.0
    search.vocabulary.climb("l1", str(teacher_dir), recover=True)
    assert list(search.state.steps) == ["l1-v999"]
    assert len(search.skipped) == 1 and search.skipped[0].startswith("l1-v999-rec (")
    assert "not in the student's vocabulary" in search.skipped[0]


def test_a_students_ladder_starts_where_the_teachers_ended_within_budget(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct cuts of COUNTS: 99.9, 99 and 97 %. The teacher's was within at 99 % and
    missed at 97 %: a student starts at 99 %, goes deeper while within, or back to
    milder cuts while it misses."""
    search = _search(tmp_path, teacher_dir, toy_data)
    for coverage, score in ((0.999, 0.90), (0.99, 0.895), (0.97, 0.85)):
        name = f"teacher-v{round(coverage * 1000)}"
        search.state.steps[name] = Step(
            name=name, spec={"ladder": "vocabulary", "model": "teacher",
                             "coverage": coverage}, seconds=1.0, variants={},
            scores={"x": score}, models={name: "dir"})
    scores = {"l1-v990": 0.895, "l1-v970": 0.70, "l1-v970-rec": 0.80}
    ran = _scripted(search, monkeypatch, scores)
    search.vocabulary.climb("l1", str(teacher_dir), recover=True)
    assert [name for name, _ in ran] == ["l1-v990", "l1-v970", "l1-v970-rec"]

    ran.clear()
    scores.update({"l1-v990": 0.85, "l1-v990-rec": 0.86, "l1-v999": 0.895})
    for name in ("l1-v990", "l1-v970", "l1-v970-rec"):
        del search.state.steps[name]
    search.vocabulary.climb("l1", str(teacher_dir), recover=True)
    assert [name for name, _ in ran] == ["l1-v990", "l1-v990-rec", "l1-v999"]
