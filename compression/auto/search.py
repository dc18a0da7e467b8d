"""`auto`: search the space of `auto.space` under an accuracy budget and a time budget,
then evaluate every candidate side by side and publish the winner.

Each finished step of the search (a model and its quantized exports, scored on dev) is
written to `<work_dir>/auto/state.json` at once, so an interrupted search resumes where it
stopped: finished steps are read back, not redone, and a half-finished one reuses its
finished pipeline steps (their results are cached by config digest).

The time budget reaches into training: a student still training when it runs out stops
after its current optimiser step, keeping its checkpoints. It is recorded as unfinished
(no exports, no scores, never published) and reported; a later run resumes its training
from the last checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from compression.auto.finalists import ScoredVariant
from compression.auto.space import (
    COVERAGE_LADDER,
    Candidate,
    can_prune_structure,
    compute_layers,
    depth_candidate,
    student_depths,
    student_train,
    teacher_base,
    width_candidate,
    with_epochs,
)
from compression.auto.vocabulary_ladder import VocabularyLadder
from compression.config.pipeline_file import PipelineConfig
from compression.config.scaling import epochs_for
from compression.config.sections import student_spec
from compression.core.data import LabelledData, load_data
from compression.core.errors import TrainingStopped
from compression.core.files import ONNX_FILE
from compression.evaluation.evaluate import evaluate
from compression.evaluation.runners import Variant
from compression.models.architectures import HEAD_PRUNING, adapter_for
from compression.models.loading import load_config
from compression.pipeline import Pipeline

log = logging.getLogger(__name__)

STATE_VERSION = 1
# A student whose data-scaled epochs do not fit the time left trains as many as fit in
# this share of it, leaving the rest for its vocabulary ladder and the next student.
STUDENT_SHARE = 0.6
# A quantization's agreement check (a log line: the step scores every export on the
# whole dev set anyway) runs on this many dev texts: on GoEmotions' 5,426 it took 50 s of
# a 5-minute step.
AGREEMENT_CHECK_TEXTS = 512


@dataclass
class Step:
    """A finished step: its exports and each one's dev score."""

    name: str
    spec: dict[str, Any]
    seconds: float
    variants: dict[str, str]  # variant name -> ONNX folder
    scores: dict[str, float]  # variant name -> main dev metric (0..1)
    models: dict[str, str]  # model name -> its PyTorch folder (what later steps start from)
    trains: bool = False  # it distilled a student (what the time budget learns costs from)
    # Each variant's one-round measurement (empty in states older than these fields).
    sizes: dict[str, float] = field(default_factory=dict)  # MB
    latencies: dict[str, float] = field(default_factory=dict)  # batch-1 p50, ms
    eval_seconds: float | None = None  # scoring all its variants once took

    def best_drop(self, teacher_score: float) -> float:
        return min((100 * (teacher_score - s) for s in self.scores.values()),
                   default=float("inf"))


class SearchState:
    """The search's memory on disk: the teacher's score and every finished step."""

    def __init__(self, path: Path) -> None:
        self.path = path
        raw = json.loads(path.read_text()) if path.is_file() else {}
        if raw.get("version", STATE_VERSION) != STATE_VERSION:
            raw = {}  # written by another version of the search: start over
        self.teacher: dict[str, Any] = raw.get("teacher", {})
        self.plans: dict[str, int | str] = raw.get("plans", {})  # student -> epochs
        # Students the time budget cut off mid-training: name -> spec and epochs reached.
        self.unfinished: dict[str, dict[str, Any]] = raw.get("unfinished", {})
        self.steps = {name: Step(name=name, **step) for name, step in
                      raw.get("steps", {}).items()}

    def finished(self, name: str, spec: dict[str, Any]) -> Step | None:
        step = self.steps.get(name)
        return step if step is not None and step.spec == spec else None

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        steps = {name: {"spec": s.spec, "seconds": s.seconds, "variants": s.variants,
                        "scores": s.scores, "models": s.models, "trains": s.trains,
                        "sizes": s.sizes, "latencies": s.latencies,
                        "eval_seconds": s.eval_seconds}
                 for name, s in self.steps.items()}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": STATE_VERSION, "teacher": self.teacher,
                                   "plans": self.plans, "steps": steps,
                                   "unfinished": self.unfinished}, indent=2) + "\n")
        tmp.replace(self.path)  # a crash mid-write never leaves half a state


