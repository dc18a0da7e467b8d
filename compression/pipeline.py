"""The whole chain from one config file: fine-tune, distil, export, quantize, evaluate,
register. Each step records its config digest, so a re-run reuses finished steps.

See `examples/sst2.yaml` for a complete, commented config.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from registry import (
    ROUTES_FILE,
    Manifest,
    RoutingTable,
    check_safe_name,
    list_versions,
    sha256_file,
)

from .artifacts import ONNX_FILE, export_step, quantize_step
from .configs import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    PruneConfig,
    QuantConfig,
    TrainConfig,
)
from .data import load_data
from .errors import ConfigError
from .evaluate import Variant, VariantReport, evaluate, write_reports
from .qat import QatConfig, check_qat_training
from .sparsity import SparsityConfig
from .vocab import UNSEEN_POLICIES

log = logging.getLogger(__name__)


def _build(cls: type, values: dict[str, Any] | None, where: str) -> Any:
    """A config dataclass from a mapping; unknown keys are an error that names them."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


@dataclass(frozen=True)
class StudentSpec:
    name: str
    distill: DistillConfig
    train: TrainConfig
    # Also make `<name>-vocab`: the student with only the training data's WordPiece
    # tokens (plus specials and single characters) in its embeddings. The value says what
    # a dropped token becomes: "chars" (true) or "nearest" (see vocab.py); None: no pruning.
    # In YAML also a mapping {unseen: nearest, min_count: 10}: only the tokens the training
    # data uses at least min_count times keep a row.
    prune_vocab: str | None = None
    prune_vocab_min_count: int = 1
    # Magnitude-prune the student's encoder weights while it is distilled.
    sparsity: SparsityConfig | None = None
    # Also make `<name>-pruned`: heads/FFN neurons removed by importance, then recovered
    # by distilling again from the teacher with `recover_train` (and `recover_distill`'s
    # loss weights; the student's own when None).
    prune: PruneConfig | None = None
    recover_train: TrainConfig | None = None
    recover_distill: DistillConfig | None = None
    # Start from an earlier student's distilled model (a second stage with another loss
    # or schedule) instead of copying teacher layers: its name or `<name>-pruned`.
    init: str | None = None
    # With `init` and `prune`: prune that earlier student as it is (another head/FFN target
    # or recovery schedule for one distilled student) without distilling it again; only
    # `<name>-pruned` (and its `-vocab`) is made.
    prune_only: bool = False
    # Train under simulated static INT8 (quantization-aware; see qat.py), usually with
    # `init`, one epoch and a small learning rate.
    qat: QatConfig | None = None
    # Train on word-swapped copies of the sentences too (TinyBERT-style; see augment.py).
    augment: AugmentConfig | None = None
    # Train the word embeddings as two factors of this rank (see low_rank.py).
    embedding_rank: int | None = None
    # Learn (and recover) from the mean logits of the teacher and its `ensemble_seeds`
    # twins instead of the teacher's alone; hidden-state losses still follow the teacher.
    ensemble: bool = False


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
    calibration_size: int = 512
    register_variants: tuple[str, ...] = ()
    register_auto_max_drop: float | None = None  # points below the teacher
    write_routes: bool = True

    @classmethod
    def load(cls, path: Path) -> PipelineConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

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
        allowed = {"name", "work_dir", "registry", "data", "teacher", "students", "quantize",
                   "export", "evaluate", "register"}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ConfigError(f"unknown top-level key(s) {unknown}; known: {sorted(allowed)}")
        for key in ("name", "data", "teacher"):
            if key not in raw:
                raise ConfigError(f"config needs a '{key}' section")
        try:  # the name becomes a registry folder: refuse a bad one before any training
            check_safe_name(str(raw["name"]), "name")
        except ValueError as exc:
            raise ConfigError(f"name: {exc}") from exc
        data = dict(raw["data"])
        if "label_names" in data:
            data["label_names"] = {str(k): str(v) for k, v in data["label_names"].items()}
        teacher = dict(raw["teacher"])
        if bool(teacher.get("pretrained")) == bool(teacher.get("finetuned")):
            raise ConfigError("teacher: give exactly one of 'pretrained' (fine-tune it) or "
                              "'finetuned' (use it as is)")
        unknown = sorted(set(teacher) - {"pretrained", "finetuned", "train", "ensemble_seeds",
                                         "candidate_seeds"})
        if unknown:
            raise ConfigError(f"teacher: unknown key(s) {unknown}; known: candidate_seeds, "
                              "ensemble_seeds, finetuned, pretrained, train")
        teacher_train = _build(TrainConfig, teacher.get("train"), "teacher.train")
        ensemble_seeds = _extra_seeds(teacher, "ensemble_seeds", teacher_train.seed)
        candidate_seeds = _extra_seeds(teacher, "candidate_seeds", teacher_train.seed)
        if ensemble_seeds and candidate_seeds:
            raise ConfigError("teacher: ensemble_seeds and candidate_seeds together would "
                              "make the chosen teacher its own twin; use one of them")
        students = tuple(_student_spec(s, i) for i, s in enumerate(raw.get("students") or []))
        if not ensemble_seeds:
            for i, s in enumerate(students):
                if s.ensemble:
                    raise ConfigError(f"students[{i}].ensemble: the teacher has no ensemble; "
                                      "add teacher.ensemble_seeds")
        quantizations = tuple(
            QuantSpec(name=q.pop("name", f"int8-{i}"), config=_build(QuantConfig, q,
                                                                     f"quantize[{i}]"))
            for i, q in enumerate(dict(q) for q in (raw.get("quantize") or []))
        )
        ranked: set[str] = set()  # models with a factorised table, declared or inherited
        for i, s in enumerate(students):
            earlier = [name for e in students[:i]
                       for name in ((e.name,) if not e.prune_only else ())
                       + ((f"{e.name}-pruned",) if e.prune else ())]
            if s.init is not None and s.init not in earlier:
                raise ConfigError(f"students[{i}].init: {s.init!r} is not an earlier student; "
                                  f"choose one of {earlier}")
            if s.qat is not None and s.init in ranked:
                raise ConfigError(f"students[{i}]: qat does not simulate a low-rank embedding "
                                  f"table, and {s.init!r} has one; start it from another student")
            if s.embedding_rank is not None or s.init in ranked:
                ranked.update((s.name, f"{s.name}-pruned"))
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
            data=_build(DataConfig, data, "data"),
            teacher_pretrained=teacher.get("pretrained"),
            teacher_finetuned=teacher.get("finetuned"),
            teacher_train=teacher_train,
            teacher_ensemble_seeds=ensemble_seeds,
            teacher_candidate_seeds=candidate_seeds,
            students=students,
            quantizations=quantizations,
            export_teacher=bool(export.get("teacher", True)),
            optimize_graph=bool(export.get("optimize", False)),
            eval_rounds=int(evaluate_cfg.get("rounds", 3)),
            eval_latency_threads=_latency_threads(evaluate_cfg.get("latency_threads", [])),
            calibration_size=int(evaluate_cfg.get("calibration_size", 512)),
            register_variants=tuple(register.get("variants") or ()),
            register_auto_max_drop=register.get("auto_max_drop"),
            write_routes=bool(register.get("routes", True)),
        )


