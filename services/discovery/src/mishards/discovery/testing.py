"""Conformance checks every discovery back end must pass, and harnesses for the built-ins.

A harness drives a back end's *source* (the settings, the file, the in-memory list)
the way an operator would; the checks then look at what the back end lists and at the
membership the prober publishes from it. A new back end gets a harness and runs every
check in `CHECKS` (see services/discovery/tests/test_discovery_conformance.py).
"""

from __future__ import annotations

import abc
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence

import yaml

from mishards.common.settings import Settings
from mishards.discovery.backends.base import (
    BackendUnavailable,
    DiscoveryBackend,
    InstanceSpec,
)
from mishards.discovery.backends.file import FileBackend
from mishards.discovery.backends.memory import MemoryBackend
from mishards.discovery.backends.static import StaticBackend
from mishards.discovery.prober import Prober, ProbeResult
from mishards.v1 import discovery_pb2


class NotApplicable(Exception):
    """The check needs something the back end's source cannot do (e.g. change at run time)."""


class BackendHarness(abc.ABC):
    """Drives one back end's source for the conformance checks."""

    #: The source can change while the back end runs (join, leave, role change).
    can_change: bool = True
    #: The source can become unreadable (outage).
    can_fail: bool = True

    def __init__(self, backend: DiscoveryBackend) -> None:
        self.backend = backend

    def set_instances(self, specs: Sequence[InstanceSpec]) -> None:
        """Make the source list exactly `specs`; NotApplicable when it cannot change."""
        raise NotApplicable(f"{type(self).__name__} cannot change its instances")

    def break_source(self) -> None:
        """Make the source unreadable; NotApplicable when it cannot fail."""
        raise NotApplicable(f"{type(self).__name__} cannot simulate an outage")

    def repair_source(self) -> None:
        """Make the source readable again with the instances it had before."""
        raise NotApplicable(f"{type(self).__name__} cannot simulate an outage")

    async def close(self) -> None:
        """Close the back end and remove what the harness created."""
        await self.backend.close()


HarnessFactory = Callable[[Sequence[InstanceSpec]], BackendHarness]


class MemoryHarness(BackendHarness):
    """The memory back end, changed through `set_instances` and `fail`."""

    backend: MemoryBackend

    def __init__(self, specs: Sequence[InstanceSpec]) -> None:
        super().__init__(MemoryBackend(instances=specs))

    def set_instances(self, specs: Sequence[InstanceSpec]) -> None:
        self.backend.set_instances(specs)

    def break_source(self) -> None:
        self.backend.fail("simulated outage")

    def repair_source(self) -> None:
        self.backend.recover()


class StaticHarness(BackendHarness):
    """The static back end from WOSERVER / DISCOVERY_STATIC_HOSTS; the source is fixed.

    Specs must use IP literals with identity == address, since static identities are
    `host:port` and addresses their resolution.
    """

    can_change = False
    can_fail = False

    def __init__(self, specs: Sequence[InstanceSpec]) -> None:
        settings = Settings(
            WOSERVER=[s.identity for s in specs if s.role == "writable"],
            DISCOVERY_STATIC_HOSTS=[s.identity for s in specs if s.role == "readonly"],
        )
        super().__init__(StaticBackend(settings))


class FileHarness(BackendHarness):
    """The file back end over a YAML file in a private temporary folder."""

    def __init__(self, specs: Sequence[InstanceSpec], folder: str | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mishards-discovery-")
            folder = self._tmp.name
        self.path = os.path.join(folder, "instances.yaml")
        self._specs = list(specs)
        self._write(yaml.safe_dump(_to_yaml(self._specs)))
        super().__init__(FileBackend(Settings(DISCOVERY_FILE_PATH=self.path)))

    def _write(self, text: str) -> None:
        # Atomic replace, as an operator's tooling (or a ConfigMap update) does it.
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, self.path)

    def set_instances(self, specs: Sequence[InstanceSpec]) -> None:
        self._specs = list(specs)
        self._write(yaml.safe_dump(_to_yaml(self._specs)))

    def break_source(self) -> None:
        self._write("- {host: [unclosed\n")

    def repair_source(self) -> None:
        self.set_instances(self._specs)

    async def close(self) -> None:
        await super().close()
        if self._tmp is not None:
            self._tmp.cleanup()


def _to_yaml(specs: Sequence[InstanceSpec]) -> list[dict[str, str]]:
    return [{"identity": s.identity, "address": s.address, "role": s.role} for s in specs]


