"""Every supported model type through the whole chain, by the commands a user runs:
finetune -> distill -> prune-structure -> prune-vocab -> export -> quantize -> register
-> a prediction from the service; and a model type with no adapter refused by every
command with one line, before anything is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from arch_chain import LABELS, MAX_LENGTH, Chain, run_cli
from tiny_architectures import ARCHITECTURES
from tiny_models import save_tokenizer
from transformers import AutoTokenizer

from compression.cli.main import main
from compression.evaluation.evaluate import evaluate
from compression.evaluation.runners import Variant
from compression.models.architectures import adapter_for
from compression.models.loading import load_classifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from service_helpers import serve  # noqa: E402


def torch_labels(model_dir: Path, texts: list[str]) -> list[str]:
    """What the PyTorch classifier in `model_dir` answers, padded with its own pad id."""
    model = load_classifier(str(model_dir)).eval()
    names = adapter_for(model).input_names(model.config)
    batch = AutoTokenizer.from_pretrained(str(model_dir))(
        texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k in names}).logits
    return [model.config.id2label[i] for i in logits.argmax(-1).tolist()]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_whole_chain_to_a_served_prediction(arch: str, chain: Chain, tmp_path: Path,
                                            texts: dict[str, list[str]]) -> None:
    teacher = chain.teacher(arch)
    assert load_classifier(str(teacher)).config.model_type == arch
    assert json.loads((teacher.parent / "result.json").read_text())["dev_accuracy"] >= 0.9
    student = chain.student(arch)
    assert load_classifier(str(student)).config.model_type == arch

    heads = [] if arch == "mpnet" else ["--heads", "2"]  # mpnet: FFN only (see pruning tests)
    run_cli("prune-structure", "--model", student, "--output", tmp_path / "pruned", *heads,
            "--ffn", "24", "--importance-batches", "4", *chain.data_args())
    pruned = tmp_path / "pruned" / "pruned" / "model"
    run_cli("prune-vocab", "--model", pruned, "--train", chain.train,
            "--output", tmp_path / "vocab")
    final = tmp_path / "vocab" / "model"
    run_cli("export", "--model", final, "--output", tmp_path / "onnx",
            "--check-data", chain.dev, "--max-length", MAX_LENGTH)
    run_cli("quantize", "--model", tmp_path / "onnx", "--output", tmp_path / "int8",
            "--calibration-data", chain.train, "--calibration-size", "64",
            "--check-data", chain.dev, "--max-length", MAX_LENGTH)
    name = f"tiny-{arch}"
    run_cli("register", "--model", tmp_path / "int8", "--name", name, "--labels",
            "negative,positive", "--registry", tmp_path / "models", "--max-length", MAX_LENGTH)

    # evaluate: the PyTorch runner feeds what the shared batch encoder makes (token type
    # ids included) to any architecture; the ONNX runners only what their graph declares.
    variants = [Variant.from_path(final, "torch"),
                Variant.from_path(tmp_path / "int8" / "model.onnx", "int8"),
                Variant.from_path(tmp_path / "models" / name / "1")]
    reports = evaluate(variants, texts["dev"][:16], chain.labels("dev")[:16], MAX_LENGTH,
                       threads=1, rounds=1, memory=False)
    assert [r.agreement >= 0.9 for r in reports] == [True] * 3

    probe = texts["dev"][:12]
    with serve(tmp_path / "models") as client:
        response = client.post("/predict", json={"texts": probe, "model": name})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"]) == (name, "1")
    served = [p["label"] for p in body["predictions"]]
    # The service answers as the PyTorch model it came from (INT8 may flip a borderline one).
    expected = torch_labels(final, probe)
    assert sum(s == e for s, e in zip(served, expected, strict=True)) >= len(probe) - 1


UNSUPPORTED = {"model_type": "gpt2", "architectures": ["GPT2ForSequenceClassification"],
               "id2label": {"0": "negative", "1": "positive"}}


def _commands(model: Path, out: Path, chain: Chain) -> dict[str, list[object]]:
    data = ["--train", chain.train, "--dev", chain.dev, "--label-names", LABELS]
    return {
        "finetune": ["finetune", "--model", model, "--output", out, *data],
        "distill": ["distill", "--teacher", model, "--output", out, *data],
        "prune-structure": ["prune-structure", "--model", model, "--output", out, "--heads",
                            "1", *data],
        "prune-vocab": ["prune-vocab", "--model", model, "--train", chain.train,
                        "--output", out],
        "prune-vocab-nearest": ["prune-vocab", "--model", model, "--train", chain.train,
                                "--output", out, "--unseen", "nearest"],
        "export": ["export", "--model", model, "--output", out, "--check-data", chain.dev],
    }


def test_an_unknown_model_type_is_one_line_and_writes_nothing(
        chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "gpt2"
    save_tokenizer(model)  # a tokenizer is there: the model type is what is wrong
    (model / "config.json").write_text(json.dumps(UNSUPPORTED))
    for command, argv in _commands(model, tmp_path / "out", chain).items():
        assert main([str(a) for a in argv]) == 2, command
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (command, lines)
        assert "'gpt2' is not a BERT-family encoder" in lines[0], (command, lines)
        assert all(arch in lines[0] for arch in ARCHITECTURES), lines[0]
        assert not (tmp_path / "out").exists(), command
