"""One limit, for the whole process, on the model batches that run at once.

`inference.plan_threads` sizes a version's workers for the cores (on 2 cores: 2 batches
of 1 thread each). Each loaded version has that many workers, so two versions taking
traffic at once (an A/B split, a shadow) would run twice the batches the plan allows,
each slower for sharing a core. Every version's batcher and the shadow copies therefore
share one `BatchGate` with the plan's worker count as its slots: a batch runs only while
it holds a slot.

Live batches wait for a slot in arrival order, whichever version they are for. A shadow
copy waits behind every live batch (`live=False`): it gets a slot only when no live
batch wants it, so live traffic waits for a copy at most while one already runs.

Every call is made on the event loop's thread (the batchers' workers and the shadow
runner are coroutines on it), so the gate needs no lock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

__all__ = ["BatchGate"]


class BatchGate:
    """At most `limit` holders at once; live waiters before the others, each in order."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a gate needs at least one slot, got {limit}")
        self.limit = limit
        self._running = 0
        self._live: deque[asyncio.Future[None]] = deque()
        self._spare: deque[asyncio.Future[None]] = deque()  # shadow copies

    @property
    def running(self) -> int:
        """Slots held now."""
        return self._running

    @property
    def waiting(self) -> int:
        """Holders waiting for a slot, live and not."""
        return len(self._live) + len(self._spare)

    async def acquire(self, *, live: bool = True) -> None:
        """Take a slot, waiting for one if all are held; `live=False` waits behind
        every live waiter, present and future."""
        if self._running < self.limit and not self._live and not self._spare:
            self._running += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._live if live else self._spare
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                with suppress(ValueError):
                    queue.remove(waiter)  # at once: a stale waiter would block the gate
            else:
                self.release()  # handed a slot just as it was cancelled: pass it on
            raise

    def release(self) -> None:
        """Give a slot back: straight to the first waiter, if any."""
        if self._running <= 0:
            raise RuntimeError("release() without a held slot")
        for queue in (self._live, self._spare):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot passes on; `running` is unchanged
                    return
        self._running -= 1

    @asynccontextmanager
    async def slot(self, *, live: bool = True) -> AsyncIterator[None]:
        """Hold a slot for the block's duration."""
        await self.acquire(live=live)
        try:
            yield
        finally:
            self.release()
