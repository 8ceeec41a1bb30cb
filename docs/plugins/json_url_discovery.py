"""An example discovery plugin: instances published as JSON at a URL.

Load it with

    DISCOVERY_PLUGIN_PATH=/path/to/docs/plugins
    DISCOVERY_CLASS_NAME=JsonUrlDiscovery
    JSON_DISCOVERY_URL=http://inventory.internal/milvus.json

The document is a list of instances:

    [{"identity": "milvus-a", "address": "10.0.0.1:19530", "role": "writable"},
     {"identity": "milvus-b", "address": "10.0.0.2:19530", "role": "readonly"}]

What a plugin must do (see docs/discovery.md): subclass DiscoveryBackend, take the
settings in `__init__` without blocking I/O, implement `async def list_instances()`
returning the complete list or raising BackendUnavailable, and release resources in
`close()`. Health probing, damping, versioning and "keep the last list during an
outage" are done by the discovery service, not here.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request

from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends.base import (
    BackendUnavailable,
    DiscoveryBackend,
    InstanceSpec,
    parse_role,
)


class JsonUrlDiscovery(DiscoveryBackend):
    """Instances listed by a JSON document fetched at every list."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # Settings holds Mishards' own settings only; a plugin reads its own from the
        # environment here, in the constructor (never at import).
        self.url = os.environ.get("JSON_DISCOVERY_URL", "")
        if not self.url:
            raise SettingsError("setting JSON_DISCOVERY_URL is empty; the JsonUrlDiscovery plugin needs it")
        self.timeout = settings.DISCOVERY_PROBE_TIMEOUT

    def _fetch(self) -> bytes:
        with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
            return bytes(response.read())

    async def list_instances(self) -> list[InstanceSpec]:
        """Every instance of the document; BackendUnavailable when it cannot be fetched or parsed."""
        try:
            body = await asyncio.to_thread(self._fetch)
        except (OSError, urllib.error.URLError) as exc:
            raise BackendUnavailable(f"cannot fetch {self.url}: {exc}") from None
        try:
            entries = json.loads(body)
            if not isinstance(entries, list):
                raise ValueError("expected a JSON list of instances")
            return [
                InstanceSpec(
                    identity=str(entry["identity"]),
                    address=str(entry["address"]),
                    role=parse_role(entry["role"], f"{self.url} entry {n + 1}"),
                )
                for n, entry in enumerate(entries)
            ]
        except (ValueError, KeyError, TypeError) as exc:
            # Never a partial list: a bad document is an outage, the last list is kept.
            raise BackendUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        return None
