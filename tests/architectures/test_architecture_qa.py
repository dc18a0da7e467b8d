"""Question answering on the architectures whose inputs and tokenizers differ most from
BERT's: RoBERTa (byte-level BPE, `<s> q </s></s> c </s>` pairs, no token types) and
DistilBERT (no token types): fine-tune a span head, distil a one-layer student, prune its
FFN neurons by the span loss and recover, export and quantize (static INT8), evaluate and
publish, with the answers read through the service's windows."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_architectures import build_encoder
from toy_qa import write_toy_squad

from compression.config.pipeline_file import PipelineConfig
from compression.pipeline import Pipeline
from registry import Manifest

FAST = {"epochs": 8, "learning_rate": 5e-3, "batch_size": 16, "warmup": 0}


@pytest.fixture(autouse=True)
def _no_memory_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    from compression.evaluation import evaluate

    monkeypatch.setattr(evaluate, "peak_memory_mb", lambda *a, **k: float("nan"))


@pytest.mark.parametrize("arch", ["roberta", "distilbert"])
def test_a_reader_of_another_architecture_is_compressed_and_published(arch: str,
                                                                      tmp_path: Path) -> None:
    config = PipelineConfig.from_dict({
        "name": "toy-qa", "work_dir": str(tmp_path / "run"),
        "registry": str(tmp_path / "models"),
        "data": {"train": str(write_toy_squad(tmp_path / "train.json", 160, 1, (4, 30))),
                 "dev": str(write_toy_squad(tmp_path / "dev.json", 30, 2, (4, 30))),
                 "task": "question-answering", "max_length": 32, "doc_stride": 8,
                 "max_question_length": 8, "max_answer_length": 5},
        "teacher": {"pretrained": str(build_encoder(arch, tmp_path / "encoder")),
                    "train": FAST},
        "students": [{"name": "l1", "train": {**FAST, "epochs": 6},
                      "distill": {"num_layers": 1, "alpha_ce": 0.5, "alpha_kl": 0.5,
                                  "alpha_hidden": 1.0},
                      "prune": {"ffn": 16, "importance_batches": 2}}],
        "export": {"teacher": False},
        "quantize": [{"name": "int8", "mode": "static"}],
        "evaluate": {"rounds": 1, "calibration_size": 16},
        "register": {"variants": ["l1-pruned-int8"], "max_drop": 100},
    })
    out = Pipeline(config).run()
    reports = {r.name: r for r in out["reports"]}
    assert reports["teacher-torch-fp32"].f1 >= 0.7  # a learnable toy task
    assert reports["l1-pruned-int8"].f1 >= 0.7
    (published,) = out["published"]
    manifest = Manifest.read(Path(published))
    assert manifest.task == "question-answering" and manifest.qa is not None
