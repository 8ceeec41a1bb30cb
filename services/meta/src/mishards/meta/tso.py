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
    """

    def __init__(self, reserve: Callable[[int], int], clock: Callable[[], float] = time.time) -> None:
        self._reserve = reserve
        self._clock = clock
        self._lock = threading.Lock()
        previous_bound = reserve(0)
        self._last_ms = previous_bound
        self._logical = LOGICAL_MASK  # the next call moves to a fresh millisecond
        self._bound = previous_bound

    def get(self, count: int = 1) -> int:
        """Reserve `count` consecutive timestamps; returns the first."""
        if count < 1 or count > LOGICAL_MASK:
            raise ValueError(f"count must be in 1..{LOGICAL_MASK}")
        with self._lock:
            now_ms = int(self._clock() * 1000)
            if now_ms > self._last_ms:
                self._last_ms, self._logical = now_ms, 0
            elif self._logical + count > LOGICAL_MASK:
                self._last_ms, self._logical = self._last_ms + 1, 0
            if self._last_ms >= self._bound:
                self._bound = self._last_ms + WINDOW_MS
                self._reserve(self._bound)
            first = compose(self._last_ms, self._logical)
            self._logical += count
            return first
