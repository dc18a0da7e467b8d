"""The standalone commands on a token classifier, as `pipeline` runs them: `finetune` on
CoNLL columns, `prune-structure` (importance from the tagged positions, recovered by
distillation), `prune-vocab` reading the CoNLL file, `export`, `quantize`, `evaluate`
(entity precision, recall and F1) and `register`; and one clear line where a command
cannot take what it is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import run_cli
from toy_ner import write_toy_conll

from compression.cli.main import main
from registry import Manifest

FAST = ["--lr", "5e-3", "--batch-size", "16", "--warmup", "0", "--max-length", "32"]


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> dict[str, Path]:
    """A tiny token classifier fine-tuned by the CLI."""
    work = tmp_path_factory.mktemp("token-cli")
    train = write_toy_conll(work / "train.txt", 160, seed=1)
    dev = write_toy_conll(work / "valid.txt", 40, seed=2)
    assert main(["finetune", "--model", str(tiny_encoder), "--output", str(work / "ft"),
                 "--train", str(train), "--dev", str(dev), "--task", "token-classification",
                 "--epochs", "10", *FAST]) == 0
    return {"work": work, "train": train, "dev": dev, "model": work / "ft" / "model"}


def test_prune_export_quantize_evaluate_register(
        tagger: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--train", tagger["train"], "--dev", tagger["dev"],
            "--task", "token-classification"]
    code, out, err = run_cli(capsys, "prune-structure", "--model", tagger["model"], "--output",
                          tmp_path / "pruned", "--heads", 1, "--ffn", 32, "--teacher",
                          tagger["model"], "--importance-batches", 4, "--epochs", 6,
                          *data, *FAST)
    assert code == 0, err
    config = json.loads((tmp_path / "pruned" / "model" / "config.json").read_text())
    assert all(layer == {"heads": 1, "intermediate_size": 32}
               for layer in config["pruned_layers"])
    code, out, err = run_cli(capsys, "prune-vocab", "--model", tmp_path / "pruned" / "model",
                          "--train", tagger["train"], "--output", tmp_path / "vocab",
                          "--unseen", "nearest")
    assert code == 0, err
    assert json.loads((tmp_path / "vocab" / "result.json").read_text())["vocab_after"] < \
        json.loads((tmp_path / "vocab" / "result.json").read_text())["vocab_before"]
    for step, source, output in (("export", tmp_path / "vocab" / "model", tmp_path / "fp32"),
                                 ("quantize", tmp_path / "fp32", tmp_path / "int8")):
        extra = (["--calibration-data", tagger["train"], "--calibration-size", 32,
                  "--preset", "static-float-outputs"] if step == "quantize" else [])
        code, _, err = run_cli(capsys, step, "--model", source, "--output", output,
                            "--check-data", tagger["dev"], *extra)
        assert code == 0, (step, err)
    # No --task: the models say they tag tokens; scored by entity F1.
    code, stdout, err = run_cli(capsys, "evaluate", tagger["model"], tmp_path / "int8" /
                             "model.onnx", "--data", tagger["dev"], "--train", tagger["train"],
                             "--rounds", 1, "--output", tmp_path / "eval")
    assert code == 0, err
    reports = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert len(reports) == 2 and reports[0]["micro_f1"] > 0.9
    assert "| tag acc | entity F1 |" in stdout and "Δ F1 (pts)" in stdout
    assert reports[1]["micro_f1"] > 0.8  # pruned, vocabulary cut, INT8: still tagging
    code, _, err = run_cli(capsys, "register", "--model", tmp_path / "int8", "--name", "ner",
                        "--labels", "O,B-LOC,I-LOC,B-PER,I-PER",
                        "--registry", tmp_path / "models")
    assert code == 0, err
    manifest = Manifest.read(tmp_path / "models" / "ner" / "1")
    assert manifest.task == "token-classification"
    assert "prune-structure" in manifest.lineage.method


def test_what_a_token_classifier_cannot_take_is_one_line(
        tagger: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "evaluate", tagger["model"], "--data", tagger["dev"],
                        "--task", "question-answering", "--output", tmp_path / "e")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "token-classification model" in lines[0], err
