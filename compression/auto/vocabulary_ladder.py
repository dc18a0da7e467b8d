"""`auto`'s vocabulary ladder: a model's vocabulary cut to the tokens that cover less and
less of the training texts' token occurrences, until a cut misses the budget.

- The teacher climbs from the mildest cut. A student starts where the teacher's ladder
  ended within budget and goes deeper while within, or milder while it misses: on
  GoEmotions each step (export, two quantizations, scoring on 5,426 dev texts) is 5
  minutes, and the teacher's ladder has already found where the cuts begin to cost.

- Two coverages that need the same count threshold keep the same tokens (ties at the cut
  are kept together: on CoNLL-2003, 99.9, 99.5 and 99 % all keep every token seen once,
  because tokens seen once are over 1 % of the occurrences). The cut is made once.
- Where the tokenizer can alias (WordPiece: `nearest`), a dropped token, a single
  character included, shares its nearest kept row: the unused characters go too
  (thousands of rows). Elsewhere (`chars`) every character is kept, so that any word can
  still be spelled.
- A student's cut that misses the budget gets a short recovery distillation from the
  teacher (the shipped CoNLL recipe won back the 2 F1 of its cut so, in 3 epochs) and is
  scored again; the ladder goes on only if that is within. The teacher's own cuts are not
  retrained, nor are `chars` cuts (their texts split into other pieces than the
  teacher's, so the teacher's per-token outputs do not line up with them).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

from compression.auto.space import COVERAGE_LADDER, STUDENT_LOSS, compute_layers
from compression.config.scaling import epochs_for
from compression.config.sections import student_spec
from compression.core.errors import ConfigError, TrainingStopped
from compression.pruning.token_counts import count_threshold, token_counts
from compression.pruning.tokenizer_models import special_tokens
from compression.pruning.vocabulary import prune_vocabulary, refuse_aliases
from compression.training.distill import distill
from compression.training.trainer import TrainingContext

# The search (`auto.search.AutoSearch`) and its steps are typed `Any` here: naming them
# would make the two modules import each other.
AutoSearch = Step = Any

log = logging.getLogger(__name__)

# A recovery: half the data-scaled epochs of a student, at the recipes' second-stage rate.
RECOVER_TRAIN = {"learning_rate": 5.0e-5, "batch_size": 32, "warmup": 0.06}


def recovery_epochs(n_train: int) -> int:
    """Half a student's data-scaled epochs, at least one (CoNLL-2003: 3 of 7)."""
    return max(1, epochs_for(n_train, int(RECOVER_TRAIN["batch_size"])) // 2)


def unseen_policy(model_dir: str) -> str:
    """Nearest-token aliases where the tokenizer can hold them (WordPiece), else chars."""
    try:
        refuse_aliases(model_dir)
    except ConfigError:  # the tokenizer cannot alias; a broken file still fails loudly
        return "chars"
    return "nearest"


class VocabularyLadder:
    """The ladder for one search: its steps are the search's (state, clock, scores)."""

    def __init__(self, search: AutoSearch, coverages: tuple[float, ...] = COVERAGE_LADDER
                 ) -> None:
        self.search, self.coverages = search, coverages

    def climb(self, name: str, model_dir: str, recover: bool) -> None:
        """Cut `model_dir`'s vocabulary deeper and deeper until a cut (recovered, when
        `recover` and the cut aliases) misses the budget or the time is up. A model other
        than the teacher starts at the deepest cut within budget on the teacher's ladder
        (the same tokens: it shares the tokenizer), and climbs back to milder cuts, one at a
        time, while that misses: one or two steps instead of up to six."""
        unseen = unseen_policy(model_dir)
        cut = partial(self._within, name, model_dir, unseen, recover)
        coverages = self._distinct(name, self._counts(model_dir))
        start = 0 if name == "teacher" else self._teacher_reach(coverages)
        for index in range(start, len(coverages)):
            within = cut(coverages[index])
            if within is None or (not within and index > start):
                return  # out of time, or a miss after a cut within: as deep as it goes
            if not within:
                break
        else:
            return
        for coverage in reversed(coverages[:start]):  # the start missed: back off
            if cut(coverage) is not False:
                return

    def _distinct(self, name: str, counts: dict[int, int]) -> list[float]:
        """The coverages whose cuts differ (two that need the same count threshold keep
        the same tokens: the milder one stands for both)."""
        distinct, previous = [], None
        for coverage in self.coverages:
            threshold = count_threshold(counts, coverage)
            if threshold == previous:
                log.info("auto: %s: coverage %g keeps the same tokens as the last cut", name,
                         coverage)
                continue
            previous = threshold
            distinct.append(coverage)
        return distinct

    def _teacher_reach(self, coverages: list[float]) -> int:
        """Where a student's ladder starts: the deepest of `coverages` at least as mild as
        the teacher's deepest cut within budget (0 when the teacher has none)."""
        search = self.search
        within = [s.spec["coverage"] for s in search.state.steps.values()
                  if s.spec.get("ladder") == "vocabulary" and s.spec.get("model") == "teacher"
                  and search.within(s)]
        if not within:
            return 0
        return max((i for i, c in enumerate(coverages) if c >= min(within)), default=0)

    def _within(self, name: str, model_dir: str, unseen: str, recover: bool,
                coverage: float) -> bool | None:
        """Whether the cut at `coverage` (recovered when it misses, `recover` and the cut
        aliases) is within the budget; None when the time budget has no room for it."""
        search = self.search
        keep_chars = unseen != "nearest"
        vocab_name = f"{name}-v{round(coverage * 1000)}"
        spec = {"ladder": "vocabulary", "model": name, "coverage": coverage,
                "unseen": unseen, "keep_chars": keep_chars}
        step = search.state.finished(vocab_name, spec)
        if step is None:
            if not search.clock.fits(search.estimate(trains=False)):
                search.skip(vocab_name, "the time budget")
                return None
            step = search.run(vocab_name, spec, partial(
                self._cut, vocab_name, model_dir, coverage, unseen, keep_chars))
        if search.within(step):
            return True
        if not (recover and unseen == "nearest"):
            return False
        return search.within(self._recover(name, step))

    def _counts(self, model_dir: str) -> dict[int, int]:
        data = json.loads((Path(model_dir) / "tokenizer.json").read_text())
        return token_counts(data, self.search.splits.train.texts, special_tokens(data)[1])

    def _cut(self, name: str, model_dir: str, coverage: float, unseen: str,
             keep_chars: bool) -> dict[str, str]:
        out = self.search.config.work_dir / "students" / f"{name}-vocab"
        pruned = prune_vocabulary(Path(model_dir), out, self.search.splits.train.texts,
                                  unseen=unseen, coverage=coverage, keep_chars=keep_chars)
        log.info("auto: %s: vocabulary %d -> %d", name, pruned["vocab_before"],
                 pruned["vocab_after"])
        return {name: pruned["model_dir"]}

    def _recover(self, model: str, cut: Step) -> Step | None:
        """The cut distilled from the teacher for `recovery_epochs`, scored as a step of
        its own; None when the time budget has no room for it (or ran out in it)."""
        search = self.search
        (vocab_name, vocab_dir), = cut.models.items()
        name = f"{vocab_name}-rec"
        epochs = recovery_epochs(len(search.splits.train.texts))
        student = {"name": name, "distill": dict(STUDENT_LOSS),
                   "train": {**RECOVER_TRAIN, "epochs": epochs}}
        source = search.step_of(model)
        spec = {"ladder": "recover", "model": vocab_name, "students": [student],
                "depth": compute_layers(source.spec) if source else 0}
        step = search.state.finished(name, spec)
        if step is not None:
            return step
        per_epoch = search.epoch_seconds_of(source) if source else None
        if search.clock.expired() or not search.clock.fits(
                None if per_epoch is None else per_epoch * epochs):
            search.skip(name, "the time budget")
            return None
        try:
            return search.run(name, spec, partial(self._distill, name, vocab_dir, student),
                              trains=True)
        except TrainingStopped:
            search.skip(name, "the time budget ran out mid-recovery")
            return None
        except ConfigError as refused:  # e.g. a cut that left a kind of piece no alias
            search.skip(name, str(refused))
            return None

    def _distill(self, name: str, vocab_dir: str, student: dict[str, Any]) -> dict[str, str]:
        search = self.search
        spec = student_spec(student, 0)
        work = search.config.work_dir
        result = distill(search.state.teacher["model"], search.config.data, spec.train,
                         spec.distill, work / "students" / name, cache_dir=work / "cache",
                         student_ref=vocab_dir,
                         context=TrainingContext(search.splits, search.clock.expired))
        return {name: result["model_dir"]}


__all__ = ["COVERAGE_LADDER", "RECOVER_TRAIN", "VocabularyLadder", "recovery_epochs",
           "unseen_policy"]
