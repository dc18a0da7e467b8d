"""`auto`'s time budget reaches into training: a student still training when the deadline
passes stops after that step, is reported unfinished (never evaluated or published) and
is resumed from its checkpoint by a later run with more time. And `auto` reads its data
once. The clock is injected: each optimiser step of a student advances it, nothing sleeps."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import compression.auto as auto_module
from compression.auto.search import Clock
from compression.cli.main import main
from compression.core import data as data_module
from compression.training import distill as distill_module
from compression.training.trainer import StopWhen

STEP_S = 10.0  # what one optimiser step of a student costs on the injected clock


def _args(tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path], *extra: str) -> list[str]:
    return ["auto", "--model", str(teacher_dir), "--train", str(toy_data["train"]),
            "--dev", str(toy_data["dev"]), "--name", "toy-deadline", "--registry",
            str(tmp_path / "models"), "--work-dir", str(tmp_path / "run"),
            "--label-names", "0=negative,1=positive", "--max-length", "32",
            "--max-drop", "100", *extra]


def _plan_two_epochs(tmp_path: Path) -> Path:
    """As if an earlier run had planned 2 epochs for the student (a plan from measured
    costs would depend on the machine's speed)."""
    state = tmp_path / "run" / "auto" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"version": 1, "plans": {"l1": 2}}))
    return state


def _variants(tmp_path: Path) -> set[str]:
    return {r["name"] for r in json.loads(
        (tmp_path / "run" / "eval" / "evaluation.json").read_text())}


@pytest.fixture
def ticking_clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The search's clock, advanced STEP_S by every student's optimiser step; the steps
    each training took, one count per training."""
    from compression.evaluation import evaluate

    monkeypatch.setattr(evaluate, "peak_memory_mb", lambda *a, **k: float("nan"))
    now = [0.0]
    monkeypatch.setattr(auto_module, "Clock", lambda budget_s: Clock(budget_s, lambda: now[0]))
    steps: list[int] = []
    original = StopWhen.on_step_end

    def tick(self: StopWhen, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        now[0] += STEP_S
        steps.append(state.global_step)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(StopWhen, "on_step_end", tick)
    return steps


def test_a_student_cut_off_by_the_deadline_is_unfinished_then_resumed(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path], ticking_clock: list[int],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    state_file = _plan_two_epochs(tmp_path)
    # 100 s, 85 for the search: the student's 9th step (90 s) passes the deadline; its
    # 2 epochs of 8 steps (240 rows at batch 32) would take 16.
    assert main(_args(tmp_path, teacher_dir, toy_data, "--time-budget", "100s")) == 0
    out = capsys.readouterr().out
    assert ticking_clock[-1] == 9 and len(ticking_clock) == 9
    student = tmp_path / "run" / "students" / "l1"
    assert not (student / "result.json").exists()  # not a finished step: never reused
    assert (student / "checkpoints" / "checkpoint-9").is_dir()
    state = json.loads(state_file.read_text())
    assert "l1" not in state["steps"] and set(state["unfinished"]) == {"l1"}
    assert state["unfinished"]["l1"]["epoch"] == pytest.approx(9 / 8)
    # Reported, neither evaluated nor published.
    assert "auto: unfinished l1 (the time budget ran out at epoch 1.12 of 2" in out
    assert "1 candidate(s) unfinished" in out.strip().splitlines()[-1]
    assert "- unfinished: l1" in (tmp_path / "run" / "auto" / "frontier.md").read_text()
    assert not any(name.startswith("l1") for name in _variants(tmp_path))

    # A later run with no time limit resumes the student from its checkpoint.
    resumed_from: list[str | None] = []
    original = distill_module.resumable_checkpoint

    def spy(*args: Any, **kwargs: Any) -> str | None:
        resumed_from.append(original(*args, **kwargs))
        return resumed_from[-1]

    monkeypatch.setattr(distill_module, "resumable_checkpoint", spy)
    ticking_clock.clear()
    assert main(_args(tmp_path, teacher_dir, toy_data)) == 0
    out = capsys.readouterr().out
    assert resumed_from and Path(resumed_from[0] or "").name == "checkpoint-9"
    assert ticking_clock[:7] == list(range(10, 17))  # only the steps left
    assert json.loads((student / "result.json").read_text())["epochs"] == 2
    state = json.loads(state_file.read_text())
    assert "l1" in state["steps"] and not state["unfinished"]
    assert "unfinished" not in out
    assert any(name.startswith("l1") for name in _variants(tmp_path))


def test_auto_reads_its_data_once(tmp_path: Path, teacher_dir: Path,
                                  toy_data: dict[str, Path], ticking_clock: list[int],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Deciding labels and dev split, the search, a student's distillation, exports and
    the final evaluation all share one read of each file."""
    reads: Counter[str] = Counter()
    reader = data_module.load_split

    def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
        reads[Path(str(source)).name] += 1
        return reader(source, *args, **kwargs)

    monkeypatch.setattr(data_module, "load_split", counting)
    _plan_two_epochs(tmp_path)
    assert main(_args(tmp_path, teacher_dir, toy_data)) == 0
    assert ticking_clock, "a student was distilled"
    assert reads == {"train.tsv": 1, "dev.tsv": 1}
