"""Conformance checks every discovery back end must pass, and harnesses for the built-ins.

A harness drives a back end's *source* (the settings, the file, the in-memory list)
the way an operator would; the checks then look at what the back end lists and at the
membership the prober publishes from it. A new back end gets a harness and runs every
check in `CHECKS` (see services/discovery/tests/test_discovery_conformance.py).
"""

from __future__ import annotations

import abc
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence

import grpc
import yaml

from mishards.common.settings import Settings
from mishards.discovery.backends.base import (
    BackendUnavailable,
    DiscoveryBackend,
    InstanceSpec,
)
from mishards.discovery.backends.file import FileBackend
from mishards.discovery.backends.follow import FollowingBackend
from mishards.discovery.backends.hostport import split_host_port
from mishards.discovery.backends.memory import MemoryBackend
from mishards.discovery.backends.static import StaticBackend
from mishards.discovery.membership import MembershipBoard
from mishards.discovery.prober import Prober, ProbeResult
from mishards.v1 import discovery_pb2, discovery_pb2_grpc


class NotApplicable(Exception):
    """The check needs something the back end's source cannot do (e.g. change at run time)."""


class BackendHarness(abc.ABC):
    """Drives one back end's source for the conformance checks."""

    #: The source can change while the back end runs (join, leave, role change).
    can_change: bool = True
    #: The source can become unreadable (outage).
    can_fail: bool = True
    #: The back end signals changes (`subscribe`) instead of waiting to be listed.
    signals_changes: bool = False

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

    async def settle(self) -> None:
        """Wait until the back end has seen the source's last change.

        Back ends that read their source at every list see it at once; followed back
        ends (blocking queries, watches) see it a moment later.
        """
        return

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


class FollowedHarness(BackendHarness):
    """Base of harnesses whose back end follows its source in the background.

    `settle()` waits until the back end lists exactly the instances last set (or,
    while the source is broken, until it raises BackendUnavailable).
    """

    settle_timeout: float = 10.0
    signals_changes = True

    def __init__(self, backend: DiscoveryBackend, specs: Sequence[InstanceSpec]) -> None:
        super().__init__(backend)
        self._expected = sorted(specs, key=lambda s: s.identity)
        self._broken = False
        if isinstance(backend, FollowingBackend):
            # Tests break and repair the source often; back off briefly.
            backend.backoff_initial = 0.05  # type: ignore[attr-defined]
            backend.backoff_max = 0.2  # type: ignore[attr-defined]

    def _expect(self, specs: Sequence[InstanceSpec]) -> None:
        self._expected = sorted(specs, key=lambda s: s.identity)

    async def settle(self) -> None:
        deadline = time.monotonic() + self.settle_timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                listed = sorted(await self.backend.list_instances(), key=lambda s: s.identity)
            except BackendUnavailable as exc:
                if self._broken:
                    return
                last = exc
            else:
                if not self._broken and listed == self._expected:
                    return
                last = listed
            await asyncio.sleep(0.02)
        raise AssertionError(f"{type(self).__name__}: back end did not follow its source; last saw {last}")


class ConsulHarness(FollowedHarness):
    """The consul back end over a `FakeConsul`, driven through the real py-consul client.

    Writable instances are registered in `milvus-wo`, read-only ones in `milvus-ro`;
    an outage is the agent answering 500 ("No cluster leader").
    """

    def __init__(self, specs: Sequence[InstanceSpec]) -> None:
        from mishards.discovery.backends.consul import ConsulBackend
        from mishards.discovery.fakes.consul import FakeConsul

        self.fake = FakeConsul().start()
        self._register(specs)
        backend = ConsulBackend(Settings(DISCOVERY_CONSUL_HOST="127.0.0.1", DISCOVERY_CONSUL_PORT=self.fake.port))
        backend.wait = "5s"
        super().__init__(backend, specs)

    def _register(self, specs: Sequence[InstanceSpec]) -> None:
        known = self.fake.registrations()
        wanted = {s.identity: s for s in specs}
        for identity in known:
            if identity not in wanted:
                self.fake.deregister(identity)
        for s in specs:
            host, port = split_host_port(s.address, 19530)
            service = "milvus-wo" if s.role == "writable" else "milvus-ro"
            reg = known.get(s.identity)
            if reg is None or (reg.service, reg.address, reg.port) != (service, host, port):
                self.fake.register(service, s.identity, host, port)

    def set_instances(self, specs: Sequence[InstanceSpec]) -> None:
        self._register(specs)
        self._expect(specs)

    def break_source(self) -> None:
        self._broken = True
        self.fake.fail()

    def repair_source(self) -> None:
        self._broken = False
        self.fake.recover()

    async def close(self) -> None:
        await super().close()
        self.fake.stop()


