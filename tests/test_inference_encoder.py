"""One encoder for the service and the benchmarks: the same arrays from both paths, only
the inputs a graph declares, and the pad token of each vocabulary family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tiny_models import build_tokenizer
from tokenizers import Tokenizer, models, pre_tokenizers

from app.classifier import OnnxClassifier
from compression.evaluation.runners import Variant
from compression.tasks.registry import CLASSIFICATION
from inference import TextEncoder, find_pad_id
from inference.encoder import copy_tokenizer, tokenizer_json
from inference.qa import PairEncoder, QuestionContext, WindowSettings

MODELS = Path(__file__).resolve().parent.parent / "models"
TEXTS = ["a fine film .", "the plot is nothing but boilerplate , from start to end .", "bad"]


def test_the_service_and_evaluation_feed_a_version_the_same_arrays() -> None:
    version = MODELS / "sst2-sentiment" / "8"
    served = OnnxClassifier.load(version, providers="cpu", threads=1)
    variant = Variant.from_path(version)
    evaluated = CLASSIFICATION.batch_encoder(variant.tokenizer_file, served.manifest.max_length)
    runner = variant.load(threads=1)
    service_feed = served.encoder(TEXTS)
    evaluation_feed = {k: v for k, v in evaluated(TEXTS).items() if k in runner.inputs}
    assert service_feed.keys() == evaluation_feed.keys()
    for name, array in service_feed.items():
        np.testing.assert_array_equal(array, evaluation_feed[name])
    assert service_feed["attention_mask"].sum(axis=1).tolist() == [6, 15, 3]  # [CLS] .. [SEP]


def test_a_graph_without_token_type_ids_is_not_fed_them(tmp_path: Path) -> None:
    build_tokenizer().save(str(tmp_path / "tokenizer.json"))
    full = TextEncoder(tmp_path / "tokenizer.json", 16)
    lean = TextEncoder(tmp_path / "tokenizer.json", 16, ["attention_mask", "input_ids"])
    assert list(full(TEXTS)) == ["input_ids", "attention_mask", "token_type_ids"]
    assert list(lean(TEXTS)) == ["input_ids", "attention_mask"]
    np.testing.assert_array_equal(lean(TEXTS)["input_ids"], full(TEXTS)["input_ids"])


def test_truncation_and_right_padding_with_the_vocabularys_pad_id(tmp_path: Path) -> None:
    build_tokenizer().save(str(tmp_path / "tokenizer.json"))
    encoder = TextEncoder(tmp_path / "tokenizer.json", 6)
    feed = encoder(["bad", "the plot is a mess and so is the film"])
    assert feed["input_ids"].shape == (2, 6)  # truncated to max_length, padded to the longest
    assert feed["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0]
    assert (feed["input_ids"][0, 3:] == encoder.pad_id).all()


def test_the_pad_token_of_bpe_and_sentencepiece_vocabularies_is_found() -> None:
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "film": 4}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    assert find_pad_id(tokenizer) == 1


def test_a_copied_tokenizer_keeps_the_aliases_of_a_nearest_vocabulary_cut() -> None:
    """A vocabulary cut with `unseen: nearest` maps dropped words onto kept ids; `to_str`
    writes one string per id, so a plain copy would read those words as [UNK]. The
    encoders built from a Tokenizer object (training's, the QA windows') must not."""
    data = json.loads(build_tokenizer().to_str())
    vocab = data["model"]["vocab"]
    data["model"]["vocab"] = {**vocab, "cinema": vocab["film"], "dreadful": vocab["bad"]}
    aliased = Tokenizer.from_str(json.dumps(data))
    text = "a dreadful cinema , a bad film"
    expected = aliased.encode(text).ids
    assert aliased.token_to_id("[UNK]") not in expected
    lossy = Tokenizer.from_str(aliased.to_str()).encode(text).ids  # what the mend avoids
    assert lossy != expected

    assert copy_tokenizer(aliased).encode(text).ids == expected
    assert tokenizer_json(aliased)["model"]["vocab"]["cinema"] == vocab["film"]
    assert TextEncoder(aliased, 16)([text])["input_ids"][0].tolist() == expected
    pairs = PairEncoder(aliased, WindowSettings(max_length=32, doc_stride=8, max_question_tokens=8))
    window = pairs.windows([QuestionContext("dreadful ?", text)])[0][0]
    assert window.ids[-(len(expected) - 1):] == expected[1:]  # the context and its [SEP]
    assert aliased.truncation is None  # the caller's tokenizer is left as it was
