"""`file` back end: a YAML list of instances at DISCOVERY_FILE_PATH, re-read when it changes.

    - {host: 127.0.0.1, port: 19601, role: writable}
    - {address: "milvus-ro-0:19530", role: readonly, identity: ro-0}

`port` defaults to DISCOVERY_STATIC_PORT; `identity` defaults to `host:port` as
written. Host names are resolved again at every list, as the static back end does, so
an instance whose name moves to another IP keeps its identity (and placement). An
explicit `[]` means "no instances"; an empty file is treated as unreadable because
it is what an editor or a non-atomic writer leaves behind for a moment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any

import yaml

from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends.base import (
    BackendUnavailable,
    DiscoveryBackend,
    InstanceSpec,
    parse_role,
)
from mishards.discovery.backends.hostport import (
    Resolver,
    join_host_port,
    parse_port,
    split_host_port,
)

_Stamp = tuple[int, int, int, int]

# Coarse file-system clocks can give two quick writes the same modification time.
RACY_WINDOW_NS = 2_000_000_000


def parse_instance_file(text: str, default_port: int) -> list[InstanceSpec]:
    """The instances of a YAML instance list, with addresses as written (not resolved).

    Raises ValueError or TypeError saying which entry is wrong.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        raise ValueError("the file is empty (write [] for no instances)")
    if not isinstance(data, list):
        raise TypeError(f"expected a YAML list of instances, got {type(data).__name__}")
    specs: list[InstanceSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        where = f"entry {index + 1}"
        spec = _parse_entry(item, default_port, where)
        if spec.identity in seen:
            raise ValueError(f"{where}: identity {spec.identity} is listed twice")
        seen.add(spec.identity)
        specs.append(spec)
    return specs


def _parse_entry(item: Any, default_port: int, where: str) -> InstanceSpec:
    if not isinstance(item, dict):
        raise TypeError(f"{where}: expected a mapping like {{host: h, port: p, role: writable}}")
    unknown = set(item) - {"host", "port", "address", "role", "identity"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    if "role" not in item:
        raise ValueError(f"{where}: role is missing (writable or readonly)")
    role = parse_role(item["role"], where)
    try:
        if "address" in item:
            if "host" in item or "port" in item:
                raise ValueError("give either address or host/port, not both")
            host, port = split_host_port(str(item["address"]), default_port)
        elif "host" in item:
            host, port = split_host_port(str(item["host"]), default_port)
            if "port" in item:
                port = parse_port(str(item["port"]), str(item["host"]))
        else:
            raise ValueError("host or address is missing")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    address = join_host_port(host, port)
    identity = str(item.get("identity") or address).strip()
    return InstanceSpec(identity=identity, address=address, role=role)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


class FileBackend(DiscoveryBackend):
    """Instances listed in a YAML file; the file is parsed again only when it changes.

    Change detection uses modification time, size and inode, so both in-place edits and
    atomic renames are seen; a file modified in the last two seconds is read at every
    list, since a second quick write could keep the same stamp. A missing, unreadable
    or invalid file raises BackendUnavailable at every list until it is fixed.
    Addresses are resolved at every list; an entry that does not resolve is listed with
    its unresolved `host:port` address (the prober then reports it down).
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        if not settings.DISCOVERY_FILE_PATH:
            raise SettingsError("setting DISCOVERY_FILE_PATH is empty; the file back end needs it")
        self.path = settings.DISCOVERY_FILE_PATH
        self.default_port = settings.DISCOVERY_STATIC_PORT
        self.resolver = Resolver(settings.DISCOVERY_PROBE_TIMEOUT)
        self._stamp: _Stamp | None = None
        self._stamp_trusted = False
        self._specs: list[InstanceSpec] = []
        self._error: str = ""
        self.reads = 0

    async def list_instances(self) -> list[InstanceSpec]:
        """The file's instances, freshly resolved; BackendUnavailable when missing, unreadable or invalid."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._stamp = None
            raise BackendUnavailable(f"cannot read {self.path}: {exc.strerror or exc}") from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
        if stamp != self._stamp or not self._stamp_trusted:
            self._stamp = stamp
            # A file changed within the timestamp granularity may change again unseen
            # with the same stamp, so it is read again until its stamp has aged.
            self._stamp_trusted = time.time_ns() - st.st_mtime_ns > RACY_WINDOW_NS
            try:
                self.reads += 1
                text = await asyncio.to_thread(_read_text, self.path)
                specs = parse_instance_file(text, self.default_port)
                self._specs, self._error = specs, ""
            except OSError as exc:
                self._stamp = None  # retry the read next time
                raise BackendUnavailable(f"cannot read {self.path}: {exc.strerror or exc}") from None
            except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
                self._error = f"{self.path}: {exc}"
        if self._error:
            raise BackendUnavailable(self._error)
        return await asyncio.gather(*(self._resolve(spec) for spec in self._specs))

    async def _resolve(self, spec: InstanceSpec) -> InstanceSpec:
        host, port = split_host_port(spec.address, self.default_port)
        return dataclasses.replace(spec, address=await self.resolver.resolve(host, port))