class KubernetesHarness(FollowedHarness):
    """The kubernetes back end over a `FakeKubernetes`, driven through the official client.

    Each spec is a ready pod named after its identity, with the role label and a
    `grpc` container port; an outage is the API server answering 503.
    """

    namespace = "milvus"

    def __init__(self, specs: Sequence[InstanceSpec]) -> None:
        from kubernetes import config as k8s_config

        from mishards.discovery.backends.kubernetes import KubernetesBackend
        from mishards.discovery.fakes.kubernetes import FakeKubernetes

        self.fake = FakeKubernetes().start()
        self._tmp = tempfile.TemporaryDirectory(prefix="mishards-kube-")
        kubeconfig = self.fake.write_kubeconfig(os.path.join(self._tmp.name, "config"), self.namespace)
        self._put(specs)
        settings = Settings(DISCOVERY_KUBERNETES_NAMESPACE=self.namespace, DISCOVERY_KUBERNETES_POLL_INTERVAL=1)
        backend = KubernetesBackend(settings, api_client=k8s_config.new_client_from_config(config_file=kubeconfig))
        super().__init__(backend, specs)

    def _put(self, specs: Sequence[InstanceSpec]) -> None:
        from mishards.discovery.fakes.kubernetes import make_pod

        known = self.fake.pods(self.namespace)
        wanted = {s.identity: s for s in specs}
        for name in known:
            if name not in wanted:
                self.fake.delete_pod(name, self.namespace)
        for s in specs:
            host, port = split_host_port(s.address, 19530)
            pod = make_pod(s.identity, host, port, s.role, namespace=self.namespace)
            old = known.get(s.identity)
            if old is None or (old["metadata"]["labels"], old["status"]["podIP"]) != (
                pod["metadata"]["labels"],
                host,
            ):
                self.fake.put_pod(pod)

    def set_instances(self, specs: Sequence[InstanceSpec]) -> None:
        self._put(specs)
        self._expect(specs)

    def break_source(self) -> None:
        self._broken = True
        self.fake.fail()

    def repair_source(self) -> None:
        self._broken = False
        self.fake.recover()

    async def close(self) -> None:
        await super().close()
        self.fake.stop()
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
        await harness.settle()
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
        await harness.settle()
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
        await harness.settle()
        await harness.backend.list_instances()  # the change is visible once settled
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
        await harness.settle()
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
        await harness.settle()
        repaired = await prober.run_round()
        assert repaired.backend_ok and not repaired.backend_error, repaired
        assert _view(repaired) == _expect([A, B])
        assert repaired.version == down.version + 1
    finally:
        await harness.close()


async def check_health_loss_and_recovery(factory: HarnessFactory) -> None:
    """A failing instance is announced DOWN at once, stays listed, and returns after N good probes."""
    harness = factory([A, B])
    failing: set[str] = set()

    async def probe(address: str) -> ProbeResult:
        return ProbeResult(False, "CheckHealth: connection refused") if address in failing else ProbeResult(True)

    try:
        prober = Prober(harness.backend, probe=probe, interval=3600, timeout=1, healthy_after=2)
        first = await prober.run_round()
        assert {i.health for i in first.instances} == {discovery_pb2.HEALTH_UNKNOWN}, first  # damped join
        healthy = await prober.run_round()
        assert _view(healthy) == _expect([A, B]), healthy
        failing.add(B.address)
        down = await prober.run_round()
        assert down.version == healthy.version + 1
        assert _view(down)[B.identity][2] == discovery_pb2.DOWN, down
        assert _view(down)[A.identity][2] == discovery_pb2.HEALTHY
        assert [i.reason for i in down.instances if i.identity == B.identity] == ["CheckHealth: connection refused"]
        failing.clear()
        damped = await prober.run_round()
        assert _view(damped)[B.identity][2] == discovery_pb2.DOWN, "a join needs healthy_after good probes"
        recovered = await prober.run_round()
        assert _view(recovered) == _expect([A, B]), recovered
    finally:
        await harness.close()


