"""The space `auto` searches, as pipeline student sections, cheapest first.

Three ladders, each from the mildest step to the most aggressive, so that a step that
misses the budget ends its ladder (a harsher one would miss too):
- vocabulary coverage: keep the tokens covering this share of the training tokens
  (`auto.vocabulary_ladder`: equal cuts made once, a student's missed cut recovered);
- student depth: teacher layers copied DistilBERT-style, then distilled;
- structured width: half the attention heads and FFN neurons of the shallowest student
  within budget, recovered by distillation; of the teacher itself (every layer, half as
  wide) when no student is within budget: for a task where depth costs more accuracy than
  width (token classification: a 3-layer CoNLL student is 3.4 F1 down, a half-width
  6-layer one 0.9), width is the only way to a small model within budget.
Every model is exported and quantized with each preset of `QUANT_LADDER`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from compression.models.adapters.base import HEAD_PRUNING, NormalizedShape

COVERAGE_LADDER = (0.999, 0.995, 0.99, 0.98, 0.97, 0.95)
# INT8 in the MatMuls with float outputs: the most accurate preset measured on SST-2
# (docs/benchmarks.md), and fixed scales, so an answer never depends on its batch.
# The same with 4-bit embedding rows: a third less file for a cut vocabulary's model, at
# a cost the budget judges (CoNLL: within 1 F1, docs/benchmarks.md).
QUANT_LADDER = ("static-float-outputs", "static-float-outputs-int4-embeddings")
# Student training: the shipped recipes' loss (CE + KL at T=2 + hidden-state cosine and
# TinyBERT MSE) and optimiser; epochs scale with the training set ("auto").
STUDENT_LOSS = {"temperature": 2.0, "alpha_ce": 0.5, "alpha_kl": 0.5, "alpha_cos": 0.5,
                "alpha_hidden": 1.0}
STUDENT_TRAIN = {"epochs": "auto", "learning_rate": 1.0e-4, "batch_size": 32, "warmup": 0.06}
TEACHER_TRAIN = {"epochs": "auto", "learning_rate": 5.0e-5, "batch_size": 32, "warmup": 0.06}


def student_depths(num_layers: int) -> list[int]:
    """Depths to try, deepest first: a half and a third of the teacher's layers (6 -> 3, 2;
    12 -> 6, 4), never the teacher's own depth, never below one layer."""
    depths = sorted({max(1, num_layers // 2), max(1, num_layers // 3)}, reverse=True)
    return [d for d in depths if d < num_layers]


def evenly_spaced_layers(num_layers: int, depth: int) -> list[int]:
    """Teacher layers a `depth`-layer student copies: the last of each equal block (6 -> 3:
    1, 3, 5), whose outputs are the hidden states TinyBERT's loss maps the student onto."""
    block = num_layers / depth
    return [round((i + 1) * block) - 1 for i in range(depth)]


@dataclass(frozen=True)
class Candidate:
    """One step of the search: the pipeline students it trains (with the earlier ones
    it starts from) and the name of the model it makes."""

    name: str
    ladder: str  # "teacher", "depth" or "width"
    students: tuple[dict[str, Any], ...] = ()
    model: str = "teacher"  # the key of the model it makes in Pipeline.students()
    trains: bool = False
    depth: int = 0  # the student's layers (0: the teacher's)

    @property
    def compute_layers(self) -> float:
        """What an epoch costs, in full-width layers: a half-width layer costs about half
        (what the time budget scales the last student's epoch time by)."""
        return compute_layers(self.spec)

    @property
    def spec(self) -> dict[str, Any]:
        """What identifies it in the search state: a changed spec is searched again."""
        return {"ladder": self.ladder, "students": list(self.students), "model": self.model,
                "depth": self.depth}


def compute_layers(spec: dict[str, Any]) -> float:
    """`Candidate.compute_layers` of a candidate's (or a finished step's) spec."""
    depth = float(spec.get("depth") or 0)
    return depth / 2 if spec.get("ladder") == "width" else depth


def depth_candidate(shape: NormalizedShape, depth: int,
                    train: dict[str, Any] | None = None) -> Candidate:
    name = f"l{depth}"
    student = {"name": name, "train": dict(train or STUDENT_TRAIN),
               "distill": {"num_layers": depth,
                           "layers": evenly_spaced_layers(shape.num_layers, depth),
                           **STUDENT_LOSS}}
    return Candidate(name=name, ladder="depth", students=(student,), model=name, trains=True,
                     depth=depth)


def teacher_base(shape: NormalizedShape) -> Candidate:
    """The teacher as the model a width candidate starts from (`init: teacher`): no
    student trained before it, every layer kept."""
    return Candidate(name="teacher", ladder="teacher", depth=shape.num_layers)


def width_candidate(shape: NormalizedShape, base: Candidate, head_pruning: bool,
                    train: dict[str, Any] | None = None) -> Candidate:
    """Half the heads (when the architecture can drop heads) and half the FFN neurons of
    `base`'s student, recovered with the same distillation."""
    prune: dict[str, Any] = {"ffn": max(1, shape.intermediate_size // 2)}
    if head_pruning:
        prune["heads"] = max(1, shape.num_heads // 2)
    name = f"{base.name}-w50"
    student = {"name": name, "init": base.name, "prune_only": True, "prune": prune,
               "recover": {"distill": dict(STUDENT_LOSS), "train": dict(train or STUDENT_TRAIN)}}
    return Candidate(name=name, ladder="width", students=(*base.students, student),
                     model=f"{name}-pruned", trains=True, depth=base.depth)


def student_train(students: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> dict[str, Any]:
    """The optimiser settings of the last student (a pruned one's recovery)."""
    last = students[-1]
    return last.get("train") or last["recover"]["train"]


def with_epochs(candidate: Candidate, epochs: int | str) -> Candidate:
    """`candidate` with its own (last) student trained for `epochs`."""
    last = dict(candidate.students[-1])
    if "recover" in last:
        last["recover"] = {**last["recover"], "train": {**last["recover"]["train"],
                                                        "epochs": epochs}}
    else:
        last["train"] = {**last["train"], "epochs": epochs}
    return replace(candidate, students=(*candidate.students[:-1], last))


def can_prune_structure(task_name: str, refusal: str | None) -> tuple[bool, bool]:
    """(structured pruning possible at all, heads too): every task takes it; an
    architecture may refuse head pruning only."""
    return True, refusal is None


__all__ = ["COVERAGE_LADDER", "HEAD_PRUNING", "QUANT_LADDER", "Candidate", "can_prune_structure",
           "compute_layers", "depth_candidate", "evenly_spaced_layers", "student_depths",
           "student_train", "teacher_base", "width_candidate", "with_epochs"]
