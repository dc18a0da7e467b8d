"""An asyncio micro-batcher per loaded version: queue, batch, predict off the loop, reply.

Policy: a worker takes one request, then everything already queued, up to
`max_batch_size` texts. Only when other requests were already waiting (there is load)
does it wait up to `max_wait_s` for more: a lone request never waits. Under load,
requests pile up while a batch runs, so batches form by themselves.

A version has `workers` such workers on one queue, each running its batches in a thread
of its own, so that several batches run at once (one per core, on CPU, by default:
`inference.plan_threads`). A batch runs only while it holds a slot of the `BatchGate` all
versions share (`app.gate`), so the process never runs more batches than the plan, however
many versions take traffic; requests that arrive while a batch waits for its slot join it.
A request is answered by whichever worker takes it; answers do not depend on which
requests share its batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import InferenceFailed, Overloaded, Unavailable
from .gate import BatchGate

log = logging.getLogger(__name__)


class BatchObserver(Protocol):
    def queue_wait(self, seconds: float) -> None: ...
    def batch(self, n_texts: int, inference_s: float) -> None: ...
    def dropped(self) -> None: ...


class _NullObserver:
    def queue_wait(self, seconds: float) -> None:
        pass

    def batch(self, n_texts: int, inference_s: float) -> None:
        pass

    def dropped(self) -> None:
        pass


@dataclass
class _Item:
    texts: list[str]
    future: asyncio.Future[list[Any]]
    enqueued: float = field(default_factory=time.perf_counter)


_STOP = None


class MicroBatcher:
    def __init__(
        self,
        predict: Callable[[list[str]], Sequence[Any]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int,
        name: str = "model",
        observer: BatchObserver | None = None,
        cross_request: bool = True,
        workers: int = 1,
        gate: BatchGate | None = None,
    ) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.cross_request = cross_request  # False: one request per batch
        self.max_wait_s = max_wait_s
        self.name = name
        self._observer = observer or _NullObserver()
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=max_queue)
        self.workers = workers
        # A thread per worker: a version runs at most `workers` batches at once, and the
        # event loop never blocks.
        self._executor = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix=f"infer-{name}")
        # Shared with the other versions (ModelManager); alone, the workers are the limit.
        self._gate = gate or BatchGate(workers)
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name=f"batcher-{self.name}-{i}")
                       for i in range(self.workers)]

    def submit(self, texts: list[str]) -> asyncio.Future[list[Any]]:
        """Queue texts and return the future of their predictions. Never awaits, so a
        caller that found this batcher loaded is queued before any unload can start."""
        if self._closed:
            raise Unavailable(f"{self.name} is being unloaded")
        if len(texts) > self.max_batch_size:
            raise ValueError(f"{len(texts)} texts exceed the batch size {self.max_batch_size}")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(texts, future))
        except asyncio.QueueFull:
            raise Overloaded(
                f"{self.name}: queue full ({self._queue.maxsize} requests waiting); retry shortly"
            ) from None
        return future

    async def stop(self) -> None:
        """Refuse new work, finish everything already queued, then release the thread."""
        if self._closed:
            return
        self._closed = True
        for _ in self._tasks:
            await self._queue.put(_STOP)  # one per worker, behind every queued request
        await asyncio.gather(*self._tasks)
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def _run(self) -> None:
        carry: _Item | None = None
        stopping = False
        while True:
            if carry is not None:
                first, carry = carry, None
            elif stopping:
                return
            else:
                first = await self._queue.get()
                if first is _STOP:
                    return
            batch = [first]
            carry, stopping = await self._fill(batch, stopping, wait=True)
            async with self._gate.slot():
                if carry is None and not stopping:
                    # What came while this batch waited for its slot joins it.
                    carry, stopping = await self._fill(batch, stopping, wait=False)
                await self._run_batch(batch)

    async def _fill(self, batch: list[_Item], stopping: bool,
                    wait: bool) -> tuple[_Item | None, bool]:
        """Add queued requests to `batch`, up to the batch size and this worker's fair
        share; with `wait`, wait once for stragglers. Returns the request that did not fit
        (to run next) and whether a stop was taken from the queue."""
        n = sum(len(item.texts) for item in batch)
        share = self._fair_share(len(batch))
        deadline = time.perf_counter() + self.max_wait_s
        waited = not wait
        while (self.cross_request and n < self.max_batch_size and len(batch) < share
               and not stopping):
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                # Wait once for stragglers, and only if there was company already.
                if waited or len(batch) == 1 or self.max_wait_s <= 0:
                    break
                waited = True
                await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
                continue
            if item is _STOP:
                stopping = True
            elif n + len(item.texts) > self.max_batch_size:
                return item, stopping
            else:
                batch.append(item)
                n += len(item.texts)
        return None, stopping

    def _fair_share(self, taken: int) -> float:
        """Requests one worker may take: with several workers, its share of what is queued
        (rounded up), so that a backlog is split among them instead of one worker taking
        it all while the others wait for the next arrivals (measured: the second of two
        workers idle 80 % of the time at 32 clients). One worker: no cap, so that it still
        waits once for stragglers when the queue runs dry."""
        if self.workers == 1:
            return float("inf")
        waiting = self._queue.qsize() + taken  # and those this worker holds
        return -(-waiting // self.workers)

    async def _run_batch(self, batch: list[_Item]) -> None:
        now = time.perf_counter()
        live = []
        for item in batch:
            if item.future.done():  # the caller has gone (cancelled or timed out)
                self._observer.dropped()
                continue
            self._observer.queue_wait(now - item.enqueued)
            live.append(item)
        if not live:
            return
        try:
            await self._infer(live)
        except InferenceFailed as error:
            if len(live) == 1:
                self._fail(live, error)
                return
            # One request's input must not fail its neighbours: retry each alone, and
            # fail only those that fail by themselves.
            for item in live:
                try:
                    await self._infer([item])
                except InferenceFailed as alone:
                    self._fail([item], alone)

    async def _infer(self, items: list[_Item]) -> None:
        """Run one batch and resolve its futures; raise InferenceFailed on any error."""
        texts = [t for item in items for t in item.texts]
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self._executor, self._predict, texts)
        except Exception as exc:
            log.error("%s: inference failed for a batch of %d: %s", self.name, len(texts), exc)
            raise InferenceFailed(f"{self.name}: inference failed: {exc}") from exc
        if len(outputs) != len(texts):
            raise InferenceFailed(
                f"{self.name}: model returned {len(outputs)} answers for {len(texts)} texts"
            )
        self._observer.batch(len(texts), time.perf_counter() - start)
        offset = 0
        for item in items:
            chunk = list(outputs[offset : offset + len(item.texts)])
            offset += len(item.texts)
            if not item.future.done():
                item.future.set_result(chunk)

    @staticmethod
    def _fail(items: list[_Item], error: InferenceFailed) -> None:
        for item in items:  # never leave a caller hanging
            if not item.future.done():
                item.future.set_exception(error)
