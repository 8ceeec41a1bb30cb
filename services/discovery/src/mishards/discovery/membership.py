"""The versioned membership snapshot and its watchers.

Every published change gets the next version. Each watcher has its own bounded queue
of snapshots, so a slow watcher never blocks the prober or other watchers: when its
queue is full the oldest pending snapshot is dropped (each message is a full
snapshot, so the watcher still ends on the latest state, versions strictly increasing).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterable

from mishards.v1 import discovery_pb2

# Snapshots a watcher may have pending before the oldest ones are skipped.
WATCH_QUEUE_SIZE = 64

INITIAL_BACKEND_ERROR = "discovery has not listed its back end yet"


def _identity(instance: discovery_pb2.Instance) -> str:
    return instance.identity


class _Watcher:
    def __init__(self, size: int) -> None:
        self.pending: collections.deque[discovery_pb2.Membership] = collections.deque(maxlen=size)
        self.wakeup = asyncio.Event()


class MembershipBoard:
    """Holds the current `Membership` and fans every new version out to watchers.

    Starts at version 0 with no instances and `backend_ok=false`. Not thread-safe: use
    it from one asyncio loop.
    """

    def __init__(self, queue_size: int = WATCH_QUEUE_SIZE) -> None:
        self._current = discovery_pb2.Membership(version=0, backend_ok=False, backend_error=INITIAL_BACKEND_ERROR)
        self._watchers: set[_Watcher] = set()
        self._queue_size = queue_size
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    def current(self) -> discovery_pb2.Membership:
        """A copy of the current snapshot."""
        snapshot = discovery_pb2.Membership()
        snapshot.CopyFrom(self._current)
        return snapshot

    def publish(
        self,
        instances: Iterable[discovery_pb2.Instance],
        backend_ok: bool,
        backend_error: str = "",
    ) -> bool:
        """Make this the membership; bump the version and notify watchers if anything changed.

        Instances are ordered by identity. Returns whether a new version was published.
        Never raises; publishing after `close()` is ignored.
        """
        if self._closed:
            return False
        ordered = sorted(instances, key=_identity)
        candidate = discovery_pb2.Membership(
            version=self._current.version,
            instances=ordered,
            backend_ok=backend_ok,
            backend_error="" if backend_ok else backend_error,
        )
        if candidate == self._current:
            return False
        candidate.version += 1
        self._current = candidate
        for watcher in self._watchers:
            watcher.pending.append(candidate)
            watcher.wakeup.set()
        return True

    async def watch(self) -> AsyncIterator[discovery_pb2.Membership]:
        """The current snapshot at once, then every later version in order until `close()`.

        A watcher that falls more than the queue size behind skips the oldest pending
        versions. Ends (without error) when the board is closed.
        """
        watcher = _Watcher(self._queue_size)
        # Registered before reading the current snapshot, so no version is missed.
        self._watchers.add(watcher)
        try:
            last = self._current.version
            yield self.current()
            while True:
                while watcher.pending:
                    snapshot = watcher.pending.popleft()
                    if snapshot.version > last:
                        last = snapshot.version
                        yield snapshot
                if self._closed:
                    return
                watcher.wakeup.clear()
                await watcher.wakeup.wait()
        finally:
            self._watchers.discard(watcher)

    def close(self) -> None:
        """End every watch stream after its pending snapshots; idempotent."""
        self._closed = True
        for watcher in self._watchers:
            watcher.wakeup.set()