class Clock:
    """The time budget: how much is left, and whether a step of a given cost fits."""

    def __init__(self, budget_s: float | None, now: Callable[[], float] = time.monotonic) -> None:
        self.budget_s, self.now, self.start = budget_s, now, now()

    @property
    def left_s(self) -> float:
        return float("inf") if self.budget_s is None else self.budget_s - (self.now() - self.start)

    def fits(self, estimate_s: float | None) -> bool:
        """Whether a step fits; one of unknown cost starts only with half the budget left."""
        if self.budget_s is None:
            return True
        if estimate_s is None:
            return self.left_s >= 0.5 * self.budget_s
        return estimate_s <= self.left_s

    def expired(self) -> bool:
        """Whether the budget is spent: what training checks after every step."""
        return self.budget_s is not None and self.left_s <= 0


class AutoSearch:
    """One `auto` run: `config` names the data, teacher, quantization and budget; its
    students are set step by step."""

    def __init__(self, config: PipelineConfig, clock: Clock,
                 coverages: tuple[float, ...] = COVERAGE_LADDER,
                 splits: LabelledData | None = None) -> None:
        """`splits`: `config.data` already read; every step shares them (read here else)."""
        self.config, self.clock = config, clock
        self.vocabulary = VocabularyLadder(self, coverages)
        self.splits = splits or load_data(config.data)
        self.pipeline = Pipeline(config, splits=self.splits)
        self.pipeline.check_size = AGREEMENT_CHECK_TEXTS
        self.state = SearchState(config.work_dir / "auto" / "state.json")
        self.metric = self.pipeline.task.best_metric
        self.skipped: list[str] = []  # steps the time budget or a ladder's miss ruled out

    # -- the search -----------------------------------------------------------------------
    def search(self) -> dict[str, Path]:
        """Every finished step's exports (the frontier's points), the teacher's included."""
        teacher_dir = self.pipeline.teacher()
        self._score_teacher(teacher_dir)
        self._model_step(Candidate(name="teacher", ladder="teacher"), teacher_dir)
        self._vocabulary_ladder("teacher", teacher_dir)
        within = self._depth_ladder(teacher_dir)
        self._width_step(teacher_dir, within)
        return {v: Path(d) for step in self.state.steps.values()
                for v, d in step.variants.items()}

    def within(self, step: Step | None) -> bool:
        return step is not None and step.best_drop(self.teacher_score) <= \
            self.config.register_budget.max_drop

    @property
    def teacher_score(self) -> float:
        return float(self.state.teacher["score"])

    def _depth_ladder(self, teacher_dir: str) -> Candidate | None:
        """Students deepest first; the shallowest within budget (None if none was)."""
        config = load_config(teacher_dir)
        shape = adapter_for(config).shape(config)
        best = None
        for depth in student_depths(shape.num_layers):
            step, candidate = self._student_step(teacher_dir, depth_candidate(shape, depth))
            if not self.within(step):
                break  # a shallower student would miss too
            best = candidate  # as planned: a wider one starts from exactly this student
            self._vocabulary_ladder(candidate.name, self._model_dir(candidate.name))
        return best

    def _width_step(self, teacher_dir: str, base: Candidate | None) -> None:
        """Half the width of `base`, the shallowest student within budget; of the teacher
        when none was (every layer kept: where depth costs too much accuracy)."""
        model_config = load_config(teacher_dir)
        refusal = adapter_for(model_config).refusal(HEAD_PRUNING, model_config)
        possible, heads = can_prune_structure(self.config.data.task or "", refusal)
        if not possible:
            return
        shape = adapter_for(model_config).shape(model_config)
        base = base or teacher_base(shape)
        step, candidate = self._student_step(teacher_dir, width_candidate(shape, base, heads))
        if self.within(step):
            self._vocabulary_ladder(candidate.model, self._model_dir(candidate.model))

    def _vocabulary_ladder(self, name: str, model_dir: str) -> None:
        """Cut `name`'s vocabulary down the coverage ladder (`auto.vocabulary_ladder`); a
        student's missed cut gets a recovery distillation, the teacher's does not."""
        self.vocabulary.climb(name, model_dir, recover=name != "teacher")

    # -- one step -------------------------------------------------------------------------
    def _student_step(self, teacher_dir: str, candidate: Candidate
                      ) -> tuple[Step | None, Candidate]:
        """The student's finished step (None: the time budget skipped it) and the
        candidate with the epochs planned for it."""
        planned = self._plan(candidate)
        if planned is None:
            self.skip(candidate.name, "the time budget")
            return None, candidate
        candidate = planned
        step = self.state.finished(candidate.name, candidate.spec)
        if step is not None:
            return step, candidate
        if self.clock.expired():
            self.skip(candidate.name, "the time budget")
            return None, candidate

        def train() -> dict[str, str]:
            specs = tuple(student_spec(s, i) for i, s in enumerate(candidate.students))
            pipeline = Pipeline(replace(self.config, students=specs), splits=self.splits,
                                should_stop=self.clock.expired)
            made = pipeline.students(teacher_dir)
            return {candidate.model: made[candidate.model]}

        try:
            return self.run(candidate.name, candidate.spec, train, trains=True), candidate
        except TrainingStopped as stopped:
            self._cut_off(candidate, stopped)
            return None, candidate

    def _model_step(self, candidate: Candidate, model_dir: str) -> Step:
        return self.state.finished(candidate.name, candidate.spec) or self.run(
            candidate.name, candidate.spec, lambda: {candidate.name: model_dir})

    def run(self, name: str, spec: dict[str, Any], make: Callable[[], dict[str, str]],
             trains: bool = False) -> Step:
        """Make the model(s), export and quantize them, score each export on dev, and
        save the finished step."""
        started = time.monotonic()
        models = make()
        onnx_dirs = self.pipeline.onnx_variants(models)
        scoring_started = time.monotonic()
        reports = self._evaluate([Variant.from_path(d / ONNX_FILE, v)
                                  for v, d in onnx_dirs.items()])
        step = Step(name=name, spec=spec, seconds=time.monotonic() - started,
                    variants={v: str(d) for v, d in onnx_dirs.items()},
                    scores={r.name: float(getattr(r, self.metric)) for r in reports},
                    models=dict(models), trains=trains,
                    sizes={r.name: r.size_mb for r in reports},
                    latencies={r.name: r.latency_p50_ms for r in reports},
                    eval_seconds=time.monotonic() - scoring_started)
        self.state.steps[name] = step
        self.state.unfinished.pop(name, None)
        self.state.save()
        drop = step.best_drop(self.teacher_score)
        log.info("auto: %s: best %+.2f points vs the teacher (%s), %.0f s", name, -drop,
                 "within budget" if self.within(step) else "over budget", step.seconds)
        return step

    def scored(self) -> list[ScoredVariant]:
        """Every finished step's variants with the search's one-round figures."""
        return [ScoredVariant(name=v, size_mb=step.sizes.get(v) or
                              Path(d, ONNX_FILE).stat().st_size / 1e6,
                              latency_ms=step.latencies.get(v),
                              drop=100 * (self.teacher_score - step.scores[v]),
                              eval_s=self._round_seconds(step))
                for step in self.state.steps.values() for v, d in step.variants.items()]

    @staticmethod
    def _round_seconds(step: Step) -> float | None:
        """One round of measuring one of `step`'s variants; from an older state, a step
        that trained nothing: all its time (exports too: an over-estimate, on the safe
        side); else unknown."""
        seconds = step.eval_seconds if step.eval_seconds is not None else (
            None if step.trains else step.seconds)
        return None if seconds is None else seconds / len(step.variants)

    def _evaluate(self, variants: list[Variant]) -> list[Any]:
        dev, space = self.splits.dev, self.splits.labels
        return evaluate(variants, dev.texts, space.encode(dev), self.config.data.max_length,
                        rounds=1, memory=False,
                        task=self.pipeline.task.for_labels(list(space.names)))

    def _score_teacher(self, teacher_dir: str) -> None:
        if "score" not in self.state.teacher:
            started = time.monotonic()
            report = self._evaluate([Variant.from_path(Path(teacher_dir),
                                                       "teacher-torch-fp32")])[0]
            self.state.teacher["eval_seconds"] = time.monotonic() - started
            model_config = load_config(teacher_dir)
            self.state.teacher.update(score=float(getattr(report, self.metric)),
                                      metric=self.metric, model=teacher_dir,
                                      layers=adapter_for(model_config).shape(
                                          model_config).num_layers,
                                      epoch_seconds=self._teacher_epoch_seconds(teacher_dir))
            self.state.save()
        log.info("auto: teacher's dev %s %.4f", self.metric, self.teacher_score)

    def _model_dir(self, name: str) -> str:
        """The PyTorch folder of the model a finished step made."""
        return next(d for step in self.state.steps.values()
                    for model, d in step.models.items() if model == name)

    def step_of(self, model: str) -> Step | None:
        """The finished step that made `model` (None for the teacher, given or tuned)."""
        return next((s for s in self.state.steps.values() if model in s.models and s.trains),
                    None)

    def epoch_seconds_of(self, step: Step) -> float:
        """What an epoch of a finished training step took (its export and scoring too)."""
        return step.seconds / self._epochs_of(step.spec["students"])

    # -- the time budget ------------------------------------------------------------------
    def _plan(self, candidate: Candidate) -> Candidate | None:
        """`candidate` with the epochs it trains: the data's ("auto") when they fit the
        time left, else as many as fit in STUDENT_SHARE of it; None when not one fits.
        The plan is remembered, so a resumed search finds the same step finished."""
        plans = self.state.plans
        # A student none of whose epochs fitted then is planned again: this run may have
        # more time.
        if not plans.get(candidate.name):
            epochs = self._epochs(candidate)
            per_epoch = self._epoch_seconds(candidate)
            if per_epoch is None:  # nothing to learn the cost from yet
                plans[candidate.name] = "auto" if self.clock.fits(None) else 0
            elif self.clock.fits(per_epoch * epochs):
                plans[candidate.name] = "auto"
            else:
                plans[candidate.name] = max(0, int(STUDENT_SHARE * self.clock.left_s // per_epoch))
            self.state.save()
        epochs = plans[candidate.name]
        return None if epochs == 0 else with_epochs(candidate, epochs)

    def _epoch_seconds(self, candidate: Candidate) -> float | None:
        """Seconds an epoch of `candidate` should take: the last student trained, scaled
        by layers of compute (`compute_layers`: half-width layers count half); before any,
        the teacher's fine-tuning per epoch and layer, times 1.5 (distillation runs the
        teacher too); None if nothing is known."""
        trained = [s for s in self.state.steps.values() if s.trains]
        if trained:
            last = trained[-1]
            return self.epoch_seconds_of(last) * max(1.0, candidate.compute_layers
                                   / max(1.0, compute_layers(last.spec)))
        epoch_s = self.state.teacher.get("epoch_seconds")
        if epoch_s is None:
            return None
        return 1.5 * epoch_s * candidate.compute_layers / self.state.teacher["layers"]

    def estimate(self, trains: bool) -> float:
        """A step's cost that trains nothing: the slowest such step so far."""
        return max((s.seconds for s in self.state.steps.values() if s.trains == trains),
                   default=0.0)

    def _epochs(self, candidate: Candidate) -> float:
        return self._epochs_of(candidate.students)

    def _epochs_of(self, students: Any) -> float:
        train = student_train(students)
        if train["epochs"] != "auto":
            return float(train["epochs"])
        return float(epochs_for(len(self.splits.train.texts), train["batch_size"]))

    def _teacher_epoch_seconds(self, teacher_dir: str) -> float | None:
        """Seconds per epoch of the teacher's fine-tuning, from its step result."""
        result = Path(teacher_dir).parent / "result.json"
        if not result.is_file():
            return None
        step = json.loads(result.read_text())
        # The epochs trained (a number even for "auto"); older results: the config's.
        epochs = step.get("epochs", (step.get("config") or {}).get("train", {}).get("epochs"))
        if step.get("step") != "finetune" or not step.get("minutes") or \
                not isinstance(epochs, (int, float)):
            return None
        return 60 * float(step["minutes"]) / float(epochs)

    @property
    def unfinished(self) -> list[str]:
        """The students the time budget cut off mid-training, with how far each got."""
        return [f"{name} (the time budget ran out at epoch {u['epoch']:.2f} of "
                f"{u['epochs']:g}; run auto again with more time to resume it)"
                for name, u in self.state.unfinished.items()]

    def _cut_off(self, candidate: Candidate, stopped: TrainingStopped) -> None:
        self.state.unfinished[candidate.name] = {"spec": candidate.spec, "epoch": stopped.epoch,
                                                 "epochs": stopped.epochs}
        self.state.save()
        log.warning("auto: %s unfinished: the time budget ran out mid-training (%s); its "
                    "checkpoints are kept for the next run", candidate.name, stopped)

    def skip(self, name: str, why: str) -> None:
        self.skipped.append(f"{name} ({why})")
        log.info("auto: %s skipped: %s", name, why)
