"""The micro-batcher alone, driven with fake predictors (no model, no HTTP)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.batcher import MicroBatcher
from app.errors import InferenceFailed, Overloaded, Unavailable


class Recorder:
    """Echoes each text upper-cased and records the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[str]:
        self.batches.append(list(texts))
        return [t.upper() for t in texts]


class Blocking(Recorder):
    """Blocks inside inference until released, so a test can fill the queue."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts: list[str]) -> list[str]:
        self.entered.set()
        if not self.release.wait(timeout=60):
            raise RuntimeError("test never released the predictor")
        return super().__call__(texts)


def make(predict, **kw) -> MicroBatcher:  # type: ignore[no-untyped-def]
    options = {"max_batch_size": 8, "max_wait_s": 0.002, "max_queue": 16}
    options.update(kw)
    return MicroBatcher(predict, **options)


def test_answers_come_back_to_their_callers_in_order() -> None:
    async def main() -> list[list[str]]:
        b = make(Recorder())
        b.start()
        futures = [b.submit([f"r{i}a", f"r{i}b"]) for i in range(5)]
        out = await asyncio.gather(*futures)
        await b.stop()
        return out

    out = asyncio.run(main())
    assert out == [[f"R{i}A", f"R{i}B"] for i in range(5)]


def test_queued_requests_are_batched_up_to_the_maximum() -> None:
    pred = Blocking()

    async def main() -> None:
        b = make(pred, max_batch_size=4)
        b.start()
        first = b.submit(["x"])
        await asyncio.to_thread(pred.entered.wait, 30)  # the worker is busy with "x"
        rest = [b.submit([f"t{i}"]) for i in range(6)]  # queued meanwhile
        pred.release.set()
        await asyncio.gather(first, *rest)
        await b.stop()

    asyncio.run(main())
    assert [len(batch) for batch in pred.batches] == [1, 4, 2]
    assert [t for batch in pred.batches for t in batch] == ["x"] + [f"t{i}" for i in range(6)]


def test_without_cross_request_batching_each_request_runs_alone() -> None:
    pred = Blocking()

    async def main() -> None:
        b = make(pred, max_batch_size=4, cross_request=False)
        b.start()
        first = b.submit(["x"])
        await asyncio.to_thread(pred.entered.wait, 30)
        rest = [b.submit(["a", "b"]), b.submit(["c"])]
        pred.release.set()
        await asyncio.gather(first, *rest)
        await b.stop()

    asyncio.run(main())
    assert pred.batches == [["x"], ["a", "b"], ["c"]]


def test_a_request_never_splits_and_never_exceeds_the_batch() -> None:
    pred = Blocking()

    async def main() -> None:
        b = make(pred, max_batch_size=4)
        b.start()
        first = b.submit(["x"])
        await asyncio.to_thread(pred.entered.wait, 30)
        rest = [b.submit(["a", "b", "c"]), b.submit(["d", "e"]), b.submit(["f"])]
        pred.release.set()
        await asyncio.gather(first, *rest)
        await b.stop()

    asyncio.run(main())
    assert pred.batches == [["x"], ["a", "b", "c"], ["d", "e", "f"]]


def test_full_queue_raises_overloaded_instead_of_growing() -> None:
    pred = Blocking()

    async def main() -> None:
        b = make(pred, max_queue=2)
        b.start()
        busy = b.submit(["busy"])
        await asyncio.to_thread(pred.entered.wait, 30)
        queued = [b.submit(["q1"]), b.submit(["q2"])]
        with pytest.raises(Overloaded) as info:
            b.submit(["one too many"])
        assert info.value.status == 503
        assert info.value.headers["Retry-After"] == "1"
        pred.release.set()
        assert await asyncio.gather(busy, *queued) == [["BUSY"], ["Q1"], ["Q2"]]
        b.submit(["room again"])  # the queue drained: accepted
        await b.stop()

    asyncio.run(main())


def test_cancelled_requests_are_skipped() -> None:
    pred = Blocking()
    dropped = []

    class Obs:
        def queue_wait(self, s: float) -> None: ...
        def batch(self, n: int, s: float) -> None: ...
        def dropped(self) -> None:
            dropped.append(1)

    async def main() -> None:
        b = make(pred, observer=Obs())
        b.start()
        busy = b.submit(["busy"])
        await asyncio.to_thread(pred.entered.wait, 30)
        gone = b.submit(["gone"])
        kept = b.submit(["kept"])
        gone.cancel()
        pred.release.set()
        assert await kept == ["KEPT"]
        await busy
        await b.stop()

    asyncio.run(main())
    assert ["gone"] not in pred.batches and len(dropped) == 1


def test_inference_error_fails_every_future_of_the_batch() -> None:
    def broken(texts: list[str]) -> list[str]:
        raise RuntimeError("boom")

    async def main() -> list[BaseException | list[str]]:
        b = make(broken)
        b.start()
        futures = [b.submit(["a"]), b.submit(["b"])]
        out = await asyncio.gather(*futures, return_exceptions=True)
        await b.stop()
        return out

    out = asyncio.run(main())
    assert all(isinstance(o, InferenceFailed) and "boom" in str(o) for o in out)


def test_a_failing_request_does_not_fail_its_neighbours() -> None:
    pred = Blocking()

    def picky(texts: list[str]) -> list[str]:
        if "poison" in texts:
            raise ValueError("cannot encode")
        return pred(texts)

    async def main() -> list[BaseException | list[str]]:
        b = make(picky)
        b.start()
        busy = b.submit(["busy"])
        await asyncio.to_thread(pred.entered.wait, 30)
        futures = [b.submit(["a"]), b.submit(["poison"]), b.submit(["b"])]
        pred.release.set()
        await busy
        out = await asyncio.gather(*futures, return_exceptions=True)
        await b.stop()
        return out

    ok_a, bad, ok_b = asyncio.run(main())
    assert ok_a == ["A"] and ok_b == ["B"]
    assert isinstance(bad, InferenceFailed) and "cannot encode" in str(bad)


def test_wrong_number_of_outputs_fails_the_batch() -> None:
    async def main() -> None:
        b = make(lambda texts: texts[:-1])
        b.start()
        with pytest.raises(InferenceFailed, match="answers for"):
            await b.submit(["a", "b"])
        await b.stop()

    asyncio.run(main())


def test_stop_drains_queued_requests_then_refuses_new_ones() -> None:
    pred = Blocking()

    async def main() -> None:
        b = make(pred)
        b.start()
        futures = [b.submit([f"t{i}"]) for i in range(5)]
        await asyncio.to_thread(pred.entered.wait, 30)
        stopping = asyncio.create_task(b.stop())
        await asyncio.sleep(0)
        with pytest.raises(Unavailable):
            b.submit(["late"])
        pred.release.set()
        await stopping
        assert [f.result() for f in futures] == [[f"T{i}"] for i in range(5)]

    asyncio.run(main())


def test_a_lone_request_does_not_wait_for_company() -> None:
    """With a huge max_wait, a single request still runs at once (no one else queued)."""

    async def main() -> None:
        b = make(Recorder(), max_wait_s=120)
        b.start()
        assert await asyncio.wait_for(b.submit(["solo"]), timeout=30) == ["SOLO"]
        await b.stop()

    asyncio.run(main())


class Meeting(Recorder):
    """Each batch waits inside inference until `parties` batches are in it at once: it
    completes only if the batcher really runs that many batches concurrently."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=60)

    def __call__(self, texts: list[str]) -> list[str]:
        self.barrier.wait()
        return super().__call__(texts)


