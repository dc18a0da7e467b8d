"""One limit on the model batches running at once in the whole process (`app.gate`):
shared by every loaded version's batcher and by shadow copies, which wait behind every
live batch and give their slot back when given up. Driven with blocking fake predictors
and counted, never timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from app.classifier import Prediction
from app.experiments.shadow import ShadowAnswers, ShadowRunner
from app.gate import BatchGate
from app.metrics import Metrics
from app.models import ModelManager
from app.routing import Router
from app.settings import Settings
from registry import Manifest, ModelRef

WAIT_S = 60  # generous: a loaded 2-core machine


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop (and the threads) until `condition` holds."""
    for _ in range(WAIT_S * 100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


class Counting:
    """A predictor that counts the batches inside it at once (and the most ever), and
    holds each until the test opens it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.calls = 0
        self.open = threading.Event()

    def __call__(self, texts: list[str]) -> list[Prediction]:
        with self.lock:
            self.inside += 1
            self.calls += 1
            self.peak = max(self.peak, self.inside)
        try:
            if not self.open.wait(WAIT_S):
                raise RuntimeError("the test never opened the predictor")
            return [Prediction(label="pos", score=1.0, scores={"pos": 1.0})] * len(texts)
        finally:
            with self.lock:
                self.inside -= 1


class _FakeVersion:
    """What ModelManager needs of a loaded predictor, with a shared counting predict."""

    provider = "CPUExecutionProvider"
    model_bytes = 1

    def __init__(self, folder: Path, predict: Counting) -> None:
        self.manifest = Manifest.read(folder)
        self.predict = predict

    def close(self) -> None:
        pass


# ---- the gate alone ----

def test_the_gate_admits_its_limit_then_live_waiters_first_in_order() -> None:
    async def main() -> list[str]:
        gate, order = BatchGate(2), []
        await gate.acquire()
        await gate.acquire()
        done = asyncio.Event()

        async def holder(name: str, live: bool) -> None:
            async with gate.slot(live=live):
                order.append(name)
                await done.wait()

        tasks = [asyncio.create_task(holder(n, live)) for n, live in
                 (("copy", False), ("a", True), ("b", True))]
        await until(lambda: gate.waiting == 3, "three waiters")
        assert gate.running == 2 and order == []
        gate.release()
        await until(lambda: order == ["a"], "a in")
        gate.release()
        await until(lambda: order == ["a", "b"], "b in")
        assert gate.waiting == 1 and gate.running == 2  # the copy: no idle slot yet
        done.set()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        assert gate.running == 0 and gate.waiting == 0
        with pytest.raises(RuntimeError):
            gate.release()
        return order

    assert asyncio.run(main()) == ["a", "b", "copy"]


def test_live_batches_never_wait_for_a_copy() -> None:
    """One slot, held by a copy: a live batch still runs (the one batch beyond the plan
    the gate allows); a second copy waits until both are done."""
    async def main() -> None:
        gate = BatchGate(1)
        await gate.acquire(live=False)
        await asyncio.wait_for(gate.acquire(), WAIT_S)
        assert gate.running == 2
        second = asyncio.create_task(gate.acquire(live=False))
        await until(lambda: gate.waiting == 1, "the second copy waits")
        gate.release(live=False)
        await asyncio.sleep(0)
        assert gate.waiting == 1  # the live batch still holds the only slot
        gate.release()
        await asyncio.wait_for(second, WAIT_S)
        assert gate.running == 1

    asyncio.run(main())


def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    async def main() -> None:
        gate = BatchGate(1)
        await gate.acquire()
        gone = asyncio.create_task(gate.acquire())
        await until(lambda: gate.waiting == 1, "a waiter")
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert gate.waiting == 0
        # Handed the slot and cancelled before it ran: the slot goes back.
        late = asyncio.create_task(gate.acquire())
        await until(lambda: gate.waiting == 1, "a waiter")
        gate.release()
        late.cancel()
        with pytest.raises(asyncio.CancelledError):
            await late
        assert gate.running == 0
        await asyncio.wait_for(gate.acquire(), WAIT_S)  # free again: no stale waiter
        with pytest.raises(ValueError):
            BatchGate(0)

    asyncio.run(main())


# ---- two loaded versions share it ----

def test_two_versions_never_run_more_batches_than_the_plan(
    make_registry: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Plan: 2 workers. Two versions, each with 2 workers and 2 requests: 4 batches
    formed, 2 run, 2 wait for a slot; the most ever inside the model at once is 2."""
    root = make_registry({"tiny": {"1": 50, "2": 50}})
    predict = Counting()
    monkeypatch.setattr("app.models.load_timed", lambda folder, *a: (
        _FakeVersion(folder, predict), 0.0))
    settings = Settings(models_dir=root, providers="cpu", inference_workers=2,
                        intra_op_threads=1, max_wait_ms=0)

    async def main() -> list[Any]:
        manager = ModelManager(settings, Metrics(), Router())
        versions = [(await manager.load(ModelRef(name="tiny", version=v)))[0]
                    for v in ("1", "2")]
        futures = [lv.batcher.submit([f"{lv.ref.version}-{i}"])
                   for lv in versions for i in range(2)]
        # Every batch formed is inside the model or waiting for a slot.
        await until(lambda: predict.inside + manager.gate.waiting == 4, "four batches")
        assert predict.inside == 2 and manager.gate.running == 2  # not four
        predict.open.set()
        out = await asyncio.wait_for(asyncio.gather(*futures), WAIT_S)
        await manager.stop()
        return out

    out = asyncio.run(main())
    assert [len(answer) for answer in out] == [1, 1, 1, 1] and predict.calls == 4
    assert predict.peak == 2


def test_requests_that_come_while_a_batch_waits_for_its_slot_join_it() -> None:
    """The slot is held elsewhere (another version): the batch formed meanwhile takes in
    what was queued behind it, answers unchanged."""
    from app.batcher import MicroBatcher

    batches: list[list[str]] = []

    def echo(texts: list[str]) -> list[str]:
        batches.append(list(texts))
        return [t.upper() for t in texts]

    async def main() -> list[list[str]]:
        gate = BatchGate(1)
        b = MicroBatcher(echo, max_batch_size=8, max_wait_s=0, max_queue=16, gate=gate)
        b.start()
        await gate.acquire()  # another version's batch is running
        first = b.submit(["a"])
        await until(lambda: b.depth == 0 and gate.waiting == 1, "a batch waits")
        rest = [b.submit([t]) for t in ("b", "c")]
        gate.release()
        out = await asyncio.wait_for(asyncio.gather(first, *rest), WAIT_S)
        await b.stop()
        return out

    assert asyncio.run(main()) == [["A"], ["B"], ["C"]]
    assert batches == [["a", "b", "c"]]


# ---- shadow copies ----

class _Ledger:
    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def shadow_outcome(self, ref: ModelRef, shadow: str, outcome: str) -> None:
        self.outcomes.append(outcome)

    def compared(self, ref: ModelRef, shadow: str, *args: Any) -> None:
        self.outcomes.append("compared")


class _Manager:
    """What ShadowRunner needs of a ModelManager: the gate and the shadow version."""

    def __init__(self, gate: BatchGate, predict: Callable[[list[str]], Sequence[Prediction]],
                 ) -> None:
        self.gate = gate
        self.version = type("Loaded", (), {"classifier": type("C", (), {"predict": predict})})

    def get(self, ref: ModelRef) -> Any:
        return self.version


ROUTED = ModelRef(name="tiny", version="1")
ANSWER = [Prediction(label="pos", score=1.0, scores={"pos": 1.0})]


def test_a_shadow_copy_runs_only_on_a_slot_no_live_batch_wants() -> None:
    predict = Counting()
    predict.open.set()
    ledger = _Ledger()

    async def main() -> list[str]:
        gate, order = BatchGate(1), []
        runner = ShadowRunner(_Manager(gate, predict), ledger, ShadowAnswers(),  # type: ignore[arg-type]
                              max_pending=2, timeout_s=WAIT_S)
        await gate.acquire()  # a live batch runs
        assert runner.submit(ROUTED, "2", ["x"], ANSWER, "n1")
        await until(lambda: gate.waiting == 1, "the copy waits for a slot")

        async def live() -> None:
            async with gate.slot():
                order.append(f"live, the copy run {predict.calls} times")

        later = asyncio.create_task(live())  # comes after the copy, goes first
        await until(lambda: gate.waiting == 2, "a live batch waits too")
        gate.release()
        await asyncio.wait_for(later, WAIT_S)
        await until(lambda: ledger.outcomes == ["compared"], "the copy compared")
        assert gate.running == 0 and runner.pending == 0
        await runner.stop()
        return order

    assert asyncio.run(main()) == ["live, the copy run 0 times"]


def test_a_stuck_copy_gives_its_slot_back_when_given_up() -> None:
    """Once given up its slot is free (its thread still stuck), its pending place is
    not: the next copy is dropped. (Live batches never waited for it: see above.)"""
    predict = Counting()  # never opened until the end: stuck
    ledger = _Ledger()

    async def main() -> None:
        gate = BatchGate(1)
        runner = ShadowRunner(_Manager(gate, predict), ledger, ShadowAnswers(),  # type: ignore[arg-type]
                              max_pending=1, timeout_s=0.5)
        assert runner.submit(ROUTED, "2", ["x"], ANSWER, "n1")
        await until(lambda: ledger.outcomes == ["timed_out"], "the copy given up")
        assert predict.inside == 1 and gate.running == 0  # still stuck, slot given back
        assert runner.pending == 1
        assert not runner.submit(ROUTED, "2", ["y"], ANSWER, "n2")
        assert ledger.outcomes == ["timed_out", "saturated"]
        predict.open.set()
        await until(lambda: runner.pending == 0, "the stuck thread done")
        assert gate.running == 0
        await runner.stop()

    asyncio.run(main())
