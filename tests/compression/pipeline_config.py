"""The small pipeline config that the pipeline tests start from and edit."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_config(tmp_path: Path, teacher_dir: Path, train: Path, dev: Path, **data) -> Path:  # type: ignore[no-untyped-def]
    config = {
        "name": "toy-sentiment",
        "work_dir": str(tmp_path / "run"),
        "registry": str(tmp_path / "models"),
        "data": {"train": str(train), "dev": str(dev), "max_length": 32,
                 "label_names": {"0": "negative", "1": "positive"}, **data},
        "teacher": {"finetuned": str(teacher_dir)},
        "students": [{
            "name": "l1",
            "distill": {"num_layers": 1, "temperature": 2.0, "alpha_ce": 0.5, "alpha_kl": 0.5},
            "train": {"epochs": 1, "learning_rate": "3e-3", "batch_size": 16, "warmup": 0},
        }],
        "quantize": [{"name": "int8", "mode": "static", "calibration_size": 32}],
        "evaluate": {"rounds": 1, "calibration_size": 32},
        # Tiny random models: the tests check the chain, not accuracy, so any drop is in budget.
        "register": {"variants": ["l1-int8"], "max_drop": 100},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