def _latency_threads(raw: Any) -> tuple[int, ...]:
    """evaluate.latency_threads: a list of whole numbers >= 1."""
    if not isinstance(raw, list):
        raise ConfigError(f"evaluate.latency_threads: use a list like [1, 2]; got {raw!r}")
    return tuple(_whole_number(n, "evaluate.latency_threads") for n in raw)


def _extra_seeds(teacher: dict[str, Any], key: str, own_seed: int) -> tuple[int, ...]:
    """teacher.<key>: distinct whole numbers other than the teacher's own seed."""
    raw = teacher.get(key) or []
    if not isinstance(raw, list) or any(isinstance(x, bool) or not isinstance(x, int)
                                        for x in raw):
        raise ConfigError(f"teacher.{key}: use a list of whole numbers; got {raw!r}")
    if raw and not teacher.get("pretrained"):
        raise ConfigError(f"teacher.{key}: those teachers are fine-tuned like the teacher; "
                          "use it with 'pretrained', not 'finetuned'")
    if len(set(raw)) != len(raw) or own_seed in raw:
        raise ConfigError(f"teacher.{key}: {raw} repeats a seed (the teacher's own "
                          f"is {own_seed}); each run needs its own")
    return tuple(raw)


def _augment(raw: Any, where: str) -> AugmentConfig | None:
    """`augment: true` or `{}` = the defaults, a mapping = those settings, absent/false = off."""
    if raw in (None, False):
        return None
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: use true, false or a mapping of settings; got {raw!r}")
    return _build(AugmentConfig, raw, where)


