"""One limit, for the whole process, on the model batches that run at once.

`inference.plan_threads` sizes a version's workers for the cores (on 2 cores: 2 batches
of 1 thread each). Each loaded version has that many workers, so two versions taking
traffic at once (an A/B split, a shadow) would run twice the batches the plan allows,
each slower for sharing a core. Every version's batcher and the shadow copies therefore
share one `BatchGate` with the plan's worker count as its slots: a batch runs only while
it holds a slot.

Live batches wait for a slot in arrival order, whichever version they are for. A shadow
copy (`live=False`) starts only on a slot that no live batch holds or waits for, and
never makes a live batch wait: live batches count only each other against the limit. So
a copy uses idle capacity only, and the process runs at most one batch beyond the plan
(the shadow runs one copy at a time), only while a copy started on an idle slot
finishes; a stuck shadow never holds up live traffic, even with a single slot.

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
    """At most `limit` live holders at once, in arrival order; others (`live=False`) only
    while live holders and others together stay under `limit` and no live one waits."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a gate needs at least one slot, got {limit}")
        self.limit = limit
        self._held = {True: 0, False: 0}  # slots held, live and not
        self._waiters: dict[bool, deque[asyncio.Future[None]]] = {True: deque(),
                                                                  False: deque()}

    @property
    def running(self) -> int:
        """Slots held now, live and not."""
        return self._held[True] + self._held[False]

    @property
    def waiting(self) -> int:
        """Holders waiting for a slot, live and not."""
        return len(self._waiters[True]) + len(self._waiters[False])

    def _free(self, live: bool) -> bool:
        if live:
            return self._held[True] < self.limit
        return self.running < self.limit and not self._waiters[True]

    async def acquire(self, *, live: bool = True) -> None:
        """Take a slot, waiting for one if none is free; `live=False` waits behind every
        live batch, present and future."""
        queue = self._waiters[live]
        if not queue and self._free(live):
            self._held[live] += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                with suppress(ValueError):
                    queue.remove(waiter)  # at once: a stale waiter would block the gate
                self._wake()
            else:
                self.release(live=live)  # granted just as it was cancelled: pass it on
            raise

    def release(self, *, live: bool = True) -> None:
        """Give back a slot taken with the same `live`, and grant what is free now."""
        if self._held[live] <= 0:
            raise RuntimeError("release() without a held slot")
        self._held[live] -= 1
        self._wake()

    def _wake(self) -> None:
        """Grant slots to waiters, live ones first, each kind in arrival order."""
        for live in (True, False):
            queue = self._waiters[live]
            while queue and self._free(live):
                waiter = queue.popleft()
                if not waiter.done():
                    self._held[live] += 1
                    waiter.set_result(None)

    @asynccontextmanager
    async def slot(self, *, live: bool = True) -> AsyncIterator[None]:
        """Hold a slot for the block's duration."""
        await self.acquire(live=live)
        try:
            yield
        finally:
            self.release(live=live)
