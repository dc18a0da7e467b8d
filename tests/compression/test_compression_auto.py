"""`python -m compression auto` on the tiny teacher: it searches, publishes within the
budget, writes the frontier, resumes an interrupted search without redoing finished
steps, and publishes nothing (non-zero exit, nearest miss) when nothing is within."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compression.auto import parse_duration
from compression.auto import search as search_module
from compression.auto.finalists import MAX_FINALISTS
from compression.auto.search import AutoSearch, Clock
from compression.auto.space import evenly_spaced_layers, student_depths
from compression.cli.main import main
from compression.core.errors import ConfigError
from compression.pipeline import Pipeline
from registry import Manifest, RoutingTable, list_versions


@pytest.mark.parametrize(("text", "seconds"), [("45m", 2700), ("1h30m", 5400), ("90s", 90),
                                               ("2h", 7200), ("10", 600), ("1.5m", 90)])
def test_time_budgets_read_as_people_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0", "5 minutes", "nan", "inf"])
def test_a_bad_time_budget_is_one_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match="--time-budget"):
        parse_duration(text)


def test_the_depth_ladder_and_layer_choice() -> None:
    assert student_depths(6) == [3, 2] and student_depths(12) == [6, 4]
    assert student_depths(2) == [1] and student_depths(1) == []
    assert evenly_spaced_layers(6, 3) == [1, 3, 5] and evenly_spaced_layers(12, 4) == [2, 5, 8, 11]


def test_an_unknown_cost_starts_only_with_half_the_budget_left() -> None:
    now = [0.0]
    clock = Clock(100.0, now=lambda: now[0])
    assert clock.fits(None) and clock.fits(90.0) and not clock.fits(120.0)
    now[0] = 60.0
    assert not clock.fits(None) and clock.fits(30.0) and not clock.fits(50.0)
    assert Clock(None).fits(None)


def _args(tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path], *extra: str) -> list[str]:
    return ["auto", "--model", str(teacher_dir), "--train", str(toy_data["train"]),
            "--dev", str(toy_data["dev"]), "--name", "toy-auto", "--registry",
            str(tmp_path / "models"), "--work-dir", str(tmp_path / "run"),
            "--label-names", "0=negative,1=positive", "--max-length", "32", *extra]


def test_a_bad_budget_stops_auto_before_any_work(tmp_path: Path, teacher_dir: Path,
                                                 toy_data: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("-1", "nan", "150"):
        assert main(_args(tmp_path, teacher_dir, toy_data, "--max-drop", bad)) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "max_drop" in err[0], err
    assert not (tmp_path / "run").exists()


def test_auto_searches_resumes_and_publishes_within_budget(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from compression.evaluation import evaluate

    monkeypatch.setattr(evaluate, "peak_memory_mb", lambda *a, **k: float("nan"))
    # Tiny random models: any drop is within budget, so every ladder runs to its end.
    args = _args(tmp_path, teacher_dir, toy_data, "--max-drop", "100")
    monkeypatch.setattr(search_module, "AGREEMENT_CHECK_TEXTS", 5)

    # Interrupted at the first student: the teacher's steps are finished and saved.
    def interrupted(self: Pipeline, teacher: str) -> dict[str, str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipeline, "students", interrupted)
    # As if the time budget had planned 2 epochs for the first student (a budget's plan
    # depends on the machine's speed; the wider student must start from this very one).
    state_file = tmp_path / "run" / "auto" / "state.json"
    state_file.parent.mkdir(parents=True)
    state_file.write_text(json.dumps({"version": 1, "plans": {"l1": 2}}))
    assert main(args) != 0
    before = json.loads(state_file.read_text())["steps"]
    # Coverages whose cut keeps the same tokens as the one before are not made again.
    assert set(before) == {"teacher", "teacher-v999", "teacher-v990", "teacher-v980",
                           "teacher-v950"}
    assert not list_versions(tmp_path / "models", "toy-auto")
    monkeypatch.undo()
    monkeypatch.setattr(evaluate, "peak_memory_mb", lambda *a, **k: float("nan"))
    # A quantization's agreement check ran on a sample of dev: the step scores all of it.
    checked = json.loads((tmp_path / "run" / "onnx" / "teacher-static-float-outputs"
                          / "result.json").read_text())
    assert checked["check_texts"] == 5

    # Resumed: only the steps not finished run.
    ran: list[str] = []
    original = AutoSearch.run

    def spy(self: AutoSearch, name: str, *rest, **kwargs):  # type: ignore[no-untyped-def]
        ran.append(name)
        return original(self, name, *rest, **kwargs)

    monkeypatch.setattr(AutoSearch, "run", spy)
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert ran and not set(ran) & set(before), ran
    assert "l1" in ran and "l1-w50" in ran  # a student, then half its width
    steps = json.loads(state_file.read_text())["steps"]
    assert steps["l1"]["spec"]["students"][0]["train"]["epochs"] == 2
    assert steps["l1-w50"]["spec"]["students"][0] == steps["l1"]["spec"]["students"][0]
    distilled = json.loads((tmp_path / "run" / "students" / "l1" / "result.json").read_text())
    assert distilled["epochs"] == 2  # trained once, as planned, never again with auto
    steps = json.loads(state_file.read_text())["steps"]
    assert {k: v["scores"] for k, v in steps.items() if k in before} == \
        {k: v["scores"] for k, v in before.items()}

    # Published: the smallest within budget, routed, with its budget record.
    root = tmp_path / "models"
    assert list_versions(root, "toy-auto") == ["1"]
    manifest = Manifest.read(root / "toy-auto" / "1")
    assert manifest.budget is not None and manifest.budget.chosen_by == "budget:smallest"
    sizes = {r["name"]: r["size_mb"] for r in json.loads(
        (tmp_path / "run" / "eval" / "evaluation.json").read_text())[1:]
        if r["name"] != "teacher-fp32"}
    assert manifest.metrics["size_mb"] == pytest.approx(min(sizes.values()))
    assert RoutingTable.read(root).routes["toy-auto"] == {"1": 100.0}
    assert "smallest" in out and "frontier.md" in out
    frontier = (tmp_path / "run" / "auto" / "frontier.md").read_text()
    assert "(published)" in frontier and all(name in frontier for name in sizes)
    # The final evaluation measured only the variants that could matter; the frontier
    # table still lists every variant the search made, the others with its figures.
    searched = {v for step in steps.values() for v in step["variants"]}
    assert len(sizes) <= MAX_FINALISTS < len(searched)
    assert all(f"| {name}" in frontier for name in searched) and "†" in frontier
    assert all(set(step["latencies"]) == set(step["variants"]) and step["eval_seconds"] > 0
               for step in steps.values())
    assert (tmp_path / "run" / "auto" / "frontier.png").stat().st_size > 10_000

    # Every variant 30 points worse and a 1-point budget: nothing is published.
    measured = Pipeline.evaluate

    def worse(self: Pipeline, *a, **k):  # type: ignore[no-untyped-def]
        reports = measured(self, *a, **k)
        for r in reports[1:]:
            r.accuracy -= 0.30
        return reports

    monkeypatch.setattr(Pipeline, "evaluate", worse)
    ran.clear()
    assert main(_args(tmp_path, teacher_dir, toy_data, "--max-drop", "1")) != 0
    err = capsys.readouterr().err
    assert "nearest miss" in err and "nothing published" in err
    assert not ran  # every step was finished: nothing is searched again
    assert list_versions(root, "toy-auto") == ["1"]
    assert "(published)" not in (tmp_path / "run" / "auto" / "frontier.md").read_text()


@pytest.mark.parametrize(("budget_s", "planned"), [(None, "auto"), (1000.0, "auto"),
                                                   (50.0, 4), (5.0, None)])
def test_a_student_trains_what_the_time_left_affords(tmp_path: Path, budget_s: float | None,
                                                     planned: object) -> None:
    """Epochs scaled to the data (10 for 240 rows) when they fit; else as many as fit in
    60 % of the time left, from the teacher's fine-tuning cost; none: skipped. The plan
    is remembered for a resumed search."""
    from types import SimpleNamespace

    from compression.auto.search import SearchState
    from compression.auto.space import depth_candidate, student_train
    from compression.models.adapters.base import NormalizedShape

    search = AutoSearch.__new__(AutoSearch)
    search.clock = Clock(budget_s, now=lambda: 0.0)
    search.state = SearchState(tmp_path / "state.json")
    search.state.teacher.update(epoch_seconds=10.0, layers=2)  # 1.5 x 10 / 2: 7.5 s an epoch
    search.splits = SimpleNamespace(train=SimpleNamespace(texts=["x"] * 240))
    candidate = depth_candidate(NormalizedShape(32, 2, 2, 64, 100), 1)
    plan = search._plan(candidate)
    if planned is None:
        assert plan is None
    else:
        assert plan is not None and student_train(plan.students)["epochs"] == planned
    assert SearchState(tmp_path / "state.json").plans == {"l1": planned or 0}


def test_the_cli_tries_the_search_spaces_quantization_ladder() -> None:
    from compression.auto.space import QUANT_LADDER
    from compression.cli.main import build_parser

    args = build_parser().parse_args(["auto", "--model", "m", "--train", "t", "--name", "n"])
    assert tuple(args.quantization.split(",")) == QUANT_LADDER


def test_with_no_student_within_budget_the_teacher_itself_is_narrowed(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where depth costs too much accuracy (a 3-layer CoNLL student: 3.4 F1 down) the width
    ladder starts from the teacher: every layer kept, half as wide, then its vocabulary."""
    from compression.auto import AutoRequest, pipeline_config
    from compression.auto.search import Step
    from compression.config.steps import DataConfig

    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=32)
    request = AutoRequest(model=str(teacher_dir), data=data, name="toy-width",
                          work_dir=tmp_path / "run")
    search = AutoSearch(pipeline_config(request), Clock(None))
    search.state.teacher["score"] = 0.90
    tried: list = []
    ladders: list[str] = []

    def student_step(teacher: str, candidate):  # type: ignore[no-untyped-def]
        tried.append(candidate)
        score = 0.895 if candidate.ladder == "width" else 0.80  # students 10 points down
        return Step(name=candidate.name, spec=candidate.spec, seconds=1.0,
                    variants={}, scores={"x": score}, models={}), candidate

    monkeypatch.setattr(search.pipeline, "teacher", lambda: str(teacher_dir))
    monkeypatch.setattr(search, "_score_teacher", lambda teacher: None)
    monkeypatch.setattr(search, "_model_step", lambda candidate, model: None)
    monkeypatch.setattr(search, "_student_step", student_step)
    monkeypatch.setattr(search, "_model_dir", lambda name: f"dir-of-{name}")
    monkeypatch.setattr(search, "_vocabulary_ladder", lambda name, model: ladders.append(name))
    search.search()

    assert [c.ladder for c in tried] == ["depth", "width"]  # l1 missed: no shallower one
    width = tried[-1]
    teacher = json.loads((teacher_dir / "config.json").read_text())
    half = {"ffn": teacher["intermediate_size"] // 2, "heads": teacher["num_attention_heads"] // 2}
    assert width.students == ({"name": "teacher-w50", "init": "teacher", "prune_only": True,
                               "prune": half,
                               "recover": width.students[0]["recover"]},)
    assert width.model == "teacher-w50-pruned"
    assert width.depth == teacher["num_hidden_layers"]
    assert ladders == ["teacher", "teacher-w50-pruned"]  # not the missed student's


def test_a_half_width_model_costs_half_its_layers_in_the_time_budget() -> None:
    """The teacher narrowed (6 layers at half width) costs an epoch about what a 3-layer
    student does: planned from that, not from twice it (which left it 2 epochs of 7)."""
    from compression.auto.space import depth_candidate, teacher_base, width_candidate
    from compression.models.adapters.base import NormalizedShape

    shape = NormalizedShape(num_layers=6, hidden_size=384, num_heads=12, intermediate_size=1536,
                            vocab_size=30522)
    l3 = depth_candidate(shape, 3)
    assert l3.compute_layers == 3.0
    assert width_candidate(shape, teacher_base(shape), True).compute_layers == 3.0
    assert width_candidate(shape, l3, True).compute_layers == 1.5
