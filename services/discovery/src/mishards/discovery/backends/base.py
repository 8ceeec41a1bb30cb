"""The discovery back-end interface: a small, dumb source of instance specs.

Back ends only say which instances exist and their role. Health, damping, versioning
and "keep the last known list during an outage" live once, above them, in the prober.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mishards.common.settings import Settings

Role = Literal["writable", "readonly"]
ROLES: tuple[str, ...] = ("writable", "readonly")


class BackendUnavailable(Exception):
    """The back end's source cannot be read right now (the message says why).

    The service then keeps the last known instance list and reports
    `backend_ok=false` with this message as `backend_error`.
    """


@dataclass(frozen=True)
class InstanceSpec:
    """One Milvus instance as a back end knows it.

    `identity` is stable across restarts and address changes (host:port for static and
    file, pod name for Kubernetes, service ID for Consul); meta keys placement by it.
    `address` is the host:port where the Milvus gRPC endpoint answers.
    Raises ValueError when a field is empty or the role is not writable/readonly.
    """

    identity: str
    address: str
    role: Role

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("instance identity is empty")
        if not self.address:
            raise ValueError(f"instance {self.identity!r} has an empty address")
        if self.role not in ROLES:
            raise ValueError(f"instance {self.identity!r} has role {self.role!r}; use writable or readonly")


def parse_role(raw: object, where: str) -> Role:
    """`writable` or `readonly` (case-insensitive, `read-only` accepted); ValueError naming `where`."""
    text = str(raw).strip().lower().replace("-", "").replace("_", "")
    if text == "writable":
        return "writable"
    if text == "readonly":
        return "readonly"
    raise ValueError(f"{where}: role {raw!r} is not writable or readonly")


class DiscoveryBackend(abc.ABC):
    """A source of Milvus instances. Constructed as `Backend(settings)`.

    The constructor validates its settings and raises
    `mishards.common.settings.SettingsError` naming the bad setting; it must not do I/O
    that can block for long. Back ends are used from one asyncio loop, one call at a time.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    @abc.abstractmethod
    async def list_instances(self) -> list[InstanceSpec]:
        """Every instance the source knows now, writable and read-only, any order.

        Identities are unique. Raises `BackendUnavailable` when the source cannot be
        read (missing or unparsable file, unreachable API); any other exception is a
        bug in the back end and is treated the same way by the service, with a
        traceback in the log. Never returns a partial list.
        """

    def subscribe(self, notify: Callable[[], None]) -> None:
        """Have `notify()` called whenever the list may have changed. Never raises.

        Back ends that learn of changes as they happen (watches, blocking queries) call
        `notify` from any thread, so that a removal is published at once instead of at
        the next probe round. The default never calls it: the service then lists the
        back end once per DISCOVERY_PROBE_INTERVAL. Called once, before the first list.
        """
        return

    async def close(self) -> None:
        """Release connections and files. Never raises; called once, at shutdown."""
        return
