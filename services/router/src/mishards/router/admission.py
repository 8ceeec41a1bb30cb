"""Admission by size: the router works on at most MAX_INFLIGHT_BYTES of requests at a time.

A request is admitted while the serialized size of the requests being worked on, its own
included, stays under the limit; the others wait in one FIFO queue (a small request never
overtakes a large one that came first, so a large one cannot starve). A request larger
than the limit on its own is admitted when nothing else is in flight. One that waits past
INFLIGHT_QUEUE_TIMEOUT, or past what its client's deadline leaves, gets Milvus's
rate-limit status (code 8), which pymilvus retries with backoff.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from mishards.common import errors
from mishards.common.errors import MilvusError

ANSWER_MARGIN = 0.1  # seconds kept from a client's deadline to send the rate-limit answer


@dataclass
class _Waiter:
    size: int
    granted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Admission:
    """FIFO admission of requests by their serialized size (limit 0: everything is admitted at once)."""

    def __init__(self, limit: int, queue_timeout: float) -> None:
        self.limit = limit
        self.queue_timeout = queue_timeout
        self.in_flight = 0  # bytes of the admitted requests
        self._queue: collections.deque[_Waiter] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def _fits(self, size: int) -> bool:
        return self.in_flight == 0 or self.in_flight + size <= self.limit

    @asynccontextmanager
    async def admit(self, size: int, deadline: float | None = None) -> AsyncIterator[None]:
        """Hold `size` bytes of the budget for the block; `deadline`: the client's, monotonic."""
        await self.enter(size, deadline)
        try:
            yield
        finally:
            self.leave(size)

    async def enter(self, size: int, deadline: float | None = None) -> None:
        """Take `size` bytes of the budget (waiting in the queue if needed); `leave(size)` gives them back.

        `admit` without its context manager, for the hot path: no generator per request.
        """
        if self.limit <= 0:
            return
        if not self._queue and self._fits(size):
            self.in_flight += size
        else:
            await self._wait(size, deadline)

    def leave(self, size: int) -> None:
        if self.limit > 0:
            self._release(size)

    async def _wait(self, size: int, deadline: float | None) -> None:
        waiter = _Waiter(size)
        self._queue.append(waiter)
        budget = self.queue_timeout
        if deadline is not None:
            budget = max(0.0, min(budget, deadline - time.monotonic() - ANSWER_MARGIN))
        try:
            await asyncio.wait_for(asyncio.shield(waiter.granted), budget)
        except BaseException as exc:  # timed out or cancelled: leave the queue, or give back what was granted
            if waiter.granted.done():
                self._release(size)
            else:
                waiter.granted.cancel()
                self._queue.remove(waiter)
                self._grant()  # a large request at the head may have held smaller ones back
            if isinstance(exc, TimeoutError):
                raise MilvusError(
                    errors.RATE_LIMIT,
                    f"mishards: request of {size} bytes waited {budget:g}s to be admitted; "
                    f"{self.in_flight} bytes of requests are in flight (MAX_INFLIGHT_BYTES={self.limit}), "
                    f"{len(self._queue)} waiting: retry later",
                ) from None
            raise

    def _release(self, size: int) -> None:
        self.in_flight -= size
        self._grant()

    def _grant(self) -> None:
        while self._queue and self._fits(self._queue[0].size):
            waiter = self._queue.popleft()
            self.in_flight += waiter.size
            waiter.granted.set_result(None)