async def wait_membership(
    board: MembershipBoard, condition: Callable[[discovery_pb2.Membership], bool], timeout: float = 5.0
) -> discovery_pb2.Membership:
    """The board's first snapshot within `timeout` seconds that meets `condition`; AssertionError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        current = board.current()
        if condition(current):
            return current
        assert time.monotonic() < deadline, f"membership never met the condition; last {current}"
        await asyncio.sleep(0.02)


async def check_prompt_leave(factory: HarnessFactory) -> None:
    """A back end that signals changes gets a removal published at once, without a probe round."""
    harness = factory([A, B])
    try:
        if not harness.signals_changes:
            raise NotApplicable("the back end does not signal changes; it is listed every probe interval")
        prober = _prober(harness)  # an hour between probe rounds
        await prober.start()
        try:
            assert _view(prober.board.current()) == _expect([A, B])
            harness.set_instances([A])
            left = await wait_membership(prober.board, lambda m: B.identity not in _view(m))
            assert _view(left) == _expect([A])
            assert prober.rounds == 1, "published by a probe round, not by the back end's signal"
        finally:
            await prober.stop()
    finally:
        await harness.close()


async def check_watcher_resume(factory: HarnessFactory) -> None:
    """A WatchInstances stream starts with the full snapshot; a watcher that reconnects
    after missing changes gets the current snapshot, which holds every one of them."""
    from mishards.discovery.main import DiscoveryService

    harness = factory([A, B])
    try:
        if not harness.can_change:
            raise NotApplicable("source cannot change")
        settings = Settings(DISCOVERY_PROBE_INTERVAL=3600, DISCOVERY_PROBE_TIMEOUT=1, DISCOVERY_HEALTHY_AFTER=1)
        service = DiscoveryService(settings, backend=harness.backend, probe=_all_healthy, host="127.0.0.1", port=0)
        await service.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
                stub = discovery_pb2_grpc.DiscoveryStub(channel)
                stream = stub.WatchInstances(discovery_pb2.WatchInstancesRequest())
                first = await stream.read()
                assert _view(first) == _expect([A, B]), first
                harness.set_instances([A, B, C])
                await harness.settle()
                await service.prober.run_round()
                joined = await stream.read()
                while _view(joined) != _expect([A, B, C]):
                    assert joined.version > first.version
                    joined = await stream.read()
                stream.cancel()  # the watcher goes away ...
                harness.set_instances([B, C])  # ... and misses a leave and a role change
                await harness.settle()
                await service.prober.run_round()
                promoted = InstanceSpec(identity=C.identity, address=C.address, role="writable")
                harness.set_instances([B, promoted])
                await harness.settle()
                await service.prober.run_round()
                resumed = await stub.WatchInstances(discovery_pb2.WatchInstancesRequest()).read()
                assert resumed.version > joined.version
                assert _view(resumed) == _expect([B, promoted]), resumed
                assert resumed == await stub.ListInstances(discovery_pb2.ListInstancesRequest())
        finally:
            await service.stop()
    finally:
        await harness.close()


CHECKS: dict[str, Callable[[HarnessFactory], Awaitable[None]]] = {
    "lists_source": check_lists_source,
    "join": check_join,
    "leave": check_leave,
    "role_change": check_role_change,
    "outage": check_outage,
    "health_loss_and_recovery": check_health_loss_and_recovery,
    "prompt_leave": check_prompt_leave,
    "watcher_resume": check_watcher_resume,
}
