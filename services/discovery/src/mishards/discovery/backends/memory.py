"""`memory` back end: a complete in-memory back end for tests and experiments."""

from __future__ import annotations

from collections.abc import Iterable

from mishards.common.settings import Settings
from mishards.discovery.backends.base import (
    BackendUnavailable,
    DiscoveryBackend,
    InstanceSpec,
)


class MemoryBackend(DiscoveryBackend):
    """Instances held in memory: `set_instances()` changes them, `fail()` simulates an outage.

    Starts empty (or with `instances`). While failed, `list_instances` raises
    BackendUnavailable with the given error; `recover()` ends the outage.
    """

    def __init__(self, settings: Settings | None = None, instances: Iterable[InstanceSpec] = ()) -> None:
        super().__init__(settings)
        self._instances: list[InstanceSpec] = list(instances)
        self._error: str | None = None
        self.closed = False
        self.list_calls = 0

    def set_instances(self, instances: Iterable[InstanceSpec]) -> None:
        """Replace the whole instance list (identities must be unique)."""
        self._instances = list(instances)

    def fail(self, error: str | Exception = "memory back end unavailable") -> None:
        """Make every list raise BackendUnavailable(error) until `recover()`."""
        self._error = str(error)

    def recover(self) -> None:
        """End a simulated outage."""
        self._error = None

    async def list_instances(self) -> list[InstanceSpec]:
        """The instances last set; BackendUnavailable while failed."""
        self.list_calls += 1
        if self._error is not None:
            raise BackendUnavailable(self._error)
        return list(self._instances)

    async def close(self) -> None:
        """Mark the back end closed."""
        self.closed = True
