"""Extractive question answering, torch-free: what training, evaluation and the service
share, so that the windows a model is trained and measured on are the ones it serves.

A question and its context are encoded as a pair (`[CLS] question [SEP] context [SEP]`
for BERT). A context longer than the window (`max_length` tokens) is read in windows that
share `doc_stride` tokens with their neighbours (the `tokenizers` library's overflowing
encodings, truncating the context only). A question is cut to `max_question_tokens` first,
so that every window keeps room for its context.

The answer is searched in every window: the `n_best` highest start and end logits among
the window's context tokens, every pair with start <= end and at most
`max_answer_length` tokens, scored by start + end logit; the best pair over all windows
wins. A span can only be chosen inside one window, so an answer that crosses a window's
edge is found in the window that holds it whole. Its character offsets come from the
tokenizer's offsets into the context, so `context[start:end]` is the answer's text.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from inference.encoder import TextEncoder, copy_tokenizer

CONTEXT = 1  # the sequence id of the context's tokens in a pair encoding


class QuestionContext(str):
    """A question and its context. As a `str` it is the two joined by a newline: what
    text-only consumers read (a step's digest, vocabulary counts), while the encoders of
    this module read the pair."""

    question: str
    context: str

    def __new__(cls, question: str, context: str) -> QuestionContext:
        made = super().__new__(cls, f"{question}\n{context}")
        made.question, made.context = question, context
        return made

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # pickles as the pair
        return QuestionContext, (self.question, self.context)


@dataclass(frozen=True)
class WindowSettings:
    """How a pair is cut into windows and how its answer is searched."""

    max_length: int = 384
    doc_stride: int = 128  # tokens two neighbouring windows share
    max_question_tokens: int = 64
    max_answer_length: int = 30  # tokens
    n_best: int = 20

    def __post_init__(self) -> None:
        if not 0 <= self.doc_stride < self.max_length // 2:
            raise ValueError(f"doc_stride must be in [0, max_length / 2), got "
                             f"{self.doc_stride} for max_length {self.max_length}")
        if not 1 <= self.max_question_tokens <= self.max_length // 2:
            raise ValueError(f"max_question_tokens must be in [1, max_length / 2], got "
                             f"{self.max_question_tokens}")
        # A window's context holds max_length - question - specials (4 at most) tokens;
        # `tokenizers` cannot slide a window by a stride that is not below that.
        if self.doc_stride >= self.max_length - self.max_question_tokens - 4:
            raise ValueError(f"doc_stride {self.doc_stride} leaves no new context in a "
                             f"window of {self.max_length} tokens after a question of "
                             f"{self.max_question_tokens}: lower doc_stride or "
                             "max_question_length")
        if self.max_answer_length < 1 or self.n_best < 1:
            raise ValueError("max_answer_length and n_best must be >= 1")


@dataclass(frozen=True)
class Answer:
    """A span of the context: `context[start:end] == text`; `score` the product of the
    start and end probabilities (softmax over the window's context tokens)."""

    text: str
    start: int
    end: int
    score: float


NO_ANSWER = Answer("", 0, 0, 0.0)


class PairEncoder(TextEncoder):
    """`TextEncoder` for question-context pairs: `windows` gives each pair's windows,
    `feed` (inherited) pads them, and calling it with `QuestionContext` rows gives the
    fed arrays of all their windows, in order."""

    def __init__(self, tokenizer: Path | str | Tokenizer, settings: WindowSettings,
                 input_names: Collection[str] | None = None) -> None:
        super().__init__(tokenizer, settings.max_length, input_names)
        self.settings = settings
        # A second tokenizer, to count a question's tokens.
        self.questions = copy_tokenizer(self.tokenizer)
        self.questions.no_truncation()
        self.questions.no_padding()  # a file may pad (to 128 here): count real tokens
        self.tokenizer.enable_truncation(settings.max_length, stride=settings.doc_stride,
                                         strategy="only_second")

    def _short_question(self, question: str) -> str:
        """The question cut after its `max_question_tokens`-th token."""
        encoding = self.questions.encode(question, add_special_tokens=False)
        limit = self.settings.max_question_tokens
        if len(encoding.ids) <= limit:
            return question
        return question[: encoding.offsets[limit - 1][1]]

    def windows(self, pairs: Sequence[QuestionContext]) -> list[list[Encoding]]:
        """Each pair's windows, in order; each window holds the whole (cut) question."""
        encoded = self.tokenizer.encode_batch(
            [(self._short_question(p.question), p.context) for p in pairs])
        return [[e, *e.overflowing] for e in encoded]

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        pairs = [t if isinstance(t, QuestionContext) else QuestionContext("", t)
                 for t in texts]
        return self.feed([w for windows in self.windows(pairs) for w in windows])


def context_span(window: Encoding) -> tuple[int, int]:
    """(first, last) token positions of the context in a window."""
    ids = window.sequence_ids
    positions = [i for i, s in enumerate(ids) if s == CONTEXT]
    return (positions[0], positions[-1]) if positions else (0, -1)


def answer_tokens(window: Encoding, start_char: int, end_char: int) -> tuple[int, int]:
    """The (start, end) token positions (inclusive) of the context characters
    [start_char, end_char) in a window, or (0, 0) (the first token: no answer here) when
    the window does not hold them whole."""
    first, last = context_span(window)
    if last < first:
        return 0, 0
    offsets = window.offsets
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return 0, 0
    start = first
    while start <= last and offsets[start][1] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][0] >= end_char:
        end -= 1
    return (start, end) if start <= end else (0, 0)


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def _window_best(window: Encoding, start_logits: np.ndarray, end_logits: np.ndarray,
                 settings: WindowSettings) -> tuple[float, int, int, float] | None:
    """(logit sum, start, end, probability) of a window's best span, or None."""
    first, last = context_span(window)
    if last < first:
        return None
    starts = np.asarray(start_logits[first: last + 1], dtype=np.float64)  # (context,)
    ends = np.asarray(end_logits[first: last + 1], dtype=np.float64)
    top = settings.n_best
    best: tuple[float, int, int] | None = None
    for s in np.argsort(-starts, kind="stable")[:top]:
        for e in np.argsort(-ends, kind="stable")[:top]:
            if e < s or e - s + 1 > settings.max_answer_length:
                continue
            total = float(starts[s] + ends[e])
            if best is None or total > best[0]:
                best = (total, int(s), int(e))
    if best is None:
        return None
    total, s, e = best
    probability = float(_softmax(starts)[s] * _softmax(ends)[e])
    return total, first + s, first + e, probability


def best_answer(context: str, windows: Sequence[Encoding],
                logits: Sequence[np.ndarray], settings: WindowSettings) -> Answer:
    """The best span over a pair's windows; `logits[i]` is window i's (seq, 2) start and
    end logits (rows past the window's length, padding, are never read)."""
    found: tuple[float, int, int, float] | None = None
    for window, rows in zip(windows, logits, strict=True):
        rows = np.asarray(rows)
        best = _window_best(window, rows[:, 0], rows[:, 1], settings)
        if best is None:
            continue
        if found is None or best[0] > found[0]:
            total, s, e, probability = best
            found = (total, window.offsets[s][0], window.offsets[e][1], probability)
    if found is None:
        return NO_ANSWER
    _, start, end, probability = found
    return Answer(context[start:end], start, end, probability)
