"""Back ends that follow their source (blocking queries, watch streams) in the background.

Consul and Kubernetes push changes over long-lived requests. A follower thread per
feed keeps the latest answer; `list_instances()` returns it at once, or raises
BackendUnavailable while a feed's last attempt failed. The prober's interface stays
the same small `list_instances()`: following is a detail of these back ends. A feed
whose answer changes calls the back end's `subscribe` callback, so the service lists
and publishes at once rather than at its next probe round.

Threads rather than asyncio tasks because both official clients are blocking; they
are daemon threads so that a long-poll in flight never holds up process exit.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable

from mishards.common.settings import Settings
from mishards.discovery.backends.base import (
    BackendUnavailable,
    DiscoveryBackend,
    InstanceSpec,
)

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with jitter: `initial`, doubling up to `maximum` seconds."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the following one."""
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        # Jitter keeps many discovery replicas from hammering a recovering server together.
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self.initial


class Feed:
    """The latest answer of one followed source: a list of specs, or an error.

    Written by one follower thread, read by the event loop; guarded by a lock.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._specs: list[InstanceSpec] = []
        self._error: str | None = f"{name}: not listed yet"
        self._order = 0.0
        self.loaded = threading.Event()
        self.updates = 0
        #: Called (from the follower thread) after an answer that differs from the last.
        self.on_change: Callable[[], None] = lambda: None

    def set(self, specs: list[InstanceSpec], order: float = 0.0) -> None:
        """Record a successful answer. `order` ranks feeds when an identity is in two."""
        with self._lock:
            if self._error is not None:
                log.info("%s readable again: %d instances", self.name, len(specs))
            changed = self._error is not None or self._specs != specs or self._order != order
            self._specs, self._error, self._order = list(specs), None, order
            self.updates += 1
        self.loaded.set()
        if changed:
            self.on_change()

    def fail(self, error: str) -> None:
        """Record a failed attempt; the feed is unavailable until the next `set`."""
        with self._lock:
            changed = self._error != error
            if changed:
                log.warning("discovery source unavailable: %s", error)
            self._error = error
            self.updates += 1
        self.loaded.set()
        if changed:
            self.on_change()

    def read(self) -> tuple[list[InstanceSpec], str | None, float]:
        """(specs, error or None, order)."""
        with self._lock:
            return list(self._specs), self._error, self._order


class FollowingBackend(DiscoveryBackend):
    """A back end whose feeds are followed by daemon threads started at the first list.

    Subclasses implement `_follow_targets()`: one `(feed, loop)` per feed, where `loop`
    runs until `self.stopping` is set, calling `feed.set` / `feed.fail` and sleeping with
    `self.stopping.wait(delay)`.
    """

    #: How long the first `list_instances()` waits for every feed's first answer.
    first_answer_timeout: float = 10.0

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self.stopping = threading.Event()
        self.feeds: list[Feed] = []
        self._threads: list[threading.Thread] = []
        self._started = False
        self._notify: Callable[[], None] = lambda: None

    @abc.abstractmethod
    def _follow_targets(self) -> list[tuple[Feed, Callable[[Feed], None]]]:
        """The feeds to follow and the blocking loop that follows each."""

    def subscribe(self, notify: Callable[[], None]) -> None:
        """`notify()` is called from a follower thread whenever a feed's answer changes."""
        self._notify = notify

    def _feed_changed(self) -> None:
        try:
            self._notify()
        except Exception:  # the subscriber's problem must not end a follower
            log.exception("change notification failed")

    def _start(self) -> None:
        self._started = True
        for feed, loop in self._follow_targets():
            feed.on_change = self._feed_changed
            self.feeds.append(feed)
            thread = threading.Thread(target=self._run, args=(feed, loop), name=f"follow-{feed.name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, feed: Feed, loop: Callable[[Feed], None]) -> None:
        try:
            loop(feed)
        except Exception as exc:  # a follower bug must show up in health status, not vanish
            log.exception("follower of %s ended with an error", feed.name)
            feed.fail(f"{feed.name}: follower stopped: {type(exc).__name__}: {exc}")

    async def list_instances(self) -> list[InstanceSpec]:
        """The latest followed instances of every feed; BackendUnavailable while one is failing.

        The first call starts the followers and waits up to `first_answer_timeout`
        seconds for every feed's first answer.
        """
        if not self._started:
            self._start()
        if not all(f.loaded.is_set() for f in self.feeds):
            deadline = time.monotonic() + self.first_answer_timeout
            while not all(f.loaded.is_set() for f in self.feeds) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return self.merge([feed.read() for feed in self.feeds])

    def merge(self, answers: list[tuple[list[InstanceSpec], str | None, float]]) -> list[InstanceSpec]:
        """One list from every feed's answer; an identity in two feeds keeps the higher order.

        Raises BackendUnavailable naming every failing feed.
        """
        errors = [error for _, error, _ in answers if error is not None]
        if errors:
            raise BackendUnavailable("; ".join(errors))
        chosen: dict[str, tuple[float, InstanceSpec]] = {}
        for specs, _, order in answers:
            for spec in specs:
                known = chosen.get(spec.identity)
                if known is None or order > known[0]:
                    chosen[spec.identity] = (order, spec)
        return [spec for _, spec in chosen.values()]

    async def close(self) -> None:
        """Stop the followers (a long-poll in flight ends with its daemon thread). Never raises."""
        self.stopping.set()
        for thread in self._threads:
            # Short: a follower blocked in a long-poll must not hold up shutdown.
            await asyncio.to_thread(thread.join, 0.2)
