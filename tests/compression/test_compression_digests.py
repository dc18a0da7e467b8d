"""Reuse keys survive the restructure of issue #21: a step folder finished by the code
before it is reused by the code after it.

`fixtures/digests_before_restructure.json` holds, for small configs of every cached step,
the digest that the code at commit cb03ac2 (before the restructure) computed; it was
recorded by running that code's step functions up to their reuse check, on the input
files listed in the fixture (fixed bytes: a reused step never reads them, only hashes
them) with relative paths. Each test here rebuilds those inputs and asks today's code.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from compression.config.steps import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    PruneConfig,
    QatConfig,
    QuantConfig,
    SparsityConfig,
    TrainConfig,
)
from compression.core import steps
from compression.core.files import RESULT_FILE
from compression.exporting.steps import export_step, quantize_step
from compression.pruning.structured import prune_structure
from compression.pruning.vocabulary import prune_vocabulary
from compression.training.distill import distill
from compression.training.finetune import finetune

FIXTURE = json.loads((Path(__file__).parent / "fixtures" /
                      "digests_before_restructure.json").read_text())
SCENARIOS: dict[str, dict[str, Any]] = FIXTURE["scenarios"]
DATA = DataConfig(train="train.tsv", dev="dev.tsv",
                  label_names={"0": "negative", "1": "positive"}, max_length=32, limit_train=32)
TRAIN = TrainConfig(max_steps=1, batch_size=16, warmup=0.0)
TEXTS = ["good film", "bad movie", "a really fun story", "the plot was dull"]


@pytest.fixture()
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture's input files in a fresh working folder (the keys hold relative paths)."""
    monkeypatch.chdir(tmp_path)
    for name, text in FIXTURE["files"].items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)
    return tmp_path


def _distill(s: dict[str, Any]) -> dict[str, Any]:
    return distill(
        "teacher", DATA, TRAIN, DistillConfig(**s["config"]), Path("out"),
        student_ref=s.get("student_ref"),
        sparsity=SparsityConfig(**s["sparsity"]) if "sparsity" in s else None,
        quantization_aware=QatConfig(**s["qat"]) if "qat" in s else None,
        augment=AugmentConfig(**s["augment"]) if "augment" in s else None,
        embedding_rank=s.get("embedding_rank"), extra_teachers=s.get("extra_teachers", ()))


def _quantize(s: dict[str, Any]) -> dict[str, Any]:
    config = QuantConfig.preset(s["preset"])
    if "calibration_size" in s:
        config = replace(config, calibration_size=s["calibration_size"])
    return quantize_step(Path("onnx"), Path("out"), config, TEXTS, TEXTS, 32)


STEPS = {
    "finetune": lambda s: finetune(s["model"], DATA, TrainConfig(**s["train"]), Path("out")),
    "distill": _distill,
    "export": lambda s: export_step(Path(s["model"]), Path("out"), TEXTS, 32,
                                    optimize=s.get("optimize", False),
                                    tolerance=s.get("tolerance", 1e-3)),
    "quantize": _quantize,
    "prune-structure": lambda s: prune_structure(Path("teacher"), Path("out"), TEXTS,
                                                 [1, 0, 1, 0], PruneConfig(**s["prune"]), 32),
    "prune-vocab": lambda s: prune_vocabulary(
        Path("teacher"), Path("out"), TEXTS, keep_chars=s.get("keep_chars", True),
        extra_tokens=s.get("extra_tokens", ()), unseen=s.get("unseen", "chars"),
        min_count=s.get("min_count", 1)),
}


class _Asked(Exception):
    """Raised instead of looking for a finished result: the digest asked about."""


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_step_computes_the_digest_it_computed_before(
        name: str, inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def ask(output_dir: Path, digest: str) -> None:
        raise _Asked(digest)

    monkeypatch.setattr(steps, "finished_result", ask)
    scenario = SCENARIOS[name]
    with pytest.raises(_Asked) as asked:
        STEPS[scenario["step"]](scenario)
    assert asked.value.args[0] == scenario["digest"]


@pytest.mark.parametrize("name", ["distill-everything", "export-optimized",
                                  "quantize-static-float-outputs", "prune-structure-global",
                                  "prune-vocab-nearest-min-count", "finetune-custom"])
def test_a_folder_finished_before_the_restructure_is_reused(name: str, inputs: Path) -> None:
    """No monkeypatching: the step finds the old result.json and returns it untouched
    (the inputs are not even loadable models, so any work would fail)."""
    scenario = SCENARIOS[name]
    finished = {"step": scenario["step"], "config_digest": scenario["digest"],
                "made_by": "the code before the restructure"}
    Path("out").mkdir()
    (Path("out") / RESULT_FILE).write_text(json.dumps(finished))
    assert STEPS[scenario["step"]](scenario) == finished