def _prune_vocab_section(raw: Any, where: str) -> tuple[str | None, int]:
    """(unseen policy or None, min_count) from true/false, a policy name, or a mapping
    {unseen, min_count}; checked before any training."""
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"unseen", "min_count"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: min_count, unseen")
        unseen = raw.get("unseen", "chars")
        min_count = _whole_number(raw.get("min_count", 1), f"{where}.min_count")
    else:
        unseen, min_count = ("chars" if raw is True else raw), 1
    if unseen in (False, None):
        return None, 1
    if unseen not in UNSEEN_POLICIES:
        raise ConfigError(f"{where}: use true, false, one of {', '.join(UNSEEN_POLICIES)} "
                          f"or a mapping {{unseen, min_count}}; got {raw!r}")
    return unseen, min_count


def _whole_number(raw: Any, where: str) -> int:
    """`raw` if it is an int >= 1 (YAML's true is not one)."""
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ConfigError(f"{where}: use a whole number >= 1; got {raw!r}")
    return raw


def _check_prune_only(raw: dict[str, Any], where: str) -> None:
    """A prune-only student names what it prunes and how it recovers, and trains nothing
    else: keys that would configure its own distillation are mistakes."""
    if not raw.get("init") or not raw.get("prune"):
        raise ConfigError(f"{where}: prune_only prunes an earlier student; give 'init' and "
                          "'prune'")
    recover = raw.get("recover") or {}
    if "train" not in recover or "distill" not in recover:
        raise ConfigError(f"{where}: prune_only has no distillation of its own to fall back "
                          "on; give recover.train and recover.distill")
    own = sorted(set(raw) & {"distill", "train", "qat", "sparsity", "augment",
                             "embedding_rank"})
    if own:
        raise ConfigError(f"{where}: prune_only trains no student of its own; remove {own} "
                          "(the recovery is 'recover')")