async def _all_healthy(address: str) -> ProbeResult:
    return ProbeResult(True)


def _prober(harness: BackendHarness) -> Prober:
    return Prober(harness.backend, probe=_all_healthy, interval=3600, timeout=1)


def _view(m: discovery_pb2.Membership) -> dict[str, tuple[str, str, int]]:
    role = {discovery_pb2.WRITABLE: "writable", discovery_pb2.READONLY: "readonly"}
    return {i.identity: (i.address, role.get(i.role, "?"), i.health) for i in m.instances}


def _expect(specs: Sequence[InstanceSpec]) -> dict[str, tuple[str, str, int]]:
    return {s.identity: (s.address, s.role, discovery_pb2.HEALTHY) for s in specs}


def spec(port: int, role: str = "writable", host: str = "127.0.0.1") -> InstanceSpec:
    """An InstanceSpec whose identity is its address (`host:port`)."""
    return InstanceSpec(identity=f"{host}:{port}", address=f"{host}:{port}", role=role)  # type: ignore[arg-type]


A, B, C = spec(19601), spec(19602, "readonly"), spec(19603, "readonly")


async def check_lists_source(factory: HarnessFactory) -> None:
    """The back end lists exactly its source's instances, roles and addresses."""
    harness = factory([A, B])
    try:
        listed = await harness.backend.list_instances()
        assert sorted(listed, key=lambda s: s.identity) == [A, B], listed
        assert await harness.backend.list_instances() == listed, "second list differs"
        membership = await _prober(harness).run_round()
        assert _view(membership) == _expect([A, B]), membership
        assert membership.backend_ok and not membership.backend_error
    finally:
        await harness.close()


async def check_join(factory: HarnessFactory) -> None:
    """An instance added to the source appears, in a newer version."""
    harness = factory([A])
    try:
        if not harness.can_change:
            raise NotApplicable("source cannot change")
        prober = _prober(harness)
        before = await prober.run_round()
        harness.set_instances([A, B])
        after = await prober.run_round()
        assert after.version > before.version
        assert _view(after) == _expect([A, B]), after
    finally:
        await harness.close()


async def check_leave(factory: HarnessFactory) -> None:
    """An instance removed from the source disappears, in a newer version."""
    harness = factory([A, B, C])
    try:
        if not harness.can_change:
            raise NotApplicable("source cannot change")
        prober = _prober(harness)
        before = await prober.run_round()
        harness.set_instances([A, C])
        after = await prober.run_round()
        assert after.version > before.version
        assert _view(after) == _expect([A, C]), after
    finally:
        await harness.close()


async def check_role_change(factory: HarnessFactory) -> None:
    """A role change keeps the identity and its health, in a newer version."""
    harness = factory([A, B])
    try:
        if not harness.can_change:
            raise NotApplicable("source cannot change")
        prober = _prober(harness)
        before = await prober.run_round()
        promoted = InstanceSpec(identity=B.identity, address=B.address, role="writable")
        harness.set_instances([A, promoted])
        await harness.backend.list_instances()  # the change is visible at once
        after = await prober.run_round()
        assert after.version == before.version + 1, (before.version, after.version)
        assert _view(after) == _expect([A, promoted]), after
    finally:
        await harness.close()


async def check_outage(factory: HarnessFactory) -> None:
    """An unreadable source raises BackendUnavailable; the last list is kept, then recovered."""
    harness = factory([A, B])
    try:
        if not harness.can_fail:
            raise NotApplicable("source cannot fail")
        prober = _prober(harness)
        healthy = await prober.run_round()
        harness.break_source()
        try:
            await harness.backend.list_instances()
        except BackendUnavailable as exc:
            assert str(exc), "BackendUnavailable without a reason"
        else:
            raise AssertionError("list_instances did not raise BackendUnavailable")
        down = await prober.run_round()
        assert not down.backend_ok and down.backend_error, down
        assert _view(down) == _view(healthy), "the last known list was not kept"
        assert down.version == healthy.version + 1
        harness.repair_source()
        repaired = await prober.run_round()
        assert repaired.backend_ok and not repaired.backend_error, repaired
        assert _view(repaired) == _expect([A, B])
        assert repaired.version == down.version + 1
    finally:
        await harness.close()


CHECKS: dict[str, Callable[[HarnessFactory], Awaitable[None]]] = {
    "lists_source": check_lists_source,
    "join": check_join,
    "leave": check_leave,
    "role_change": check_role_change,
    "outage": check_outage,
}
