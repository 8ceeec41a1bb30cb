"""Read strategies (ROUTER_CLASS_NAME): which ready copy of a shard serves a read.

A strategy orders the ready replicas of a shard; the first serves, the rest are the
failover order. Built-ins register by name; a user class is found by ROUTER_PLUGIN_PATH +
ROUTER_CLASS_NAME and is constructed with the settings.
"""

from __future__ import annotations

import abc
import threading
from collections import defaultdict

import mmh3

from mishards.common.plugins import Registry
from mishards.common.settings import Settings


class ReadStrategy(abc.ABC):
    """Orders a shard's ready replicas for one read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abc.abstractmethod
    def order(self, shard_key: str, replicas: list[str]) -> list[str]:
        """`replicas` (instance identities) in the order to try them; never drops or adds one."""

    def started(self, identity: str) -> None:  # noqa: B027 - optional hook
        """A request to the instance begins (for strategies that count outstanding requests)."""

    def finished(self, identity: str) -> None:  # noqa: B027 - optional hook
        """A request to the instance ended, whatever its outcome."""


# The name plugins written before the rename subclass; "router" is the service, this is a strategy.
ReadRouter = ReadStrategy


def _score(shard_key: str, identity: str) -> int:
    return mmh3.hash(f"{shard_key}/{identity}".encode(), 0, signed=False)


class ConsistentHashRouter(ReadStrategy):
    """A shard always goes to the same replica (rendezvous hashing): good for caches.

    When a replica joins or leaves, only the shards that hash to it move.
    """

    def order(self, shard_key: str, replicas: list[str]) -> list[str]:
        return sorted(replicas, key=lambda r: _score(shard_key, r), reverse=True)


class LeastOutstandingRouter(ReadStrategy):
    """The replica with the fewest requests in flight from this router; ties by consistent hash."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._outstanding: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def order(self, shard_key: str, replicas: list[str]) -> list[str]:
        return sorted(replicas, key=lambda r: (self._outstanding.get(r, 0), -_score(shard_key, r)))

    def started(self, identity: str) -> None:
        with self._lock:
            self._outstanding[identity] += 1

    def finished(self, identity: str) -> None:
        with self._lock:
            self._outstanding[identity] = max(0, self._outstanding[identity] - 1)


def builtin_registry() -> Registry[ReadStrategy]:
    registry: Registry[ReadStrategy] = Registry("router")
    registry.register("ConsistentHashRouter", ConsistentHashRouter)
    # The original Mishards' default name, kept so old settings keep working.
    registry.register("FileBasedHashRingRouter", ConsistentHashRouter)
    registry.register("LeastOutstandingRouter", LeastOutstandingRouter)
    return registry


def create_read_strategy(settings: Settings, class_name: str | None = None) -> ReadStrategy:
    """The configured strategy; PluginError (listing the known names) when it cannot be found."""
    cls = builtin_registry().resolve(class_name or settings.ROUTER_CLASS_NAME, settings.ROUTER_PLUGIN_PATH)
    return cls(settings)
