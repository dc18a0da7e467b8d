"""`auto` on other architectures and on token classification: the search adapts its
space (a BPE vocabulary's dropped tokens become characters, a WordPiece one's aliases of
the nearest kept token; MPNet keeps its heads and prunes FFN neurons only; a token
classifier takes no structured pruning) and publishes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from arch_chain import LABELS, MAX_LENGTH, Chain

from compression.cli.main import main
from registry import Manifest, list_versions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_models import build_classifier  # noqa: E402
from toy_ner import write_toy_conll  # noqa: E402


@pytest.fixture(autouse=True)
def _no_memory_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    from compression.evaluation import evaluate

    monkeypatch.setattr(evaluate, "peak_memory_mb", lambda *a, **k: float("nan"))


def _auto(tmp_path: Path, model: Path, train: Path, dev: Path, *extra: str) -> dict:
    """Run auto with any drop in budget (tiny random models); the search state."""
    code = main(["auto", "--model", str(model), "--train", str(train), "--dev", str(dev),
                 "--name", "tiny", "--registry", str(tmp_path / "models"),
                 "--work-dir", str(tmp_path / "run"), "--max-drop", "100",
                 "--max-length", str(MAX_LENGTH), *extra])
    assert code == 0
    assert list_versions(tmp_path / "models", "tiny") == ["1"]
    return json.loads((tmp_path / "run" / "auto" / "state.json").read_text())


@pytest.mark.parametrize(("arch", "unseen", "heads"), [("roberta", "chars", True),
                                                       ("mpnet", "nearest", False)])
def test_auto_fits_the_search_to_the_architecture(arch: str, unseen: str, heads: bool,
                                                  chain: Chain, tmp_path: Path) -> None:
    state = _auto(tmp_path, chain.teacher(arch), chain.train, chain.dev,
                  "--label-names", LABELS)
    steps = state["steps"]
    assert steps["teacher-v999"]["spec"]["unseen"] == unseen
    pruned = steps["l1-w50"]["spec"]["students"][-1]["prune"]
    assert ("heads" in pruned) == heads and pruned["ffn"] >= 1
    assert Manifest.read(tmp_path / "models" / "tiny" / "1").budget is not None


def test_auto_fine_tunes_a_tagger_and_publishes_it(tmp_path: Path) -> None:
    encoder = build_classifier(tmp_path / "encoder", labels=("0", "1"))  # no tagging head
    train = write_toy_conll(tmp_path / "data" / "train.txt", 160, seed=1)
    dev = write_toy_conll(tmp_path / "data" / "dev.txt", 40, seed=2)
    state = _auto(tmp_path, encoder, train, dev, "--task", "token-classification")
    assert state["teacher"]["metric"] == "micro_f1"
    assert "l1" in state["steps"]
    if "l1-w50" in state["steps"]:  # structured pruning applies to taggers too
        assert state["steps"]["l1-w50"]["spec"]["students"][-1]["prune"]["ffn"] >= 1
    manifest = Manifest.read(tmp_path / "models" / "tiny" / "1")
    assert manifest.task == "token-classification"
    assert manifest.budget is not None and manifest.budget.metric == "dev_micro_f1"
    assert json.loads((tmp_path / "run" / "teacher" / "result.json").read_text())[
        "step"] == "finetune"
