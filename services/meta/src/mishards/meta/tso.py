"""Hybrid timestamps (physical ms << 18 | logical), monotonic across meta restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

LOGICAL_BITS = 18
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
# How far ahead of the clock the persisted bound runs; a restart starts above it.
WINDOW_MS = 3000


def compose(physical_ms: int, logical: int) -> int:
    return (physical_ms << LOGICAL_BITS) | logical


def physical_ms(ts: int) -> int:
    return ts >> LOGICAL_BITS


class TimestampOracle:
    """Issues strictly increasing hybrid timestamps.

    `reserve(upto_ms) -> previous bound` persists the highest physical time that may be
    issued; after a restart every timestamp is above the previous bound, so timestamps
    never go back even when the wall clock does.

    The store write of a new bound is made without holding the lock that issuing takes: a
    caller that issues while it holds a store lock (the log's append transaction, via
    `get_reserved`) must never wait for a thread that waits for that store lock.
    """

    def __init__(self, reserve: Callable[[int], int], clock: Callable[[], float] = time.time) -> None:
        self._reserve = reserve
        self._clock = clock
        self._lock = threading.Lock()  # issuing: held briefly, never across the store write
        self._reserving = threading.Lock()  # one store write of the bound at a time
        previous_bound = reserve(0)
        self._last_ms = previous_bound
        self._logical = LOGICAL_MASK  # the next call moves to a fresh millisecond
        self._bound = previous_bound

    def get(self, count: int = 1) -> int:
        """Reserve `count` consecutive timestamps; returns the first."""
        while True:
            first = self.get_reserved(count)
            if first is not None:
                return first
            self.reserve_ahead()

    def get_reserved(self, count: int = 1) -> int | None:
        """As `get`, but None where `get` would first persist a new window; it never writes.

        For callers that hold a store lock (the log's append transaction): on SQLite the
        window's write would wait for that very lock. They call `reserve_ahead` and retry.
        """
        if count < 1 or count > LOGICAL_MASK:
            raise ValueError(f"count must be in 1..{LOGICAL_MASK}")
        with self._lock:
            now_ms = int(self._clock() * 1000)
            last_ms, logical = self._last_ms, self._logical
            if now_ms > last_ms:
                last_ms, logical = now_ms, 0
            elif logical + count > LOGICAL_MASK:
                last_ms, logical = last_ms + 1, 0
            if last_ms >= self._bound:
                return None
            self._last_ms, self._logical = last_ms, logical + count
            return compose(last_ms, logical)

    def reserve_ahead(self) -> None:
        """Persist a fresh window when less than half of the current one is left."""
        with self._reserving:
            with self._lock:
                now_ms = max(int(self._clock() * 1000), self._last_ms)
                if now_ms + WINDOW_MS // 2 < self._bound:
                    return
                upto = now_ms + WINDOW_MS
            self._reserve(upto)  # may wait for the store: issuing goes on meanwhile, below the old bound
            with self._lock:
                self._bound = max(self._bound, upto)
