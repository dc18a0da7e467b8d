"""A pipeline file (`examples/sst2.yaml`): read, checked and turned into frozen configs
before anything trains. docs/config.md lists every key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
import yaml

from compression.budget import Budget, check_max_drop, check_prefer
from compression.config.sections import (
    StudentSpec,
    build,
    calibration_setting,
    latency_threads,
    student_spec,
    teacher_section,
)
from compression.config.steps import AUTO, DataConfig, QuantConfig, TrainConfig
from compression.core.errors import ConfigError
from registry import check_safe_name

TOP_LEVEL_KEYS = ("data", "evaluate", "export", "name", "quantize", "register", "registry",
                  "students", "teacher", "work_dir")

__all__ = ["TEACHER_INIT", "PipelineConfig", "QuantSpec", "StudentSpec"]


@dataclass(frozen=True)
class QuantSpec:
    name: str
    config: QuantConfig


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    work_dir: Path
    registry: Path
    data: DataConfig
    teacher_pretrained: str | None
    teacher_finetuned: str | None
    teacher_train: TrainConfig
    students: tuple[StudentSpec, ...]
    quantizations: tuple[QuantSpec, ...]
    # The teacher fine-tuned again with each of these seeds: the other members of the
    # ensemble that students with `ensemble: true` learn from.
    teacher_ensemble_seeds: tuple[int, ...] = ()
    # The teacher fine-tuned again with each of these seeds; the run with the best dev
    # accuracy (its own seed's included) is the teacher. The random draws alone (head
    # weights, data order, dropout) move fine-tuning on a small task by a point or more
    # (Dodge et al. 2020): 88.8-90.7 % on SST-2 here.
    teacher_candidate_seeds: tuple[int, ...] = ()
    export_teacher: bool = True
    optimize_graph: bool = False
    eval_rounds: int = 3
    # Batch-1 latency is also measured at these intra-op thread counts; the best is reported.
    eval_latency_threads: tuple[int, ...] = ()
    # Training texts static quantization calibrates on; AUTO: as many as the training
    # set calls for (config.scaling.calibration_size_for), resolved by the pipeline.
    calibration_size: int | str = AUTO
    register_variants: tuple[str, ...] = ()
    # What may be published: at most max_drop points below the teacher on dev; without
    # a variants list, the best on `prefer` of those within it.
    register_budget: Budget = Budget()
    write_routes: bool = True

    @classmethod
    def load(cls, path: Path) -> PipelineConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            try:
                raw = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from exc
        elif path.suffix == ".toml":
            try:
                raw = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
        else:
            raise ConfigError(f"{path}: use a .yaml or .toml config")
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PipelineConfig:
        """Paths in the config are relative to the current directory (the project root)."""
        _check_top_level(raw)
        data = dict(raw["data"])
        if "label_names" in data:
            data["label_names"] = {str(k): str(v) for k, v in data["label_names"].items()}
        teacher = teacher_section(raw["teacher"])
        students = _students(raw.get("students"), teacher.ensemble_seeds)
        quantizations = tuple(
            QuantSpec(name=q.pop("name", f"int8-{i}"), config=build(QuantConfig, q,
                                                                    f"quantize[{i}]"))
            for i, q in enumerate(dict(q) for q in (raw.get("quantize") or []))
        )
        _check_student_chain(students)
        if data.get("task") and any(s.augment or s.ensemble for s in students):
            raise ConfigError(f"data.task {data.get('task')}: a student's 'augment' and "
                              "'ensemble' are for sequence classifiers only; remove them")
        names = [s.name for s in students] + [q.name for q in quantizations]
        if len(set(names)) != len(names):
            raise ConfigError(f"student and quantization names must be unique, got {names}")
        export = raw.get("export") or {}
        if export.get("optimize") and any(s.qat for s in students):
            # The optimizer's fused Attention nodes stay float; QAT would round them.
            raise ConfigError("export.optimize and a student's qat do not go together: "
                              "QAT simulates the quantization of an unoptimized export")
        register = raw.get("register") or {}
        evaluate_cfg = raw.get("evaluate") or {}
        return cls(
            name=raw["name"],
            work_dir=Path(raw.get("work_dir", f"runs/{raw['name']}")),
            registry=Path(raw.get("registry", "models")),
            data=build(DataConfig, data, "data"),
            teacher_pretrained=teacher.pretrained,
            teacher_finetuned=teacher.finetuned,
            teacher_train=teacher.train,
            teacher_ensemble_seeds=teacher.ensemble_seeds,
            teacher_candidate_seeds=teacher.candidate_seeds,
            students=students,
            quantizations=quantizations,
            export_teacher=bool(export.get("teacher", True)),
            optimize_graph=bool(export.get("optimize", False)),
            eval_rounds=int(evaluate_cfg.get("rounds", 3)),
            eval_latency_threads=latency_threads(evaluate_cfg.get("latency_threads", [])),
            calibration_size=calibration_setting(evaluate_cfg.get("calibration_size", AUTO)),
            register_variants=_register_variants(register),
            register_budget=register_budget(register),
            write_routes=bool(register.get("routes", True)),
        )


REGISTER_KEYS = ("auto_max_drop", "force", "max_drop", "prefer", "routes", "variants")


def register_budget(register: dict[str, Any]) -> Budget:
    """The register section's budget. The older `auto_max_drop: X` (publish the fastest
    within X points, whatever `variants` lists) reads as `max_drop: X, prefer: fastest`
    with no list."""
    unknown = sorted(set(register) - set(REGISTER_KEYS))
    if unknown:
        raise ConfigError(f"register: unknown key(s) {unknown}; known: {list(REGISTER_KEYS)}")
    if register.get("auto_max_drop") is not None and "max_drop" not in register:
        return Budget(check_max_drop(register["auto_max_drop"], "register.auto_max_drop"),
                      check_prefer(register.get("prefer", "fastest"), "register.prefer"),
                      force=bool(register.get("force", False)))
    return Budget(check_max_drop(register.get("max_drop", Budget.max_drop),
                                 "register.max_drop"),
                  check_prefer(register.get("prefer", Budget.prefer), "register.prefer"),
                  force=bool(register.get("force", False)))


def _register_variants(register: dict[str, Any]) -> tuple[str, ...]:
    if register.get("auto_max_drop") is not None and "max_drop" not in register:
        return ()  # the older form chose by the budget alone
    variants = register.get("variants") or ()
    if isinstance(variants, str) or not all(isinstance(v, str) for v in variants):
        raise ConfigError(f"register.variants: a list of variant names, got {variants!r}")
    return tuple(variants)


def _check_top_level(raw: dict[str, Any]) -> None:
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; known: {list(TOP_LEVEL_KEYS)}")
    for key in ("name", "data", "teacher"):
        if key not in raw:
            raise ConfigError(f"config needs a '{key}' section")
    try:  # the name becomes a registry folder: refuse a bad one before any training
        check_safe_name(str(raw["name"]), "name")
    except ValueError as exc:
        raise ConfigError(f"name: {exc}") from exc


def _students(raw: list[dict[str, Any]] | None,
              ensemble_seeds: tuple[int, ...]) -> tuple[StudentSpec, ...]:
    students = tuple(student_spec(s, i) for i, s in enumerate(raw or []))
    if not ensemble_seeds:
        for i, s in enumerate(students):
            if s.ensemble:
                raise ConfigError(f"students[{i}].ensemble: the teacher has no ensemble; "
                                  "add teacher.ensemble_seeds")
    return students


# `init: teacher` with `prune_only`: a student made by pruning the teacher's own heads and
# FFN neurons (every layer kept, each narrower), then recovered by distillation.
TEACHER_INIT = "teacher"


def _made_by(student: StudentSpec) -> list[str]:
    """The models a student makes, by name: itself, `-pruned`, and their `-vocab`."""
    made = ([student.name] if not student.prune_only else []) + (
        [f"{student.name}-pruned"] if student.prune else [])
    return made + ([f"{name}-vocab" for name in made] if student.prune_vocab else [])


def _check_student_chain(students: tuple[StudentSpec, ...]) -> None:
    """Each `init` names an earlier student; QAT never starts from a factorised table."""
    ranked: set[str] = set()  # models with a factorised table, declared or inherited
    for i, s in enumerate(students):
        if s.name == TEACHER_INIT:
            raise ConfigError(f"students[{i}].name: {TEACHER_INIT!r} names the teacher "
                              "(init: teacher); choose another name")
        if s.init == TEACHER_INIT and not (s.prune_only and s.prune):
            raise ConfigError(f"students[{i}].init: teacher is for pruning the teacher "
                              "itself (prune_only: true with prune); a distilled student "
                              "copies teacher layers by itself (distill.layers)")
        earlier = [TEACHER_INIT] + [name for e in students[:i] for name in _made_by(e)]
        if s.init is not None and s.init not in earlier:
            raise ConfigError(f"students[{i}].init: {s.init!r} is not an earlier student; "
                              f"choose one of {earlier}")
        if s.qat is not None and s.init in ranked:
            raise ConfigError(f"students[{i}]: qat does not simulate a low-rank embedding "
                              f"table, and {s.init!r} has one; start it from another student")
        if s.embedding_rank is not None or s.init in ranked:
            ranked.update(_made_by(s))
