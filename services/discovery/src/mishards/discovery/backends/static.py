"""`static` back end: WOSERVER lists writable instances, DISCOVERY_STATIC_HOSTS read-only ones."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends.base import DiscoveryBackend, InstanceSpec, Role
from mishards.discovery.backends.hostport import Resolver, join_host_port, split_host_port

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StaticEntry:
    """One configured instance: identity is `host:port` as written (default port added)."""

    identity: str
    host: str
    port: int
    role: Role


def parse_static_entries(settings: Settings) -> list[StaticEntry]:
    """The entries of WOSERVER (writable) and DISCOVERY_STATIC_HOSTS (read-only).

    Raises SettingsError naming the setting of a malformed entry, or of an instance
    listed twice.
    """
    entries: list[StaticEntry] = []
    seen: dict[str, str] = {}
    sources: list[tuple[str, list[str], Role]] = [
        ("WOSERVER", settings.WOSERVER, "writable"),
        ("DISCOVERY_STATIC_HOSTS", settings.DISCOVERY_STATIC_HOSTS, "readonly"),
    ]
    for setting, raw_entries, role in sources:
        for raw in raw_entries:
            try:
                host, port = split_host_port(raw, settings.DISCOVERY_STATIC_PORT)
            except ValueError as exc:
                raise SettingsError(f"setting {setting}: {exc}") from None
            identity = join_host_port(host, port)
            if identity in seen:
                raise SettingsError(f"setting {setting}: {identity} is already listed in {seen[identity]}")
            seen[identity] = setting
            entries.append(StaticEntry(identity=identity, host=host, port=port, role=role))
    return entries


class StaticBackend(DiscoveryBackend):
    """Instances fixed by settings; addresses re-resolved at every list.

    Identity stays `host:port` as written, so a host name that moves to another IP keeps
    its placement; an entry whose lookup fails keeps the address it last resolved to, and
    one that never resolved is listed with its unresolved `host:port` address (the prober
    then reports it down). Never raises
    BackendUnavailable: the source is the settings themselves.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.entries = parse_static_entries(settings)
        self.resolver = Resolver(settings.DISCOVERY_PROBE_TIMEOUT)
        if not self.entries:
            log.warning("static discovery has no instances: set WOSERVER and DISCOVERY_STATIC_HOSTS")

    async def list_instances(self) -> list[InstanceSpec]:
        """The configured instances with freshly resolved addresses; never raises."""
        addresses = await asyncio.gather(*(self.resolver.resolve(e.host, e.port) for e in self.entries))
        return [
            InstanceSpec(identity=e.identity, address=address, role=e.role)
            for e, address in zip(self.entries, addresses)
        ]
