"""Question answering's parts on hand-made cases: windows and offsets (an answer that
crosses a window's edge is found in the window that holds it whole), the SQuAD v1.1
metric against the official script's definitions, the SQuAD reader, the span losses and
the manifest's QA settings."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import build_tokenizer

from compression.config.steps import DataConfig
from compression.core.errors import ConfigError, DataError
from compression.core.squad import load_squad_split
from compression.tasks.squad_metrics import exact_match, f1_score, normalize_answer, squad_scores
from compression.training import losses
from inference.qa import (
    PairEncoder,
    QuestionContext,
    WindowSettings,
    answer_tokens,
    best_answer,
    context_span,
)
from registry import Lineage, Manifest

# A context of 30 words: windows of 24 tokens (question "it ?" = 2 tokens, 3 specials:
# 19 context tokens a window) sharing 6 tokens. "very good" sits across the first
# window's edge (its words 18 and 19).
WORDS = ["the", "film", "is", "a", "story", "of", "it", "and", "this", "was", "not", "so",
         "plot", "actor", "with", "one", "its", "for", "very", "good", "or", "but", "too",
         "on", "as", "movie", "that", "to", "in", "fun"]
CONTEXT = " ".join(WORDS)
ANSWER = "very good"
SETTINGS = WindowSettings(max_length=24, doc_stride=6, max_question_tokens=8,
                          max_answer_length=4, n_best=5)


@pytest.fixture(scope="module")
def windows() -> list:
    encoder = PairEncoder(build_tokenizer(), SETTINGS)
    (pair_windows,) = encoder.windows([QuestionContext("it ?", CONTEXT)])
    return pair_windows


def _answer_logits(window, start_char: int, end_char: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(seq, 2) logits that point at the tokens starting at `start_char` and ending at
    `end_char`, wherever the window has them (a partial answer included)."""
    logits = np.zeros((len(window.ids), 2))
    first, last = context_span(window)
    for position in range(first, last + 1):
        start, end = window.offsets[position]
        logits[position, 0] = 8.0 if start == start_char else 0.0
        logits[position, 1] = 8.0 if end == end_char else 0.0
    return logits


def test_a_long_context_is_read_in_overlapping_windows_each_with_the_question(windows) -> None:  # type: ignore[no-untyped-def]
    assert len(windows) >= 2
    for window in windows:
        assert len(window.ids) <= SETTINGS.max_length
        assert window.tokens[:4] == ["[CLS]", "it", "?", "[SEP]"]
    first_end = windows[0].offsets[context_span(windows[0])[1]][1]
    second_start = windows[1].offsets[context_span(windows[1])[0]][0]
    assert second_start < first_end  # neighbours share context


def test_an_answer_across_a_window_edge_is_labelled_and_found_where_it_is_whole(windows) -> None:  # type: ignore[no-untyped-def]
    start = CONTEXT.index(ANSWER)
    end = start + len(ANSWER)
    labels = [answer_tokens(w, start, end) for w in windows]
    assert labels[0] == (0, 0)  # the first window holds only "very"
    whole = [i for i, span in enumerate(labels) if span != (0, 0)]
    assert whole, labels
    window = windows[whole[0]]
    s, e = labels[whole[0]]
    assert (window.offsets[s][0], window.offsets[e][1]) == (start, end)
    # Logits that favour the answer's start in the first window too (where its end is
    # missing) and the whole span where it is whole: only the whole span can win.
    logits = [_answer_logits(w, start, end) for w in windows]
    answer = best_answer(CONTEXT, windows, logits, SETTINGS)
    assert (answer.text, answer.start, answer.end) == (ANSWER, start, end)
    assert CONTEXT[answer.start: answer.end] == answer.text
    assert 0 < answer.score <= 1


def test_the_answer_search_keeps_to_the_context_and_the_length_limit(windows) -> None:  # type: ignore[no-untyped-def]
    window = windows[0]
    logits = np.zeros((len(window.ids), 2))
    logits[1, :] = 50.0  # the question's token: never an answer
    first, _ = context_span(window)
    # The best sums start at "the" (7 and 6 tokens long, over max_answer_length 4).
    logits[first, 0], logits[first + 6, 1] = 9.0, 9.0
    logits[first + 5, 0], logits[first + 5, 1] = 5.0, 5.0
    answer = best_answer(CONTEXT, [window], [logits], SETTINGS)
    assert answer.text == "of it"
    assert CONTEXT[answer.start: answer.end] == "of it"


def test_a_long_question_is_cut_so_the_context_keeps_its_room() -> None:
    encoder = PairEncoder(build_tokenizer(), SETTINGS)
    (pair_windows,) = encoder.windows([QuestionContext(" ".join(["film"] * 40), CONTEXT)])
    for window in pair_windows:
        assert window.sequence_ids.count(0) == SETTINGS.max_question_tokens
        assert window.sequence_ids.count(1) > 0


