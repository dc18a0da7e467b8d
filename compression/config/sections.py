"""Sections of a pipeline file, each read and checked before any training: a mistake is
one `ConfigError` that names its place (`students[1].prune_vocab: ...`) and the fix."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from compression.config.scaling import check_coverage
from compression.config.steps import (
    AUTO,
    UNSEEN_POLICIES,
    AugmentConfig,
    DistillConfig,
    PruneConfig,
    QatConfig,
    SparsityConfig,
    TrainConfig,
    check_qat_training,
)
from compression.core.errors import ConfigError

TEACHER_KEYS = ("candidate_seeds", "ensemble_seeds", "finetuned", "pretrained", "train")
STUDENT_KEYS = ("augment", "distill", "embedding_rank", "ensemble", "init", "name", "prune",
                "prune_only", "prune_vocab", "qat", "recover", "sparsity", "train")


def build(cls: type, values: dict[str, Any] | None, where: str) -> Any:
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
    # Also make `<name>-vocab`: the student with only the training data's
    # tokens (plus specials and single characters) in its embeddings. The value says what
    # a dropped token becomes: "chars" (true) or "nearest" (see pruning/vocabulary.py);
    # None: no pruning.
    # In YAML also a mapping {unseen: nearest, min_count: 10}: only the tokens the training
    # data uses at least min_count times keep a row; or {unseen: nearest, coverage: 0.995}:
    # the most frequent tokens until they make up that share of the training data's token
    # occurrences (a threshold that scales with the data; not with min_count).
    prune_vocab: str | None = None
    prune_vocab_min_count: int = 1
    prune_vocab_coverage: float | None = None
    prune_vocab_keep_chars: bool = True  # false: unseen single characters go too
    # Magnitude-prune the student's encoder weights while it is distilled.
    sparsity: SparsityConfig | None = None
    # Also make `<name>-pruned`: heads/FFN neurons removed by importance, then recovered
    # by distilling again from the teacher with `recover_train` (and `recover_distill`'s
    # loss weights; the student's own when None).
    prune: PruneConfig | None = None
    recover_train: TrainConfig | None = None
    recover_distill: DistillConfig | None = None
    # Start from an earlier student's distilled model (a second stage with another loss
    # or schedule) instead of copying teacher layers: its name, `<name>-pruned` or their
    # `-vocab` (to recover from a vocabulary cut); or
    # `teacher`, with `prune_only`, to prune the teacher itself (every layer, narrower).
    init: str | None = None
    # With `init` and `prune`: prune that earlier student as it is (another head/FFN target
    # or recovery schedule for one distilled student) without distilling it again; only
    # `<name>-pruned` (and its `-vocab`) is made.
    prune_only: bool = False
    # Train under simulated static INT8 (quantization-aware; see quantization/qat.py), usually with
    # `init`, one epoch and a small learning rate.
    qat: QatConfig | None = None
    # Train on word-swapped copies of the sentences too (TinyBERT-style; see training/augment.py).
    augment: AugmentConfig | None = None
    # Train the word embeddings as two factors of this rank (see models/low_rank.py).
    embedding_rank: int | None = None
    # Learn (and recover) from the mean logits of the teacher and its `ensemble_seeds`
    # twins instead of the teacher's alone; hidden-state losses still follow the teacher.
    ensemble: bool = False


@dataclass(frozen=True)
class TeacherSection:
    pretrained: str | None
    finetuned: str | None
    train: TrainConfig
    ensemble_seeds: tuple[int, ...]
    candidate_seeds: tuple[int, ...]


def teacher_section(raw: dict[str, Any]) -> TeacherSection:
    """`teacher:` exactly one of pretrained/finetuned, its training, its extra seeds."""
    teacher = dict(raw)
    if bool(teacher.get("pretrained")) == bool(teacher.get("finetuned")):
        raise ConfigError("teacher: give exactly one of 'pretrained' (fine-tune it) or "
                          "'finetuned' (use it as is)")
    unknown = sorted(set(teacher) - set(TEACHER_KEYS))
    if unknown:
        raise ConfigError(f"teacher: unknown key(s) {unknown}; known: "
                          f"{', '.join(TEACHER_KEYS)}")
    train = build(TrainConfig, teacher.get("train"), "teacher.train")
    ensemble_seeds = _extra_seeds(teacher, "ensemble_seeds", train.seed)
    candidate_seeds = _extra_seeds(teacher, "candidate_seeds", train.seed)
    if ensemble_seeds and candidate_seeds:
        raise ConfigError("teacher: ensemble_seeds and candidate_seeds together would "
                          "make the chosen teacher its own twin; use one of them")
    return TeacherSection(teacher.get("pretrained"), teacher.get("finetuned"), train,
                          ensemble_seeds, candidate_seeds)


def latency_threads(raw: Any) -> tuple[int, ...]:
    """evaluate.latency_threads: a list of whole numbers >= 1."""
    if not isinstance(raw, list):
        raise ConfigError(f"evaluate.latency_threads: use a list like [1, 2]; got {raw!r}")
    return tuple(_whole_number(n, "evaluate.latency_threads") for n in raw)


def calibration_setting(raw: Any) -> int | str:
    """evaluate.calibration_size: `auto` (config.scaling.calibration_size_for the
    training set) or a whole number >= 1 ("512" from a string too, as before)."""
    if isinstance(raw, str) and raw.strip().lower() == AUTO:
        return AUTO
    try:
        size = int(raw)
    except (TypeError, ValueError):
        size = 0
    if isinstance(raw, bool) or size < 1:
        raise ConfigError(f"evaluate.calibration_size: use a whole number >= 1 or {AUTO}; "
                          f"got {raw!r}")
    return size


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
    return build(AugmentConfig, raw, where)


def _prune_vocab_section(raw: Any, where: str) -> tuple[str | None, int, float | None, bool]:
    """(unseen policy or None, min_count, coverage or None, keep_chars) from true/false, a
    policy name, or a mapping {unseen, min_count or coverage, keep_chars}; checked before
    any training. Neither count key: every seen token (min_count 1), as before coverage
    existed; keep_chars (every single-character piece kept) defaults to true."""
    coverage, keep_chars = None, True
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"unseen", "min_count", "coverage", "keep_chars"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: coverage, "
                              "keep_chars, min_count, unseen")
        keep_chars = raw.get("keep_chars", True)
        if not isinstance(keep_chars, bool):
            raise ConfigError(f"{where}.keep_chars: use true or false, got {keep_chars!r}")
        if "min_count" in raw and "coverage" in raw:
            raise ConfigError(f"{where}: give min_count or coverage, not both (coverage "
                              "chooses the count threshold from the data)")
        unseen = raw.get("unseen", "chars")
        min_count = _whole_number(raw.get("min_count", 1), f"{where}.min_count")
        if "coverage" in raw:
            coverage = check_coverage(raw["coverage"], f"{where}.coverage")
    else:
        unseen, min_count = ("chars" if raw is True else raw), 1
    if unseen in (False, None):
        return None, 1, None, True
    if unseen not in UNSEEN_POLICIES:
        raise ConfigError(f"{where}: use true, false, one of {', '.join(UNSEEN_POLICIES)} "
                          f"or a mapping {{unseen, min_count or coverage}}; got {raw!r}")
    return unseen, min_count, coverage, keep_chars


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


def student_spec(raw: dict[str, Any], index: int) -> StudentSpec:
    where = f"students[{index}]"
    unknown = sorted(set(raw) - set(STUDENT_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {list(STUDENT_KEYS)}")
    recover = dict(raw.get("recover") or {})
    unknown = sorted(set(recover) - {"train", "distill"})
    if unknown:
        raise ConfigError(f"{where}.recover: unknown key(s) {unknown}; known: distill, train")
    prune_vocab, min_count, coverage, keep_chars = _prune_vocab_section(
        raw.get("prune_vocab", False), f"{where}.prune_vocab")
    prune = raw.get("prune")
    if recover and not prune:
        raise ConfigError(f"{where}: 'recover' trains a pruned student; add 'prune'")
    train = build(TrainConfig, raw.get("train"), f"{where}.train")
    qat = (build(QatConfig, {} if raw["qat"] is True else raw["qat"], f"{where}.qat")
           if raw.get("qat") not in (None, False) else None)
    sparsity = (build(SparsityConfig, raw["sparsity"], f"{where}.sparsity")
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
        distill=build(DistillConfig, raw.get("distill"), f"{where}.distill"),
        train=train,
        prune_vocab=prune_vocab,
        prune_vocab_min_count=min_count,
        prune_vocab_coverage=coverage,
        prune_vocab_keep_chars=keep_chars,
        init=raw.get("init"),
        qat=qat,
        sparsity=sparsity,
        augment=_augment(raw.get("augment"), f"{where}.augment"),
        embedding_rank=embedding_rank,
        prune=build(PruneConfig, prune, f"{where}.prune") if prune else None,
        recover_train=(build(TrainConfig, recover.get("train"), f"{where}.recover.train")
                       if prune else None),
        recover_distill=(build(DistillConfig, recover["distill"], f"{where}.recover.distill")
                         if recover.get("distill") else None),
    )
