"""Vocabulary pruning: the pruned tokenizer and embedding matrix stay consistent (same
logits on seen words, special tokens renumbered everywhere), unseen words still
tokenize (as characters, or with unseen="nearest" as one piece aliased to the most
similar kept token), bad inputs fail with one clear error, and the result survives ONNX
export, publishing and the service."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tiny_models import SPECIAL, build_tokenizer, toy_sentences
from transformers import AutoTokenizer

from compression.cli.main import main
from compression.core.data import load_split
from compression.core.errors import ConfigError
from compression.models.loading import load_classifier
from compression.pruning.vocabulary import (
    kept_token_ids,
    nearest_kept_tokens,
    prune_vocabulary,
    pruned_tokenizer_json,
    token_id_map,
)

UNSEEN = "plot"  # in the tiny vocabulary, never in the toy training sentences


@pytest.fixture(scope="module")
def train_texts(toy_data: dict[str, Path]) -> list[str]:
    return load_split(toy_data["train"]).texts


@pytest.fixture(scope="module")
def teacher_json(teacher_dir: Path) -> dict:
    return json.loads((teacher_dir / "tokenizer.json").read_text())


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory, teacher_dir: Path,
           train_texts: list[str]) -> dict:
    return prune_vocabulary(teacher_dir, tmp_path_factory.mktemp("pruned"), train_texts)


@pytest.fixture(scope="module")
def pruned_no_chars(tmp_path_factory: pytest.TempPathFactory, teacher_dir: Path,
                    train_texts: list[str]) -> dict:
    return prune_vocabulary(teacher_dir, tmp_path_factory.mktemp("pruned-nc"), train_texts,
                            keep_chars=False)


@pytest.fixture(scope="module")
def pruned_nearest(tmp_path_factory: pytest.TempPathFactory, teacher_dir: Path,
                   train_texts: list[str]) -> dict:
    return prune_vocabulary(teacher_dir, tmp_path_factory.mktemp("pruned-nearest"),
                            train_texts, unseen="nearest")


def _logits(model_dir: Path, texts: list[str]) -> tuple[torch.Tensor, list[list[int]]]:
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = load_classifier(str(model_dir)).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    ids = [[i for i, m in zip(row, mask, strict=True) if m]
           for row, mask in zip(batch["input_ids"].tolist(),
                                batch["attention_mask"].tolist(), strict=True)]
    return logits, ids


@pytest.mark.parametrize("variant", ["pruned", "pruned_nearest"])
def test_seen_words_give_the_same_logits_and_ids(
    variant: str, request: pytest.FixtureRequest, teacher_dir: Path, teacher_json: dict,
    train_texts: list[str]
) -> None:
    pruned = request.getfixturevalue(variant)
    words = sorted({w for t in train_texts for w in t.split()})
    texts = [" ".join(words[i::3]) for i in range(3)] + toy_sentences(8, seed=7)[0]
    assert {w for t in texts for w in t.split()} <= set(words)
    before, old_ids = _logits(teacher_dir, texts)
    after, new_ids = _logits(Path(pruned["model_dir"]), texts)
    assert torch.allclose(before, after, atol=1e-5), (before - after).abs().max()

    kept = kept_token_ids(teacher_json, train_texts)
    assert [[kept[i] for i in row] for row in new_ids] == old_ids
    assert any(new != old for new_row, old_row in zip(new_ids, old_ids, strict=True)
               for new, old in zip(new_row, old_row, strict=True))  # ids did move


@pytest.mark.parametrize("variant", ["pruned", "pruned_nearest"])
def test_special_tokens_keep_consistent_ids(variant: str,
                                            request: pytest.FixtureRequest) -> None:
    pruned = request.getfixturevalue(variant)
    model_dir = Path(pruned["model_dir"])
    data = json.loads((model_dir / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    for token in ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"):
        assert token in vocab
        assert list(vocab.values()).count(vocab[token]) == 1  # never an alias target
    assert sorted(set(vocab.values())) == list(range(pruned["vocab_after"]))
    assert len(vocab) == pruned["vocab_after"] + pruned["unseen_mapped"]
    for added in data["added_tokens"]:
        assert vocab[added["content"]] == added["id"]
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ids = tokenizer("good film")["input_ids"]
    assert (ids[0], ids[-1]) == (vocab["[CLS]"], vocab["[SEP]"])
    assert tokenizer.pad_token_id == vocab["[PAD]"]
    assert load_classifier(str(model_dir)).config.pad_token_id == vocab["[PAD]"]


@pytest.mark.parametrize("processor", ["template", "bert"])
def test_post_processor_ids_follow_moved_special_tokens(processor: str) -> None:
    """[CLS]/[SEP] at the end of the vocabulary: their ids must change, in both the
    TemplateProcessing and the BertProcessing layouts, and in padding.pad_id."""
    from tokenizers import Tokenizer, processors

    base = json.loads(build_tokenizer().to_str())
    tokens = sorted(base["model"]["vocab"], key=base["model"]["vocab"].get)
    order = [t for t in tokens if t not in ("[CLS]", "[SEP]", "[PAD]")] + \
        ["[PAD]", "[CLS]", "[SEP]"]
    base["model"]["vocab"] = {t: i for i, t in enumerate(order)}
    tokenizer = Tokenizer.from_str(json.dumps(base))
    vocab = base["model"]["vocab"]
    if processor == "bert":
        tokenizer.post_processor = processors.BertProcessing(
            ("[SEP]", vocab["[SEP]"]), ("[CLS]", vocab["[CLS]"]))
    else:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]")
    data = json.loads(tokenizer.to_str())
    kept = kept_token_ids(data, ["good film"], keep_chars=False)
    new = pruned_tokenizer_json(data, kept)
    new_vocab = new["model"]["vocab"]
    assert len(new_vocab) == len(kept) < len(vocab)
    assert new_vocab["[CLS]"] != vocab["[CLS]"]
    assert new["padding"]["pad_id"] == new_vocab["[PAD]"]
    ids = Tokenizer.from_str(json.dumps(new)).encode("good film").ids
    assert ids == [new_vocab[t] for t in ("[CLS]", "good", "film", "[SEP]")]


def test_unseen_words_still_tokenize(pruned: dict, pruned_no_chars: dict) -> None:
    for result, expected in ((pruned, ["p", "##l", "##o", "##t"]), (pruned_no_chars, ["[UNK]"])):
        model_dir = Path(result["model_dir"])
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        assert UNSEEN not in tokenizer.get_vocab()
        assert tokenizer.tokenize(f"the {UNSEEN} was good") == ["the", *expected, "was", "good"]
        model = load_classifier(str(model_dir)).eval()
        with torch.no_grad():
            logits = model(**tokenizer([f"{UNSEEN} {UNSEEN}!"], return_tensors="pt")).logits
        assert logits.shape == (1, 2) and torch.isfinite(logits).all()
    assert pruned_no_chars["vocab_after"] < pruned["vocab_after"]


def test_nearest_keeps_dropped_words_whole(
    pruned: dict, pruned_nearest: dict, teacher_dir: Path, teacher_json: dict,
    train_texts: list[str]
) -> None:
    """A text made only of dropped words: one piece per word, no [UNK], every id inside
    the shrunk embedding matrix, and the logits the original model gives the same text
    with each word replaced by its nearest kept token."""
    old_vocab = teacher_json["model"]["vocab"]
    kept = set(kept_token_ids(teacher_json, train_texts))
    dropped = sorted(t for t, i in old_vocab.items() if i not in kept)
    assert UNSEEN in dropped and not any(t.startswith("##") for t in dropped)
    text = " ".join(dropped)
    assert pruned_nearest["unseen"] == "nearest" and pruned["unseen"] == "chars"
    assert pruned_nearest["unseen_mapped"] == len(dropped) and pruned["unseen_mapped"] == 0
    assert pruned_nearest["vocab_after"] == pruned["vocab_after"]
    assert pruned_nearest["config_digest"] != pruned["config_digest"]

    teacher_tokenizer = AutoTokenizer.from_pretrained(str(teacher_dir))
    assert teacher_tokenizer.unk_token_id not in teacher_tokenizer(text)["input_ids"]
    model_dir = Path(pruned_nearest["model_dir"])
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    assert tokenizer.tokenize(text) == dropped
    ids = tokenizer(text)["input_ids"]
    assert max(ids) < pruned_nearest["vocab_after"] and tokenizer.unk_token_id not in ids

    aliases = nearest_kept_tokens(
        teacher_json, sorted(kept),
        load_classifier(str(teacher_dir)).get_input_embeddings().weight.detach())
    by_id = {i: t for t, i in old_vocab.items()}
    stand_in = " ".join(by_id[aliases[t]] for t in dropped)
    after, _ = _logits(model_dir, [text])
    before, _ = _logits(teacher_dir, [stand_in])
    assert torch.allclose(before, after, atol=1e-5), (before - after).abs().max()


def test_nearest_is_the_most_similar_kept_row(teacher_dir: Path, teacher_json: dict,
                                              train_texts: list[str]) -> None:
    """Against a brute-force cosine matrix: each dropped token maps to the most similar
    kept token of its own kind (## piece or word start), never to a special token."""
    vocab = teacher_json["model"]["vocab"]
    kept = kept_token_ids(teacher_json, train_texts, keep_chars=False,
                          extra_tokens=["##e", "##s", "##t", "##y"])
    weight = load_classifier(str(teacher_dir)).get_input_embeddings().weight.detach()
    aliases = nearest_kept_tokens(teacher_json, kept, weight, chunk_size=3)
    assert aliases == nearest_kept_tokens(teacher_json, kept, weight)  # chunking is exact

    unit = torch.nn.functional.normalize(weight, dim=1)
    cosine = unit @ unit.T
    specials = {vocab[t] for t in SPECIAL}
    dropped = {t: i for t, i in vocab.items() if i not in kept}
    assert set(aliases) == set(dropped)
    assert any(t.startswith("##") for t in dropped) and any(len(t) > 1 and not
                                                            t.startswith("##") for t in dropped)
    by_id = {i: t for t, i in vocab.items()}
    for token, i in dropped.items():
        continuation = token.startswith("##")
        candidates = [j for j in kept if j not in specials
                      and by_id[j].startswith("##") == continuation]
        expected = max(candidates, key=lambda j: cosine[i, j].item())
        assert aliases[token] == expected, token
        assert aliases[token] in kept and by_id[aliases[token]].startswith("##") == continuation


def test_embedding_matrix_shrinks(pruned: dict, teacher_json: dict,
                                  train_texts: list[str]) -> None:
    kept = kept_token_ids(teacher_json, train_texts)
    model = load_classifier(pruned["model_dir"])
    weight = model.get_input_embeddings().weight
    assert tuple(weight.shape) == (len(kept), model.config.hidden_size)
    assert model.config.vocab_size == len(kept) == pruned["vocab_after"]
    assert pruned["vocab_after"] < pruned["vocab_before"]
    assert pruned["embedding_parameters_after"] < pruned["embedding_parameters_before"]
    assert pruned["unk_fraction_after"] == 0.0
    teacher = load_classifier(pruned["parent"])
    assert torch.equal(weight, teacher.get_input_embeddings().weight[kept])
    assert oct(Path(pruned["model_dir"], "model.safetensors").stat().st_mode & 0o777) == "0o644"


def test_rerun_reuses_the_finished_result(pruned: dict, teacher_dir: Path,
                                          train_texts: list[str]) -> None:
    out = Path(pruned["model_dir"]).parent
    again = prune_vocabulary(teacher_dir, out, train_texts)
    assert again == pruned
    changed = prune_vocabulary(teacher_dir, out, train_texts[:20])
    assert changed["config_digest"] != pruned["config_digest"]
    assert changed["vocab_after"] <= pruned["vocab_after"]


@pytest.mark.parametrize("variant", ["pruned", "pruned_nearest"])
def test_onnx_registry_service_round_trip(tmp_path: Path, variant: str,
                                          request: pytest.FixtureRequest,
                                          dev_texts: list[str]) -> None:
    from tokenizers import Tokenizer

    from app.classifier import OnnxClassifier
    from compression.exporting.steps import export_step
    from compression.register import register

    pruned = request.getfixturevalue(variant)
    texts = dev_texts[:8] + [f"the {UNSEEN} was fun", "zzz qqq"]
    onnx_dir = tmp_path / "onnx"
    export_step(Path(pruned["model_dir"]), onnx_dir, texts, max_length=32)
    version = register(onnx_dir, tmp_path / "models", "pruned", ["negative", "positive"], 32,
                       {"vocab": pruned["vocab_after"]})
    shipped = Tokenizer.from_file(str(version / "tokenizer.json"))  # aliases copied intact
    assert (shipped.token_to_id(UNSEEN) is not None) == (variant == "pruned_nearest")
    classifier = OnnxClassifier.load(version, providers="cpu", threads=1)
    logits, _ = _logits(Path(pruned["model_dir"]), texts)
    labels = ["negative", "positive"]
    assert [p.label for p in classifier.predict(texts)] == \
        [labels[i] for i in logits.argmax(-1).tolist()]


def test_min_count_keeps_only_the_frequent_tokens(teacher_json: dict,
                                                  train_texts: list[str]) -> None:
    from collections import Counter

    from tokenizers import Tokenizer

    texts = [*train_texts, UNSEEN]  # the toy sentences repeat: one word used only once
    tokenizer = Tokenizer.from_str(json.dumps(teacher_json))
    counts = Counter(i for text in texts for i in tokenizer.encode(text).ids)
    vocab = teacher_json["model"]["vocab"]
    rare = {i for i, n in counts.items() if n < 3}
    assert vocab[UNSEEN] in rare
    every = set(kept_token_ids(teacher_json, texts, keep_chars=False))
    frequent = set(kept_token_ids(teacher_json, texts, keep_chars=False, min_count=3))
    specials = {vocab[t] for t in SPECIAL if t in vocab}
    assert frequent == every - (rare - specials)
    assert specials <= frequent  # special tokens stay whatever their count
    with pytest.raises(ConfigError, match="min_count must be >= 1, got 0"):
        kept_token_ids(teacher_json, train_texts, min_count=0)


def test_bad_parameters(tmp_path: Path, teacher_dir: Path, teacher_json: dict,
                        train_texts: list[str]) -> None:
    no_unk = json.loads(json.dumps(teacher_json))
    del no_unk["model"]["vocab"]["[UNK]"]
    with pytest.raises(ConfigError, match=r"\[UNK\]"):
        kept_token_ids(no_unk, train_texts)
    with pytest.raises(ConfigError, match="texts"):
        kept_token_ids(teacher_json, [])
    with pytest.raises(ConfigError, match="texts"):
        prune_vocabulary(teacher_dir, tmp_path / "empty", ["  "])
    with pytest.raises(ConfigError, match="extra"):
        kept_token_ids(teacher_json, train_texts, extra_tokens=["nosuchtoken"])
    with pytest.raises(ConfigError, match=r"^unseen must be one of chars, nearest; "
                                          r"got 'closest'$"):
        prune_vocabulary(teacher_dir, tmp_path / "bad-unseen", train_texts, unseen="closest")
    assert not (tmp_path / "bad-unseen").exists()
    kept = kept_token_ids(teacher_json, train_texts)
    with pytest.raises(ConfigError, match="alias"):  # an alias must point at a kept token
        pruned_tokenizer_json(teacher_json, kept, {UNSEEN: teacher_json["model"]["vocab"][UNSEEN]})

    broken = tmp_path / "no-pad-model"
    shutil.copytree(teacher_dir, broken)
    data = json.loads((broken / "tokenizer.json").read_text())
    del data["model"]["vocab"]["[PAD]"]
    (broken / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"\[PAD\]"):
        prune_vocabulary(broken, tmp_path / "no-pad", train_texts)
    assert not (tmp_path / "no-pad" / "result.json").exists()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], teacher_dir: Path,
             toy_data: dict[str, Path]) -> None:
    code = main(["prune-vocab", "--model", str(teacher_dir), "--train",
                 str(tmp_path / "missing.tsv"), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err

    code = main(["prune-vocab", "--model", str(tmp_path / "nothing"), "--train",
                 str(toy_data["train"]), "--output", str(tmp_path / "out")])
    assert code == 2 and capsys.readouterr().err.startswith("error:")

    code = main(["prune-vocab", "--model", str(teacher_dir), "--train", str(toy_data["train"]),
                 "--output", str(tmp_path / "out"), "--limit-train", "50"])
    out = capsys.readouterr().out.strip()
    assert code == 0
    assert out.startswith("prune-vocab: vocabulary ") and out.endswith(
        str(tmp_path / "out" / "model")), out
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["step"] == "prune-vocab" and result["texts"] == 50

    code = main(["prune-vocab", "--model", str(teacher_dir), "--train", str(toy_data["train"]),
                 "--output", str(tmp_path / "frequent"), "--limit-train", "50",
                 "--min-count", "3"])
    capsys.readouterr()
    frequent = json.loads((tmp_path / "frequent" / "result.json").read_text())
    assert code == 0 and frequent["min_count"] == 3
    assert frequent["vocab_after"] < result["vocab_after"]

    with pytest.raises(SystemExit) as exc:
        main(["prune-vocab", "--help"])
    assert exc.value.code == 0
    assert "--no-keep-chars" in capsys.readouterr().out


def test_token_id_map_gives_the_student_its_own_ids(pruned: dict, pruned_nearest: dict,
                                                     teacher_dir: Path,
                                                     train_texts: list[str]) -> None:
    """A "nearest" student reads any text, seen words or not, through the teacher's ids
    exactly as its own tokenizer would; a "chars" student splits words differently."""
    student_dir = Path(pruned_nearest["model_dir"])
    id_map = token_id_map(teacher_dir / "tokenizer.json", student_dir / "tokenizer.json")
    teacher_tokenizer = AutoTokenizer.from_pretrained(str(teacher_dir))
    student_tokenizer = AutoTokenizer.from_pretrained(str(student_dir))
    # Character pieces sit at the end of the vocabulary: past the shrunk table.
    texts = [*train_texts[:20], f"the {UNSEEN} was dull", "zq9 xj"]
    teacher_ids = teacher_tokenizer(texts)["input_ids"]
    student_ids = student_tokenizer(texts)["input_ids"]
    assert max(max(ids) for ids in teacher_ids) >= pruned_nearest["vocab_after"]
    assert teacher_ids != student_ids
    assert [id_map[torch.tensor(ids)].tolist() for ids in teacher_ids] == student_ids
    with pytest.raises(ConfigError, match="unseen: nearest"):
        token_id_map(teacher_dir / "tokenizer.json",
                     Path(pruned["model_dir"]) / "tokenizer.json")


def test_a_nearest_pruned_student_distils_on_through_the_map(
        tmp_path: Path, pruned_nearest: dict, teacher_dir: Path,
        toy_data: dict[str, Path]) -> None:
    """Distilling a vocabulary-pruned student trains its shrunk table and keeps its own
    tokenizer byte for byte (re-saving an aliased tokenizer.json would lose strings)."""
    from compression.config.steps import DataConfig, DistillConfig, TrainConfig
    from compression.training.distill import distill

    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=32)
    start = Path(pruned_nearest["model_dir"])
    result = distill(str(teacher_dir), data, TrainConfig(max_steps=3, batch_size=16),
                     DistillConfig(alpha_hidden=1.0), tmp_path / "recovered",
                     student_ref=str(start))
    out = Path(result["model_dir"])
    assert result["student_vocab_size"] == pruned_nearest["vocab_after"]
    assert (out / "tokenizer.json").read_bytes() == (start / "tokenizer.json").read_bytes()
    before = load_classifier(str(start)).get_input_embeddings().weight
    after = load_classifier(str(out)).get_input_embeddings().weight
    assert after.shape == before.shape and not torch.equal(after, before)