# The official SQuAD v1.1 evaluation script's definitions (evaluate-v1.1.py), as published.
def _official_normalize(s: str) -> str:
    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def _official_f1(prediction: str, ground_truth: str) -> float:
    prediction_tokens = _official_normalize(prediction).split()
    ground_truth_tokens = _official_normalize(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


CASES = [
    ("The Cat!", ["cat"], 1.0, 1.0),
    ("a cat sat", ["the cat sat down"], 0.0, 0.8),
    ("Denver Broncos", ["Denver Broncos", "The Denver Broncos", "Broncos"], 1.0, 1.0),
    ("in 1990s", ["1990s", "the 1990s"], 0.0, 2 / 3),
    ("an apple, an Apple", ["apple apple apple"], 0.0, 0.8),
    ("nothing", ["something else"], 0.0, 0.0),
    ("", ["the"], 1.0, 0.0),  # both normalise to "": equal, but no words in common
    ("Théâtre-Français", ["théâtrefrançais"], 1.0, 1.0),
]


@pytest.mark.parametrize(("prediction", "references", "em", "f1"), CASES)
def test_the_metric_follows_the_official_definitions(prediction: str, references: list[str],
                                                     em: float, f1: float) -> None:
    scores = squad_scores({"q": prediction}, {"q": references})
    assert scores["exact_match"] == pytest.approx(em)
    assert scores["f1"] == pytest.approx(f1)
    assert scores["f1"] == pytest.approx(max(_official_f1(prediction, r) for r in references))
    assert scores["exact_match"] == max(
        float(_official_normalize(prediction) == _official_normalize(r)) for r in references)
    for reference in references:
        assert normalize_answer(reference) == _official_normalize(reference)
        assert exact_match(prediction, reference) in (0.0, 1.0)
        assert f1_score(prediction, reference) == pytest.approx(_official_f1(prediction,
                                                                             reference))


def test_a_question_without_a_prediction_scores_zero() -> None:
    scores = squad_scores({"a": "cat"}, {"a": ["cat"], "b": ["dog"]})
    assert scores == {"exact_match": 0.5, "f1": 0.5}


def _squad_file(path: Path, start: int) -> Path:
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{
        "context": "the film was good", "qas": [{"id": "1", "question": " what was good?",
                                                 "answers": [{"text": "good",
                                                              "answer_start": start}]}]}]}]}))
    return path


def test_the_reader_keeps_pairs_and_answers_and_names_a_misplaced_answer(tmp_path: Path) -> None:
    split = load_squad_split(_squad_file(tmp_path / "ok.json", 13))
    (pair,) = split.texts
    assert (pair.question, pair.context) == ("what was good?", "the film was good")
    assert split.answers == [(("good", 13),)] and split.ids == ["1"]
    with pytest.raises(DataError, match="question '1'.*not at character 12"):
        load_squad_split(_squad_file(tmp_path / "bad.json", 12))


def test_the_data_config_checks_the_window_settings() -> None:
    config = DataConfig(train="t.json", dev="d.json", task="question-answering",
                        max_length=64, doc_stride=16, max_question_length=16)
    assert config.window_settings().doc_stride == 16
    with pytest.raises(ConfigError, match="doc_stride"):
        DataConfig(train="t.json", dev="d.json", task="question-answering", max_length=64,
                   max_question_length=16)
    with pytest.raises(ConfigError, match="no new context"):
        DataConfig(train="t.json", dev="d.json", task="question-answering", max_length=64,
                   doc_stride=31, max_question_length=32)


def test_span_losses_score_start_and_end_and_ignore_padding() -> None:
    logits = torch.zeros(2, 5, 2)
    logits[0, 1, 0] = logits[0, 3, 1] = 20.0
    logits[1, 0, 0] = logits[1, 0, 1] = 20.0
    labels = torch.tensor([[1, 3], [0, 0]])
    assert float(losses.span_ce(logits, labels)) < 1e-6
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])
    teacher = logits.clone()
    teacher[:, 4] = 99.0  # padding: whatever it holds, it does not count
    assert float(losses.span_soft_target_kl(logits, teacher, 2.0, mask)) < 1e-6
    assert float(losses.span_soft_target_kl(logits.flip(1), teacher, 2.0, mask)) > 0.1


def test_a_qa_manifest_carries_its_window_settings() -> None:
    lineage = Lineage(method="test")
    manifest = Manifest(name="qa", version="1", task="question-answering",
                        labels=["start", "end"], max_length=64, lineage=lineage)
    assert manifest.qa is not None and manifest.qa.doc_stride == 16  # fits 64 tokens
    with pytest.raises(ValueError, match="doc_stride"):
        Manifest(name="qa", version="1", task="question-answering", labels=["start", "end"],
                 max_length=64, qa={"doc_stride": 40}, lineage=lineage)
    with pytest.raises(ValueError, match="question-answering only"):
        Manifest(name="c", version="1", labels=["a", "b"], qa={"doc_stride": 4},
                 lineage=lineage)
