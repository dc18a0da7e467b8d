"""The accuracy budget: over-budget variants are never published without force, nothing
is published when nothing meets the budget, and a bad budget is one clear error."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from pipeline_config import write_config

from compression.budget import Budget, BudgetMissed, check_listed, choose
from compression.cli.main import main
from compression.config.pipeline_file import PipelineConfig
from compression.core.errors import ConfigError
from compression.evaluation.report import VariantReport
from compression.pipeline import Pipeline
from registry import Manifest, RoutingTable, list_versions


def _report(name: str, accuracy: float, size_mb: float, latency_ms: float) -> VariantReport:
    return VariantReport(name=name, kind="onnx", size_mb=size_mb, accuracy=accuracy,
                         macro_f1=accuracy, agreement=1.0, latency_p50_ms=latency_ms,
                         latency_p95_ms=latency_ms, throughput_b32=1.0)


TEACHER = _report("teacher-torch-fp32", 0.90, 90.0, 20.0)
REPORTS = [
    TEACHER,
    _report("teacher-fp32", 0.90, 90.0, 18.0),     # the baseline: never chosen
    _report("small-int8", 0.884, 5.0, 3.0),        # 1.6 points below: over a 1.0 budget
    _report("mid-int8", 0.893, 9.0, 2.0),          # 0.7 below, the fastest within
    _report("big-int8", 0.899, 20.0, 4.0),         # 0.1 below, larger and slower
]
NAMES = [r.name for r in REPORTS[1:]]


@pytest.mark.parametrize(("prefer", "winner"), [("smallest", "mid-int8"),
                                                ("fastest", "mid-int8")])
def test_the_choice_is_the_best_within_budget(prefer: str, winner: str) -> None:
    selection = choose(REPORTS, TEACHER, "accuracy", Budget(1.0, prefer), NAMES)
    assert [r.name for r in selection.chosen] == [winner]
    record = selection.records[winner]
    assert record["chosen_by"] == f"budget:{prefer}" and not record["forced"]
    assert math.isclose(record["drop"], 0.7, abs_tol=1e-6)
    assert winner in selection.reason and prefer in selection.reason


def test_the_preferred_axis_decides_between_variants_within_budget() -> None:
    budget = Budget(2.0, "smallest")
    assert choose(REPORTS, TEACHER, "accuracy", budget, NAMES).chosen[0].name == "small-int8"
    fastest = replace(budget, prefer="fastest")
    assert choose(REPORTS, TEACHER, "accuracy", fastest, NAMES).chosen[0].name == "mid-int8"


def test_nothing_within_budget_names_the_nearest_miss() -> None:
    with pytest.raises(BudgetMissed) as caught:
        choose(REPORTS, TEACHER, "accuracy", Budget(0.05), ["small-int8", "mid-int8"])
    message = str(caught.value)
    assert "nearest miss: mid-int8 (-0.70 points" in message and "nothing published" in message


def test_a_variant_without_a_score_is_never_within_budget() -> None:
    broken = _report("broken-int8", float("nan"), 1.0, 1.0)
    with pytest.raises(BudgetMissed):
        choose([TEACHER, broken], TEACHER, "accuracy", Budget(100.0), ["broken-int8"])


def test_a_listed_variant_over_budget_needs_force() -> None:
    listed = ["small-int8", "mid-int8"]
    with pytest.raises(BudgetMissed, match=r"small-int8 \(\+1.60 points\)"):
        check_listed(REPORTS, TEACHER, "accuracy", Budget(1.0), listed)
    forced = check_listed(REPORTS, TEACHER, "accuracy", Budget(1.0, force=True), listed)
    assert [r.name for r in forced.chosen] == listed
    assert forced.records["small-int8"]["forced"] and not forced.records["mid-int8"]["forced"]


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), 100.5, "lots", True, None])
def test_a_bad_budget_is_one_clear_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="max_drop"):
        Budget(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("register", [{"max_drop": -1}, {"max_drop": ".nan"},
                                      {"max_drop": 101}, {"prefer": "cheapest"},
                                      {"budget": 1.0}])
def test_a_bad_register_section_fails_before_any_training(tmp_path: Path, teacher_dir: Path,
                                                          toy_data: dict[str, Path],
                                                          register: dict) -> None:
    path = write_config(tmp_path, teacher_dir, toy_data["train"], toy_data["dev"])
    config = yaml.safe_load(path.read_text())
    config["register"] = register
    path.write_text(yaml.safe_dump(config).replace("'.nan'", ".nan"))
    with pytest.raises(ConfigError, match="register"):
        PipelineConfig.load(path)


def test_the_older_auto_max_drop_reads_as_a_budget_preferring_speed() -> None:
    from compression.config.pipeline_file import register_budget

    assert register_budget({"auto_max_drop": 0.5}) == Budget(0.5, "fastest")
    assert register_budget({}) == Budget(1.0, "smallest")


def test_the_command_line_refuses_a_bad_budget_in_one_line(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, teacher_dir, toy_data["train"], toy_data["dev"])
    assert main(["pipeline", str(path), "--max-drop", "nan"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_drop" in err[0]
    assert not (tmp_path / "run").exists()  # refused before any step ran


def _worse_students(monkeypatch: pytest.MonkeyPatch, points: float) -> None:
    """Every variant but the teacher's `points` below what it measured: a student that
    distillation could not bring close (the toy students match the toy teacher)."""
    measured = Pipeline.evaluate

    def evaluate(self: Pipeline, *args, **kwargs):  # type: ignore[no-untyped-def]
        reports = measured(self, *args, **kwargs)
        for r in reports[1:]:
            r.accuracy -= points / 100
        return reports

    monkeypatch.setattr(Pipeline, "evaluate", evaluate)


def test_the_pipeline_publishes_only_within_budget(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from compression.evaluation import evaluate

    monkeypatch.setattr(evaluate, "peak_memory_mb", lambda *a, **k: float("nan"))
    path = write_config(tmp_path, teacher_dir, toy_data["train"], toy_data["dev"])
    config = yaml.safe_load(path.read_text())
    root = tmp_path / "models"

    # No list: the smallest variant within budget is published, routed and recorded.
    config["register"] = {"max_drop": 100}
    path.write_text(yaml.safe_dump(config))
    assert main(["pipeline", str(path)]) == 0
    out = capsys.readouterr().out
    reports = json.loads((tmp_path / "run" / "eval" / "evaluation.json").read_text())
    smallest = min((r for r in reports[1:] if r["name"] != "teacher-fp32"),
                   key=lambda r: (r["size_mb"], r["latency_p50_ms"]))
    assert f"register: {smallest['name']} (" in out and "smallest" in out
    manifest = Manifest.read(root / "toy-sentiment" / "1")
    assert manifest.budget is not None and manifest.budget.chosen_by == "budget:smallest"
    assert manifest.budget.max_drop == 100 and not manifest.budget.forced
    assert RoutingTable.read(root).routes["toy-sentiment"] == {"1": 100.0}

    # Every variant 30 points worse, a 1-point budget: nothing published, non-zero exit.
    _worse_students(monkeypatch, 30.0)
    config["register"] = {"max_drop": 1.0}
    path.write_text(yaml.safe_dump(config))
    assert main(["pipeline", str(path)]) != 0
    err = capsys.readouterr().err
    assert "nearest miss" in err and "nothing published" in err
    assert list_versions(root, "toy-sentiment") == ["1"]

    # Listed and over budget: refused; with force: published, and the manifest says so.
    config["register"] = {"variants": ["l1-fp32"], "max_drop": 1.0}
    path.write_text(yaml.safe_dump(config))
    assert main(["pipeline", str(path)]) != 0
    assert "force: true" in capsys.readouterr().err
    assert list_versions(root, "toy-sentiment") == ["1"]
    config["register"]["force"] = True
    path.write_text(yaml.safe_dump(config))
    assert main(["pipeline", str(path)]) == 0
    forced = Manifest.read(root / "toy-sentiment" / "2").budget
    assert forced is not None and forced.forced and forced.chosen_by == "listed"
    assert forced.drop > 1.0
