"""Primary keys for auto_id collections, from blocks that meta allocates (unique cluster-wide)."""

from __future__ import annotations

import asyncio

import numpy as np

from mishards.router.meta_client import MetaClient


class IdAllocator:
    """Hands out int64 ids from the current block; asks meta for a new block when it runs out."""

    def __init__(self, meta: MetaClient, block_size: int) -> None:
        self.meta = meta
        self.block_size = block_size
        self._next = 0
        self._end = 0
        self._lock = asyncio.Lock()

    async def allocate(self, count: int) -> np.ndarray:
        """`count` fresh ids as an int64 array, in increasing order."""
        async with self._lock:
            out = np.empty(count, dtype=np.int64)
            filled = 0
            while filled < count:
                if self._next >= self._end:
                    want = max(self.block_size, count - filled)
                    block = await self.meta.allocate_ids(want)
                    self._next, self._end = block.begin, block.begin + block.count
                take = min(count - filled, self._end - self._next)
                out[filled : filled + take] = np.arange(self._next, self._next + take, dtype=np.int64)
                self._next += take
                filled += take
            return out
