"""Group commit: concurrent appends to the mutation log share one transaction and one fsync.

Appends queue up while a commit runs; the next commit takes all of them. Each append keeps
its own positions and timestamp. What follows a commit (the shards' in-memory state, waking
the appliers) runs in the committer's task, so it completes whatever happens to the caller
that asked for the append (a client deadline, a cancelled RPC).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.meta.store import NoTimestamp, Store
from mishards.meta.tso import TimestampOracle

log = logging.getLogger(__name__)

Entries = Sequence[tuple[int, str, bytes]]  # (shard, method, payload)


class CollectionGone(Exception):
    """The collection was dropped before the append committed."""


@dataclass
class Append:
    collection_id: int
    entries: Entries
    abortable: bool
    decoded: Sequence[Any] = ()  # the entries' requests, when the caller decoded them already
    done: asyncio.Future[tuple[list[int], int]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


# Called before commit with the batch: may fail single appends (their future gets the error).
Admit = Callable[[list[Append]], Awaitable[None]]
# Called after commit for each append, with its positions and timestamp.
Committed = Callable[[Append, list[int], int], None]


class GroupCommit:
    """Commits queued appends in batches, one transaction each."""

    def __init__(self, store: Store, oracle: TimestampOracle, admit: Admit, committed: Committed) -> None:
        self.store = store
        self.oracle = oracle
        self.admit = admit
        self.committed = committed
        self._queue: list[Append] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # commits made (for tests and the bench)

    async def append(
        self, collection_id: int, entries: Entries, abortable: bool, decoded: Sequence[Any] = ()
    ) -> tuple[list[int], int]:
        """The entries' positions and the write's timestamp, once durably committed.

        Raises CollectionGone, or the MilvusError `admit` gave this append.
        """
        item = Append(collection_id, entries, abortable, decoded)
        self._queue.append(item)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        # The commit and its follow-up go on if this caller is cancelled.
        return await asyncio.shield(item.done)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self._commit(batch)
                except asyncio.CancelledError:
                    for item in batch:
                        _fail(
                            item,
                            MilvusError(
                                errors.SERVICE_UNAVAILABLE, "mishards: meta is stopping; the write was not logged"
                            ),
                        )
                    raise
                except Exception as exc:  # the store failed: nothing of the batch is logged
                    log.exception("appending %d writes to the log failed", len(batch))
                    for item in batch:
                        _fail(
                            item,
                            MilvusError(errors.SERVICE_UNAVAILABLE, f"mishards: the write could not be logged: {exc}"),
                        )

    async def _commit(self, batch: list[Append]) -> None:
        await self.admit(batch)
        batch = [item for item in batch if not item.done.done()]
        if not batch:
            return
        appends = [(item.collection_id, item.entries, item.abortable) for item in batch]
        while True:
            try:
                results = await asyncio.to_thread(self.store.append_batch, appends, self.oracle.get_reserved)
                break
            except NoTimestamp:  # the oracle's window is persisted outside the append transaction
                await asyncio.to_thread(self.oracle.reserve_ahead)
        self.batches += 1
        for item, result in zip(batch, results):
            if result is None:
                _fail(item, CollectionGone(str(item.collection_id)))
                continue
            seqs, ts = result
            try:
                self.committed(item, seqs, ts)
            except Exception:  # the write is logged: its appliers read it from the store
                log.exception("after committing a write to collection %d", item.collection_id)
            if not item.done.done():
                item.done.set_result((seqs, ts))


def _fail(item: Append, exc: BaseException) -> None:
    if not item.done.done():
        item.done.set_exception(exc)