def test_several_workers_run_batches_at_once_and_answer_their_own_callers() -> None:
    async def main() -> list[list[str]]:
        b = make(Meeting(2), workers=2, max_batch_size=1)
        b.start()
        out = await asyncio.gather(*(b.submit([f"t{i}"]) for i in range(6)))
        await b.stop()
        return out

    assert asyncio.run(main()) == [[f"T{i}"] for i in range(6)]


def test_stop_with_several_workers_drains_the_queue_then_ends_every_worker() -> None:
    pred = Blocking()

    async def main() -> tuple[list[list[str]], MicroBatcher]:
        b = make(pred, workers=3, max_batch_size=1)
        b.start()
        futures = [b.submit([f"q{i}"]) for i in range(7)]
        await asyncio.to_thread(pred.entered.wait, 60)
        stopping = asyncio.create_task(b.stop())
        await asyncio.sleep(0)
        with pytest.raises(Unavailable):
            b.submit(["late"])
        pred.release.set()
        out = await asyncio.gather(*futures)
        await stopping
        return out, b

    out, b = asyncio.run(main())
    assert out == [[f"Q{i}"] for i in range(7)]
    assert all(task.done() for task in b._tasks)


def test_a_backlog_is_shared_among_the_workers() -> None:
    """Eight requests queued behind two busy workers: each worker's next batch takes its
    share of the backlog, not the whole of it."""
    pred = Blocking()

    async def main() -> list[list[str]]:
        b = make(pred, workers=2, max_batch_size=32)
        b.start()
        first = [b.submit(["a"]), b.submit(["b"])]
        await asyncio.to_thread(pred.entered.wait, 60)
        while b.depth:  # both workers have taken one request each
            await asyncio.sleep(0.01)
        rest = [b.submit([f"r{i}"]) for i in range(8)]
        pred.release.set()
        out = await asyncio.gather(*first, *rest)
        await b.stop()
        return out

    out = asyncio.run(main())
    assert out[2:] == [[f"R{i}"] for i in range(8)]
    backlog = [batch for batch in pred.batches if batch[0].startswith("r")]
    assert max(len(batch) for batch in backlog) <= 5  # a share of 8 (4, or 5 with a late one)


def test_one_worker_under_load_still_waits_once_for_stragglers() -> None:
    """With company in its batch and the queue run dry, a lone worker waits up to
    max_wait for more: a request that arrives meanwhile joins the same batch."""
    pred = Blocking()

    async def main() -> None:
        b = make(pred, workers=1, max_wait_s=2.0)
        b.start()
        first = b.submit(["a"])
        await asyncio.to_thread(pred.entered.wait, 60)
        company = [b.submit(["b"]), b.submit(["c"])]
        pred.release.set()
        while b.depth:  # "b" and "c" taken: the worker is now waiting for stragglers
            await asyncio.sleep(0.01)
        late = b.submit(["d"])
        await asyncio.gather(first, *company, late)
        await b.stop()

    asyncio.run(main())
    assert ["b", "c", "d"] in pred.batches
