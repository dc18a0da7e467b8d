"""Structured and vocabulary pruning of every supported model type: the requested shapes,
a pruned layer computing exactly what the unpruned one did without the dropped heads and
neurons, a model without some of its layers computing what those layers did, kept tokens
keeping their embedding rows (WordPiece, byte-level BPE and Unigram vocabularies), and
what an architecture or tokenizer cannot take refused with one line before anything is
written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from arch_chain import LABELS, Chain
from tiny_architectures import ARCHITECTURES, HEADS, tiny_config
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from compression.cli.main import main
from compression.config.steps import PruneConfig
from compression.models.architectures import adapter_for
from compression.models.loading import load_classifier
from compression.models.shapes import SHAPES_KEY, layer_shapes
from compression.pruning.structured import keep_layers, prune_layer, prune_structure
from compression.pruning.tokenizer_models import vocab_of
from compression.pruning.vocabulary import prune_vocabulary, token_id_map


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_structured_pruning_gives_the_requested_shapes(arch: str, chain: Chain, tmp_path: Path,
                                                       texts: dict[str, list[str]]) -> None:
    heads = None if arch == "mpnet" else 2
    result = prune_structure(chain.teacher(arch), tmp_path, texts["train"], chain.labels(),
                             PruneConfig(heads=heads, ffn=24, importance_batches=2))
    model = load_classifier(result["model_dir"])  # rebuilt from config.pruned_layers
    adapter = adapter_for(model)
    layers = adapter.layers(model)
    assert [adapter.heads(layer) for layer in layers] == [heads or HEADS] * len(layers)
    assert [adapter.ffn_width(layer) for layer in layers] == [24] * len(layers)
    for layer in layers:
        assert all(m.out_features == (heads or HEADS) * adapter.head_size(layer)
                   for m in adapter.qkv(layer))
    assert result["parameters_after"] < result["parameters_before"]
    batch = AutoTokenizer.from_pretrained(result["model_dir"])(texts["dev"][:4], padding=True,
                                                               return_tensors="pt")
    assert model(**batch).logits.shape == (4, 2)


CASES = [(arch, {}) for arch in ARCHITECTURES] + [("deberta-v2", {"share_att_key": False})]


@pytest.mark.parametrize(("arch", "overrides"), CASES)
def test_a_pruned_layer_computes_the_masked_layer(arch: str, overrides: dict) -> None:
    """Cutting heads 0 and 2 and half the FFN changes nothing but removing their
    contributions (the columns of the Linears that read them set to zero)."""
    torch.manual_seed(0)
    config = tiny_config(arch, 120, initializer_range=0.3, **overrides)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    adapter = adapter_for(model)
    layer = adapter.layers(model)[0]
    keep_heads = list(range(HEADS)) if arch == "mpnet" else [1, 3]
    keep_neurons = list(range(0, adapter.ffn_width(layer), 2))
    ids = torch.randint(5, 120, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    size = adapter.head_size(layer)
    with torch.no_grad():
        for head in set(range(HEADS)) - set(keep_heads):
            adapter.attention_output(layer).weight[:, head * size:(head + 1) * size] = 0
        dropped = sorted(set(range(adapter.ffn_width(layer))) - set(keep_neurons))
        adapter.ffn_output(layer).weight[:, dropped] = 0
        masked = model(input_ids=ids, attention_mask=mask).logits
        prune_layer(layer, keep_heads, keep_neurons)
        pruned = model(input_ids=ids, attention_mask=mask).logits
    assert adapter.heads(layer) == len(keep_heads)
    assert torch.allclose(masked, pruned, atol=1e-5), (masked - pruned).abs().max()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_removing_layers_keeps_what_the_kept_layers_compute(arch: str, tmp_path: Path) -> None:
    """A head-pruned 3-layer model without its last layer ends where the original's
    second layer did; without its middle one, its first layer's output is unchanged;
    each kept layer keeps its pruned shape through a save and load."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(
        tiny_config(arch, 120, initializer_range=0.3, num_hidden_layers=3)).eval()
    adapter = adapter_for(model)
    for index, layer in enumerate(adapter.layers(model)):
        heads = list(range(HEADS)) if arch == "mpnet" else list(range(index + 1))
        prune_layer(layer, heads, list(range(16 * (index + 1))))
    setattr(model.config, SHAPES_KEY, layer_shapes(model))
    ids = torch.randint(5, 120, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        first_two = keep_layers(model, [0, 1]).eval()
        ends = first_two(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        assert torch.allclose(ends.hidden_states[-1], full.hidden_states[2], atol=1e-5)
        outer = keep_layers(model, [0, 2]).eval()
        outer.save_pretrained(str(tmp_path))
        reloaded = load_classifier(str(tmp_path)).eval()
        starts = reloaded(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        assert torch.allclose(starts.hidden_states[1], full.hidden_states[1], atol=1e-5)
        assert torch.allclose(reloaded(input_ids=ids, attention_mask=mask).logits,
                              outer(input_ids=ids, attention_mask=mask).logits, atol=1e-5)
    assert layer_shapes(reloaded) == [layer_shapes(model)[0], layer_shapes(model)[2]]
    assert adapter.shape(reloaded.config).num_layers == 2


def _error(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    capsys.readouterr()  # what building the fixtures printed
    assert main([str(a) for a in argv]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    return lines[0]


def test_mpnet_head_pruning_is_refused_before_any_work(
        chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, "prune-structure", "--model", chain.encoder("mpnet"),
                  "--output", tmp_path / "out", "--heads", "2", "--train", chain.train,
                  "--dev", chain.dev, "--label-names", LABELS)
    assert "head pruning is not available for mpnet" in line
    assert "relative-position bias" in line
    assert not (tmp_path / "out").exists()


def test_a_layer_the_model_lacks_is_refused_before_anything_is_written(
        chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, "prune-structure", "--model", chain.encoder("roberta"),
                  "--output", tmp_path / "out", "--layers", "0,2", "--train", chain.train,
                  "--dev", chain.dev, "--label-names", LABELS)
    assert line == "error: layers [0, 2]: the model has 2 encoder layers (0..1)"
    assert not (tmp_path / "out").exists()
    line = _error(capsys, "prune-structure", "--model", chain.encoder("roberta"),
                  "--output", tmp_path / "out", "--layers", "1,0", "--train", chain.train,
                  "--dev", chain.dev, "--label-names", LABELS)
    assert "increasing order" in line


def _rows(model_dir: Path) -> tuple[dict[str, int], torch.Tensor]:
    vocab = vocab_of(json.loads((model_dir / "tokenizer.json").read_text()))
    return vocab, load_classifier(str(model_dir)).get_input_embeddings().weight.detach()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_vocabulary_pruning_keeps_each_kept_tokens_row(arch: str, chain: Chain,
                                                       tmp_path: Path,
                                                       texts: dict[str, list[str]]) -> None:
    teacher = chain.teacher(arch)
    result = prune_vocabulary(teacher, tmp_path, texts["train"])
    pruned = Path(result["model_dir"])
    old_vocab, old_rows = _rows(teacher)
    new_vocab, new_rows = _rows(pruned)
    assert result["vocab_after"] == len(new_rows) < len(old_rows)
    assert set(new_vocab) < set(old_vocab)
    for token, new_id in new_vocab.items():
        assert torch.equal(new_rows[new_id], old_rows[old_vocab[token]]), token
    old_tok, new_tok = (AutoTokenizer.from_pretrained(str(d)) for d in (teacher, pruned))
    assert new_tok.pad_token == old_tok.pad_token
    assert load_classifier(str(pruned)).config.pad_token_id == new_tok.pad_token_id
    # The training sentences split into the same strings, so the logits are the same.
    sample = texts["train"][:16]
    for text in sample:
        old_ids, new_ids = old_tok(text)["input_ids"], new_tok(text)["input_ids"]
        assert old_tok.convert_ids_to_tokens(old_ids) == new_tok.convert_ids_to_tokens(new_ids)
    with torch.no_grad():
        before = load_classifier(str(teacher))(**old_tok(sample, padding=True,
                                                         return_tensors="pt")).logits
        after = load_classifier(str(pruned))(**new_tok(sample, padding=True,
                                                       return_tensors="pt")).logits
    assert torch.allclose(before, after, atol=1e-5)
    assert result["unk_fraction_after"] == 0.0


@pytest.mark.parametrize(("arch", "kind"), [("roberta", "BPE"), ("xlm-roberta", "Unigram"),
                                            ("deberta-v2", "Unigram")])
def test_nearest_aliases_are_refused_outside_wordpiece(
        arch: str, kind: str, chain: Chain, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, "prune-vocab", "--model", chain.encoder(arch), "--train",
                  chain.train, "--output", tmp_path / "out", "--unseen", "nearest")
    assert f"not available for {arch} models ({kind} tokenizer)" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("arch", ["bert", "distilbert", "electra", "mpnet"])
def test_nearest_aliases_work_for_every_wordpiece_model(arch: str, chain: Chain,
                                                        tmp_path: Path,
                                                        texts: dict[str, list[str]]) -> None:
    """A WordPiece vocabulary (MPNet's with <s>, <pad> at 1 and [UNK]) takes aliases, and
    a student pruned so still reads the teacher's token ids."""
    encoder = chain.encoder(arch)
    result = prune_vocabulary(encoder, tmp_path, texts["train"], unseen="nearest")
    pruned = Path(result["model_dir"])
    assert result["unseen_mapped"] > 0
    id_map = token_id_map(encoder / "tokenizer.json", pruned / "tokenizer.json")
    old_tok, new_tok = (AutoTokenizer.from_pretrained(str(d)) for d in (encoder, pruned))
    text = "a quiet kitchen garden"  # words the toy task never uses
    new = new_tok(text)["input_ids"]
    assert id_map[old_tok(text)["input_ids"]].tolist() == new
    assert new_tok.convert_ids_to_tokens(new[:1]) == old_tok.convert_ids_to_tokens(
        old_tok(text)["input_ids"][:1])
    assert new_tok.pad_token_id == old_tok.pad_token_id  # MPNet's positions count from it


@pytest.mark.parametrize(("arch", "student", "message"), [
    ("mpnet", {"prune": {"heads": 2, "ffn": 32}}, "head pruning is not available for mpnet"),
    ("roberta", {"prune_vocab": "nearest"}, "not available for roberta models (BPE"),
])
def test_a_pipeline_is_refused_before_its_first_step(
        arch: str, student: dict, message: str, chain: Chain, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "name": "toy", "work_dir": str(tmp_path / "run"), "registry": str(tmp_path / "models"),
        "data": {"train": str(chain.train), "dev": str(chain.dev), "max_length": 32,
                 "label_names": {"0": "negative", "1": "positive"}},
        "teacher": {"pretrained": str(chain.encoder(arch))},
        "students": [{"name": "s", "distill": {"num_layers": 1}, **student}],
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    line = _error(capsys, "pipeline", path)
    assert message in line and line.startswith("error: students[0] (s): ")
    assert not (tmp_path / "run").exists() and not (tmp_path / "models").exists()
