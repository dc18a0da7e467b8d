"""Shadow copies: a sampled request to a model is also answered by its shadow version,
off the response's path, and the two answers are compared.

The client's answer and latency are the routed version's alone: a copy starts once the
routed answer is in hand, and runs on this module's own thread, not in any version's
batcher queue (a shadow that also has route weight serves its live requests through its
batcher as before). A copy is a model batch like any other, so it runs only while it
holds a slot of the process's `BatchGate` (app/gate.py): it starts only on a slot that
no live batch holds or waits for, and live batches never wait for it. At most
`max_pending` copies run or wait at once; beyond that a copy is dropped and counted
(`textclf_shadow_copies_total{outcome="saturated"}`), so a slow or stuck shadow costs
copies, never live traffic (a copy given up at its time-out gives its slot back then,
even if its thread is still stuck). A failing shadow is counted and logged.

The shadow's answers are kept for a while (`ShadowAnswers`), by prediction nonce, so
that feedback on a prediction can judge the shadow's answer too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from registry import ModelRef

from ..classifier import Prediction
from ..models import ModelManager
from .ledger import Ledger

log = logging.getLogger(__name__)

Answer = tuple[str, ...]


def answer(p: Prediction) -> Answer:
    """What a prediction answers: its label, or a multi-label version's label set."""
    return tuple(sorted(p.labels)) if p.labels is not None else (p.label,)


def compare(routed: Sequence[Prediction],
            shadow: Sequence[Prediction]) -> tuple[list[bool], list[float]]:
    """Per text: whether the two answers agree, and the mean absolute difference of
    their label probabilities (a label one of them lacks counts as probability 0)."""
    agreements, differences = [], []
    for a, b in zip(routed, shadow, strict=True):
        agreements.append(answer(a) == answer(b))
        labels = a.scores.keys() | b.scores.keys()
        total = sum(abs(a.scores.get(x, 0.0) - b.scores.get(x, 0.0)) for x in labels)
        differences.append(total / len(labels) if labels else 0.0)
    return agreements, differences


class ShadowAnswers:
    """The shadow's answer to recent predictions, by prediction key (`<nonce>-<i>`);
    the oldest are forgotten beyond `capacity`."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[str, tuple[str, Answer]] = OrderedDict()

    def put(self, key: str, shadow_version: str, shadow_answer: Answer) -> None:
        self._answers[key] = (shadow_version, shadow_answer)
        while len(self._answers) > self.capacity:
            self._answers.popitem(last=False)

    def get(self, key: str) -> tuple[str, Answer] | None:
        return self._answers.get(key)


def _timed(predict: Callable[[list[str]], Sequence[Prediction]],
           texts: list[str]) -> tuple[Sequence[Prediction], float]:
    start = time.perf_counter()
    out = predict(texts)
    return out, time.perf_counter() - start


class _Once:
    """Gives a resource back once, whichever of its holders lets go first."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def __call__(self, *_: Any) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release()


class ShadowRunner:
    def __init__(self, manager: ModelManager, ledger: Ledger, answers: ShadowAnswers,
                 max_pending: int, timeout_s: float) -> None:
        self._manager = manager
        self._gate = manager.gate
        self._ledger = ledger
        self._answers = answers
        self.max_pending = max_pending
        self._timeout_s = timeout_s
        # Copies run one at a time, on a thread of their own (see the module's docstring);
        # a copy takes a slot of the gate only once that thread is free for it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
        self._thread_free = asyncio.Lock()
        self._pending = 0  # copies started and not finished (or their thread not done)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, ref: ModelRef, shadow_version: str, texts: list[str],
               predictions: Sequence[Prediction], nonce: str) -> bool:
        """Start a copy of a request that `ref` answered; False when it is dropped (the
        shadow is not loaded, or too many copies are pending). Never awaits."""
        shadow = self._manager.get(ModelRef(name=ref.name, version=shadow_version))
        if shadow is None:
            self._ledger.shadow_outcome(ref, shadow_version, "not_loaded")
            return False
        if self._pending >= self.max_pending:
            self._ledger.shadow_outcome(ref, shadow_version, "saturated")
            return False
        self._pending += 1
        task = asyncio.get_running_loop().create_task(self._finish(
            shadow.classifier.predict, texts, ref, shadow_version, predictions, nonce))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _release(self) -> None:
        self._pending -= 1

    async def _copy(self, predict: Callable[[list[str]], Sequence[Prediction]],
                    texts: list[str]) -> tuple[Sequence[Prediction], float]:
        """Run a copy on the shadow's thread once it is free and an idle slot is. Its
        pending place goes back when its thread is done, or when it is given up before:
        a copy stuck in the shadow keeps its place, so the next ones are dropped. Its slot
        goes back at the first of the two: a stuck one keeps no slot."""
        place = _Once(self._release)
        try:
            await self._thread_free.acquire()
        except BaseException:
            place()
            raise
        thread = _Once(self._thread_free.release)
        try:
            await self._gate.acquire(live=False)
        except BaseException:
            thread()
            place()
            raise
        slot = _Once(lambda: self._gate.release(live=False))
        future = asyncio.get_running_loop().run_in_executor(self._executor, _timed, predict,
                                                            texts)
        for release in (slot, thread, place):
            future.add_done_callback(release)
        try:
            return await asyncio.shield(future)  # given up: the thread runs on
        finally:
            slot()

    async def _finish(self, predict: Callable[[list[str]], Sequence[Prediction]],
                      texts: list[str], ref: ModelRef, shadow_version: str,
                      predictions: Sequence[Prediction], nonce: str) -> None:
        try:
            shadow_predictions, seconds = await asyncio.wait_for(
                self._copy(predict, texts), self._timeout_s)
            agreements, differences = compare(predictions, shadow_predictions)
        except asyncio.TimeoutError:
            log.warning("shadow %s/%s gave no answer within %g s", ref.name, shadow_version,
                        self._timeout_s)
            self._ledger.shadow_outcome(ref, shadow_version, "timed_out")
            return
        except Exception as exc:  # the shadow's failure is counted, never the client's
            log.warning("shadow %s/%s failed on a copy of %s: %s: %s", ref.name,
                        shadow_version, ref, type(exc).__name__, exc)
            self._ledger.shadow_outcome(ref, shadow_version, "failed")
            return
        for i, p in enumerate(shadow_predictions):
            self._answers.put(f"{nonce}-{i}", shadow_version, answer(p))
        self._ledger.compared(ref, shadow_version, agreements, differences, seconds)

    async def stop(self) -> None:
        """Give up on the copies in flight (nobody waits for them) and release the thread
        without waiting for a stuck shadow."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
