"""docs/cli.md is the parser's own rendering, and docs/config.md names every key a pipeline
file accepts: neither can fall behind the code unnoticed."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from compression.cli.docs import render
from compression.config import steps
from compression.config.pipeline_file import TOP_LEVEL_KEYS
from compression.config.sections import STUDENT_KEYS, TEACHER_KEYS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_cli_doc_is_generated_from_the_parser() -> None:
    assert (DOCS / "cli.md").read_text() == render(), (
        "docs/cli.md is stale: python -m compression.cli.docs > docs/cli.md")


@pytest.mark.parametrize("config", [steps.DataConfig, steps.TrainConfig, steps.DistillConfig,
                                    steps.AugmentConfig, steps.PruneConfig,
                                    steps.SparsityConfig, steps.QatConfig, steps.QuantConfig])
def test_config_doc_names_every_field(config: type) -> None:
    text = (DOCS / "config.md").read_text()
    missing = [f.name for f in fields(config) if f"| `{f.name}` |" not in text]
    assert not missing, f"docs/config.md lacks {config.__name__} keys {missing}"


def test_config_doc_names_every_section_key() -> None:
    text = (DOCS / "config.md").read_text()
    from compression.config.pipeline_file import REGISTER_KEYS

    keys = [*TOP_LEVEL_KEYS, *TEACHER_KEYS, *STUDENT_KEYS, "rounds", "latency_threads",
            "calibration_size", *REGISTER_KEYS, "optimize"]
    missing = [k for k in keys if f"| `{k}` |" not in text]
    assert not missing, f"docs/config.md lacks keys {missing}"


EXAMPLES = sorted(p.name for p in (DOCS.parent / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_example_pipelines_validate(example: str) -> None:
    from compression.config.pipeline_file import PipelineConfig

    config = PipelineConfig.load(DOCS.parent / "examples" / example)
    assert config.students and config.quantizations