def _student_spec(raw: dict[str, Any], index: int) -> StudentSpec:
    where = f"students[{index}]"
    known = {"name", "distill", "train", "prune_vocab", "prune", "recover", "sparsity", "init",
             "qat", "augment", "embedding_rank", "prune_only", "ensemble"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    recover = dict(raw.get("recover") or {})
    unknown = sorted(set(recover) - {"train", "distill"})
    if unknown:
        raise ConfigError(f"{where}.recover: unknown key(s) {unknown}; known: distill, train")
    prune_vocab, min_count = _prune_vocab_section(raw.get("prune_vocab", False),
                                                  f"{where}.prune_vocab")
    prune = raw.get("prune")
    if recover and not prune:
        raise ConfigError(f"{where}: 'recover' trains a pruned student; add 'prune'")
    train = _build(TrainConfig, raw.get("train"), f"{where}.train")
    qat = (_build(QatConfig, {} if raw["qat"] is True else raw["qat"], f"{where}.qat")
           if raw.get("qat") not in (None, False) else None)
    sparsity = (_build(SparsityConfig, raw["sparsity"], f"{where}.sparsity")
                if raw.get("sparsity") else None)
    embedding_rank = (None if raw.get("embedding_rank") is None
                      else _whole_number(raw["embedding_rank"], f"{where}.embedding_rank"))
    if qat is not None:
        # distill refuses the same, but only after the earlier students have trained.
        try:
            check_qat_training(train, sparsity, embedding_rank)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    prune_only = raw.get("prune_only", False)
    if not isinstance(prune_only, bool):
        raise ConfigError(f"{where}.prune_only: use true or false; got {prune_only!r}")
    if prune_only:
        _check_prune_only(raw, where)
    ensemble = raw.get("ensemble", False)
    if not isinstance(ensemble, bool):
        raise ConfigError(f"{where}.ensemble: use true or false; got {ensemble!r}")
    return StudentSpec(
        ensemble=ensemble,
        name=raw.get("name") or f"student-{index}",
        prune_only=prune_only,
        distill=_build(DistillConfig, raw.get("distill"), f"{where}.distill"),
        train=train,
        prune_vocab=prune_vocab,
        prune_vocab_min_count=min_count,
        init=raw.get("init"),
        qat=qat,
        sparsity=sparsity,
        augment=_augment(raw.get("augment"), f"{where}.augment"),
        embedding_rank=embedding_rank,
        prune=_build(PruneConfig, prune, f"{where}.prune") if prune else None,
        recover_train=(_build(TrainConfig, recover.get("train"), f"{where}.recover.train")
                       if prune else None),
        recover_distill=(_build(DistillConfig, recover["distill"], f"{where}.recover.distill")
                         if recover.get("distill") else None),
    )


class Pipeline:
    """Runs a `PipelineConfig` step by step; every step's output lives under work_dir."""

    def __init__(self, config: PipelineConfig, force: bool = False) -> None:
        self.config = config
        self.force = force
        self.work = config.work_dir

    # -- steps ---------------------------------------------------------------------------
    def teacher(self) -> str:
        """The fine-tuned teacher's folder, fine-tuning it first if needed."""
        cfg = self.config
        if cfg.teacher_finetuned:
            return cfg.teacher_finetuned
        runs = [self._finetune_teacher(None)]
        runs += [self._finetune_teacher(seed) for seed in cfg.teacher_candidate_seeds]
        best = max(runs, key=lambda run: run["dev_accuracy"])  # a tie keeps the first
        for run in runs:
            log.info("teacher (seed %d): dev accuracy %.4f%s", run["config"]["train"]["seed"],
                     run["dev_accuracy"], " <- the teacher" if run is best else "")
        return best["model_dir"]

    def _finetune_teacher(self, seed: int | None) -> dict[str, Any]:
        """The teacher's fine-tuning result: with its own seed in `teacher/`, or with
        `seed` in `teacher-seed<seed>/` (a candidate or an ensemble twin)."""
        from .finetune import finetune

        cfg = self.config
        if seed is None:
            return finetune(cfg.teacher_pretrained, cfg.data, cfg.teacher_train,
                            self.work / "teacher")
        return finetune(cfg.teacher_pretrained, cfg.data, replace(cfg.teacher_train, seed=seed),
                        self.work / f"teacher-seed{seed}")

    def teacher_ensemble(self) -> list[str]:
        """The teacher's twins (fine-tuned like it with `ensemble_seeds`), when a student
        learns from the ensemble; nothing is trained otherwise."""
        cfg = self.config
        if not any(s.ensemble for s in cfg.students):
            return []
        twins = []
        for seed in cfg.teacher_ensemble_seeds:
            result = self._finetune_teacher(seed)
            log.info("teacher (seed %d): dev accuracy %.4f", seed, result["dev_accuracy"])
            twins.append(result["model_dir"])
        return twins

    def students(self, teacher_dir: str) -> dict[str, str]:
        """Every student's models by name (the teacher's twins trained first if a student
        learns from the ensemble)."""
        from .distill import distill

        cfg = self.config
        twins = self.teacher_ensemble()
        students = self.work / "students"
        out: dict[str, str] = {}
        for spec in cfg.students:
            extra_teachers = twins if spec.ensemble else []
            if spec.prune_only:
                made = {f"{spec.name}-pruned": self._prune_and_recover(
                    teacher_dir, spec, out[spec.init], extra_teachers)}
                out.update(self._with_pruned_vocabularies(spec, made))
                continue
            result = distill(teacher_dir, cfg.data, spec.train, spec.distill,
                             students / spec.name, cache_dir=self.work / "cache",
                             sparsity=spec.sparsity, quantization_aware=spec.qat,
                             augment=spec.augment, embedding_rank=spec.embedding_rank,
                             student_ref=out[spec.init] if spec.init else None,
                             extra_teachers=extra_teachers)
            log.info("student %s: dev accuracy %.4f", spec.name, result["dev_accuracy"])
            made = {spec.name: result["model_dir"]}
            if spec.prune is not None:
                made[f"{spec.name}-pruned"] = self._prune_and_recover(
                    teacher_dir, spec, result["model_dir"], extra_teachers)
            out.update(self._with_pruned_vocabularies(spec, made))
        return out

    def _with_pruned_vocabularies(self, spec: StudentSpec, made: dict[str, str]
                                  ) -> dict[str, str]:
        """`made` plus a `<name>-vocab` of each model when the student prunes its vocabulary."""
        if not spec.prune_vocab:
            return made
        return {**made, **{f"{name}-vocab": self._prune_vocab(
            name, model_dir, spec.prune_vocab, spec.prune_vocab_min_count)
            for name, model_dir in made.items()}}

    def _prune_and_recover(self, teacher_dir: str, spec: StudentSpec, model_dir: str,
                           extra_teachers: Sequence[str] = ()) -> str:
        """Heads and FFN neurons cut by importance, then a short distillation to recover
        (from the teacher and `extra_teachers`, when the student learns from an ensemble)."""
        from .distill import distill
        from .structure import prune_structure

        cfg = self.config
        splits = load_data(cfg.data)
        name = f"{spec.name}-pruned"
        pruned = prune_structure(Path(model_dir), self.work / "students" / f"{name}-init",
                                 splits.train.texts, splits.labels.encode(splits.train),
                                 spec.prune, cfg.data.max_length)
        log.info("student %s: %.1fM -> %.1fM parameters", name,
                 pruned["parameters_before"] / 1e6, pruned["parameters_after"] / 1e6)
        result = distill(teacher_dir, cfg.data, spec.recover_train or spec.train,
                         spec.recover_distill or spec.distill, self.work / "students" / name,
                         cache_dir=self.work / "cache", student_ref=pruned["model_dir"],
                         extra_teachers=extra_teachers)
        log.info("student %s: dev accuracy %.4f after recovery", name, result["dev_accuracy"])
        return result["model_dir"]

    def _prune_vocab(self, name: str, model_dir: str, unseen: str, min_count: int) -> str:
        from .vocab import prune_vocabulary

        pruned = prune_vocabulary(Path(model_dir), self.work / "students" / f"{name}-vocab",
                                  load_data(self.config.data).train.texts, unseen=unseen,
                                  min_count=min_count)
        log.info("student %s-vocab: vocabulary %d -> %d", name, pruned["vocab_before"],
                 pruned["vocab_after"])
        return pruned["model_dir"]

    def onnx_variants(self, torch_models: dict[str, str]) -> dict[str, Path]:
        """Export each model to fp32 ONNX and quantize it with each quantization."""
        cfg = self.config
        splits = load_data(cfg.data)
        dev = splits.dev
        calibration = spread(splits.train.texts, cfg.calibration_size)
        variants: dict[str, Path] = {}
        for name, model_dir in torch_models.items():
            fp32_dir = self.work / "onnx" / f"{name}-fp32"
            export_step(Path(model_dir), fp32_dir, dev.texts[:256], cfg.data.max_length,
                        optimize=cfg.optimize_graph)
            variants[f"{name}-fp32"] = fp32_dir
            for quant in cfg.quantizations:
                q_dir = self.work / "onnx" / f"{name}-{quant.name}"
                quantize_step(fp32_dir, q_dir, quant.config, calibration, dev.texts,
                              cfg.data.max_length)
                variants[f"{name}-{quant.name}"] = q_dir
        return variants

    def evaluate(self, teacher_dir: str, onnx_dirs: dict[str, Path],
                 published: list[Path] | None = None) -> list[VariantReport]:
        """Every variant against the teacher in PyTorch; `published` registry version
        folders join them under their "name/version"."""
        cfg = self.config
        splits = load_data(cfg.data)
        dev, space = splits.dev, splits.labels
        variants = [Variant.from_path(Path(teacher_dir), "teacher-torch-fp32")]
        variants += [Variant.from_path(d / ONNX_FILE, name) for name, d in onnx_dirs.items()]
        variants += [Variant.from_path(folder) for folder in published or []]
        reports = evaluate(variants, dev.texts, space.encode(dev), cfg.data.max_length,
                           rounds=cfg.eval_rounds, latency_threads=cfg.eval_latency_threads)
        write_reports(reports, self.work / "eval", title=f"{cfg.name}: dev set")
        return reports

    def register(self, reports: list[VariantReport], onnx_dirs: dict[str, Path],
                 labels: list[str]) -> list[Path]:
        from .register import register

        cfg = self.config
        chosen = list(cfg.register_variants)
        if cfg.register_auto_max_drop is not None:
            teacher = reports[0]
            eligible = [r for r in reports[1:] if 100 * (teacher.accuracy - r.accuracy)
                        <= cfg.register_auto_max_drop]
            if eligible:
                chosen = [min(eligible, key=lambda r: (r.latency_p50_ms, r.size_mb)).name]
        unknown = [c for c in chosen if c not in onnx_dirs]
        if unknown:
            raise ConfigError(f"register: unknown variant(s) {unknown}; have {sorted(onnx_dirs)}")
        by_name = {r.name: r for r in reports}
        published = []
        for name in chosen:
            existing = self._already_registered(onnx_dirs[name] / ONNX_FILE)
            if existing is not None:
                log.info("register: %s is already %s", name, existing)
                published.append(existing)
                continue
            r = by_name[name]
            metrics = {
                "dev_accuracy": r.accuracy, "dev_macro_f1": r.macro_f1,
                "agreement_with_teacher": r.agreement, "size_mb": r.size_mb,
                "latency_b1_p50_ms": r.latency_p50_ms, "latency_b1_p95_ms": r.latency_p95_ms,
                "latency_b1_threads": r.latency_threads,
                "throughput_b32": r.throughput_b32, "smaller_than_teacher": r.ratios["smaller"],
                "faster_than_teacher_b1": r.ratios["faster_b1"],
            }
            published.append(register(onnx_dirs[name], cfg.registry, cfg.name, labels,
                                       cfg.data.max_length, metrics, dataset=cfg.data.train,
                                       force=self.force))
        if published and cfg.write_routes:
            routes = RoutingTable.read(cfg.registry)
            # All traffic to the first; the others are loaded, ready for an A/B split.
            routes.routes[cfg.name] = {p.name: (100.0 if i == 0 else 0.0)
                                       for i, p in enumerate(published)}
            routes.write(cfg.registry)
            log.info("register: %s routes all traffic to %s/%s", ROUTES_FILE, cfg.name,
                     published[0].name)
        return published

    def _already_registered(self, onnx_file: Path) -> Path | None:
        digest = sha256_file(onnx_file)
        for folder in self.published_versions():
            entry = Manifest.read(folder).files.get(ONNX_FILE)
            if entry is not None and entry.sha256 == digest:
                return folder
        return None

    def published_versions(self) -> list[Path]:
        """The registry's versions of this config's model (what is shipped today)."""
        cfg = self.config
        return [cfg.registry / cfg.name / v for v in list_versions(cfg.registry, cfg.name)]

    # -- the whole chain -------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        teacher_dir = self.teacher()
        students = self.students(teacher_dir)
        torch_models = ({"teacher": teacher_dir} if self.config.export_teacher else {})
        torch_models.update(students)
        onnx_dirs = self.onnx_variants(torch_models)
        reports = self.evaluate(teacher_dir, onnx_dirs)
        from .modeling import labels_of, load_classifier

        labels = labels_of(load_classifier(teacher_dir))
        published = self.register(reports, onnx_dirs, labels)
        return {"reports": reports, "published": [str(p) for p in published],
                "eval_dir": str(self.work / "eval")}


def spread(texts: list[str], n: int) -> list[str]:
    """`n` texts spread evenly over the list (calibration should see all of it)."""
    if n >= len(texts):
        return list(texts)
    step = len(texts) / n
    return [texts[int(i * step)] for i in range(n)]
