"""Token classification's data and scoring: CoNLL and JSONL readers (IOB1 read as IOB2),
one-line errors naming file and line, entity-level metrics against hand-counted
examples, and the alignment of word tags to sub-tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import save_tokenizer

from compression.config.steps import DataConfig
from compression.core.conll import load_token_split
from compression.core.data import load_data
from compression.core.errors import DataError
from compression.tasks.entity_metrics import IGNORED, align_labels, entity_metrics
from compression.tasks.registry import TOKEN_CLASSIFICATION, task_for_data
from inference.entities import tag_spans, to_iob2

IOB2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O", "B-ORG"]
IOB1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "O", "I-ORG"]
WORDS = ["Angela", "Merkel", "visited", "Paris", "New", "York", "with", "EU"]


def _conll(path: Path, tags: list[str], sep: str = " ") -> Path:
    lines = ["-DOCSTART- -X- -X- O", ""]
    lines += [sep.join([w, "NNP", "B-NP", t]) for w, t in zip(WORDS, tags, strict=True)]
    path.write_text("\n".join([*lines, "", *lines[2:4], ""]))
    return path


def test_iob1_and_iob2_files_read_as_the_same_spans(tmp_path: Path) -> None:
    iob2 = load_token_split(_conll(tmp_path / "a.txt", IOB2))
    iob1 = load_token_split(_conll(tmp_path / "b.conll", IOB1, sep="\t"))
    assert iob1.labels == iob2.labels and iob1.texts == iob2.texts
    assert iob2.tags(0) == IOB2 and iob2.words(0) == WORDS
    assert iob2.lines == [3, 12]  # the line each sentence starts on
    assert tag_spans(IOB1) == tag_spans(IOB2) == [
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 6), ("ORG", 7, 8)]
    assert to_iob2(IOB1) == IOB2


def test_jsonl_sentences_and_the_tag_space(tmp_path: Path) -> None:
    rows = [{"tokens": WORDS, "tags": IOB2}, {"tokens": ["Oslo"], "tags": ["B-LOC"]}]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = DataConfig(train=str(path), dev=str(path), task="token-classification")
    splits = load_data(data)
    assert task_for_data(data) is TOKEN_CLASSIFICATION
    assert splits.labels.raw == ("O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER")
    assert splits.labels.encode(splits.dev)[1] == [1]


@pytest.mark.parametrize(("name", "body", "message"), [
    ("one.txt", "EU B-ORG\nrejects\n", "one.txt: line 2 has one column"),
    ("bad.txt", "EU X-ORG\n", "bad.txt: line 1: tag 'X-ORG' is not O, B-TYPE or I-TYPE"),
    ("empty.jsonl", '{"tokens": [], "tags": []}\n', "empty.jsonl: line 1: an empty sentence"),
    ("n.jsonl", '{"tokens": ["a"], "tags": []}\n', "n.jsonl: line 1 has 1 tokens but 0 tags"),
])
def test_bad_token_files_are_one_line_naming_file_and_line(
        tmp_path: Path, name: str, body: str, message: str) -> None:
    (tmp_path / name).write_text(body)
    with pytest.raises(DataError, match=message) as caught:
        load_token_split(tmp_path / name)
    assert "\n" not in str(caught.value)


def test_a_dev_tag_train_never_has_names_the_dev_file_and_line(tmp_path: Path) -> None:
    train = _conll(tmp_path / "train.txt", IOB2)
    dev = tmp_path / "dev.txt"
    dev.write_text("Oslo B-LOC\n\nEU B-ORG\nfair B-MISC\n")
    data = DataConfig(train=str(train), dev=str(dev), task="token-classification")
    with pytest.raises(DataError, match=r"dev.txt: line 3: tag 'B-MISC', which the "
                                        "training data never has"):
        load_data(data)


def test_entity_metrics_count_exact_spans_and_types_as_conlleval() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-PER"],  # PER right, LOC typed as PER
                 ["I-ORG", "I-ORG", "O", "I-LOC"]]  # stray I-ORG starts a right ORG; LOC extra
    scores = entity_metrics(gold, predicted)
    # 2 right of 4 predicted, of 3 gold.
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["micro_f1"] == pytest.approx(2 * 2 / (4 + 3))
    assert scores["f1_PER"] == pytest.approx(2 * 1 / (2 + 1))
    assert scores["f1_ORG"] == 1.0 and scores["f1_LOC"] == 0.0
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert entity_metrics([["O"]], [["O"]])["micro_f1"] == 0.0  # nothing to find


def test_tags_sit_on_the_first_sub_token_of_each_word(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(save_tokenizer(tmp_path / "tok").parent))
    tags = ("O", "B-LOC", "I-LOC", "B-PER", "I-PER")
    text = "anna went to u.s. today"  # anna -> an ##n ##a; u.s. -> u . s .
    task = TOKEN_CLASSIFICATION.for_labels(list(tags))
    features = task.features(tokenizer, [text], [[3, 0, 0, 1, 0]], max_length=32)
    tokens = tokenizer.convert_ids_to_tokens(features["input_ids"][0])
    labelled = [(t, tags[y]) for t, y in zip(tokens, features["labels"][0], strict=True)
                if y != IGNORED]
    assert tokens[0] == "[CLS]" and features["labels"][0][0] == IGNORED
    assert labelled == [("an", "B-PER"), ("w", "O"), ("to", "O"), ("u", "B-LOC"),
                        (".", "I-LOC"), ("s", "I-LOC"), (".", "I-LOC"), ("to", "O")]
    # Metrics read the tags back at those positions only.
    labels = np.asarray(features["labels"])
    logits = np.eye(len(tags))[np.where(labels == IGNORED, 0, labels)]
    assert task.metrics(logits, labels)["micro_f1"] == 1.0
    encoded = tokenizer([text], return_offsets_mapping=True)
    assert align_labels(text, [3, 0, 0, 1, 0], encoded.word_ids(0),
                        encoded["offset_mapping"][0], tags) == features["labels"][0]
