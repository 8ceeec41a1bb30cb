"""Consul back end against the fake agent: blocking queries, health filter, restarts, timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends import BackendUnavailable, InstanceSpec
from mishards.discovery.backends.consul import ConsulBackend, next_index, parse_health_entries
from mishards.discovery.fakes import FakeConsul
from mishards.discovery.prober import Prober, ProbeResult
from mishards.discovery.testing import wait_membership
from mishards.v1 import discovery_pb2 as pb


@pytest.fixture
def fake() -> Iterator[FakeConsul]:
    server = FakeConsul(token="secret").start()
    yield server
    server.stop()


def backend_for(fake: FakeConsul, **settings: object) -> ConsulBackend:
    values: dict[str, object] = {
        "DISCOVERY_CONSUL_PORT": fake.port,
        "DISCOVERY_CONSUL_TOKEN": "secret",
        **settings,
    }
    backend = ConsulBackend(Settings(**values))  # type: ignore[arg-type]
    backend.wait = "5s"
    backend.backoff_initial, backend.backoff_max = 0.05, 0.2
    return backend


async def until(backend: ConsulBackend, expected: set[tuple[str, str, str]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    seen: object = None
    while time.monotonic() < deadline:
        try:
            seen = {(s.identity, s.address, s.role) for s in await backend.list_instances()}
        except BackendUnavailable as exc:
            seen = exc
        if seen == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {expected}, last saw {seen}")


async def until_unavailable(backend: ConsulBackend, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await backend.list_instances()
        except BackendUnavailable as exc:
            return str(exc)
        await asyncio.sleep(0.02)
    raise AssertionError("the back end never became unavailable")


def test_settings_errors() -> None:
    with pytest.raises(SettingsError, match="DISCOVERY_CONSUL_WO_SERVICE"):
        ConsulBackend(Settings(DISCOVERY_CONSUL_WO_SERVICE=""))
    with pytest.raises(SettingsError, match="both 'milvus'"):
        ConsulBackend(Settings(DISCOVERY_CONSUL_WO_SERVICE="milvus", DISCOVERY_CONSUL_RO_SERVICE="milvus"))
    assert "secret" not in repr(Settings(DISCOVERY_CONSUL_TOKEN="secret"))


def test_next_index_follows_the_consul_rules() -> None:
    assert next_index(0, 42) == 42
    assert next_index(42, 42) == 42  # wait timed out, nothing changed
    assert next_index(42, 7) == 0  # went backwards (restart): re-read at once
    assert next_index(0, 0) == 1  # a zero index would make every query return at once


def test_parse_entries_checks_health_tag_and_node_address() -> None:
    entries = [
        {
            "Node": {"Address": "10.0.0.9"},
            "Service": {"ID": "a", "Address": "", "Port": 19530, "Tags": ["mishards"]},
            "Checks": [{"Status": "passing"}],
        },
        {
            "Node": {"Address": "10.0.0.8"},
            "Service": {"ID": "b", "Address": "10.1.1.1", "Port": 19530, "Tags": ["mishards"]},
            "Checks": [{"Status": "passing"}, {"Status": "critical"}],
        },
        {"Node": {"Address": "10.0.0.7"}, "Service": {"ID": "c", "Port": 19530, "Tags": []}, "Checks": []},
        {"Node": {"Address": "10.0.0.6"}, "Service": {"ID": "", "Port": 19530, "Tags": ["mishards"]}, "Checks": []},
    ]
    assert parse_health_entries(entries, "readonly", tag="mishards") == [
        InstanceSpec("a", "10.0.0.9:19530", "readonly")  # the node's address when the service has none
    ]
    assert parse_health_entries(None, "writable") == []


def test_follows_with_blocking_queries(fake: FakeConsul) -> None:
    async def run() -> None:
        fake.register("milvus-wo", "wo-1", "127.0.0.1", 19601, tags=["mishards"])
        fake.register("milvus-ro", "ro-1", "127.0.0.1", 19602, tags=["mishards"])
        fake.register("milvus-ro", "ro-other", "127.0.0.1", 19609, tags=["other"])
        backend = backend_for(fake, DISCOVERY_CONSUL_TAG="mishards")
        try:
            await until(backend, {("wo-1", "127.0.0.1:19601", "writable"), ("ro-1", "127.0.0.1:19602", "readonly")})
            # Idle: the followers sit in blocking queries instead of polling.
            before = len(fake.queries)
            await asyncio.sleep(0.5)
            assert len(fake.queries) - before <= 2
            blocking = [params for _, params in fake.queries if "index" in params]
            assert blocking and all(p["wait"] == "5s" and p["passing"] == "1" for p in blocking)
            assert all(p.get("tag") == "mishards" for _, p in fake.queries)
            # A failing Consul health check removes the instance at once.
            fake.set_passing("ro-1", False)
            await until(backend, {("wo-1", "127.0.0.1:19601", "writable")})
            fake.set_passing("ro-1", True)
            # A move between the services (role change) is seen as one instance, newest role.
            fake.register("milvus-wo", "ro-1", "127.0.0.1", 19602, tags=["mishards"])
            await until(backend, {("wo-1", "127.0.0.1:19601", "writable"), ("ro-1", "127.0.0.1:19602", "writable")})
        finally:
            await backend.close()

    asyncio.run(run())


def test_survives_a_restart_with_the_index_reset(fake: FakeConsul) -> None:
    async def run() -> None:
        for i in range(20):  # push the index well above where a restarted agent starts
            fake.register("milvus-wo", "wo-1", "127.0.0.1", 19601 + i % 2)
        backend = backend_for(fake)
        try:
            await until(backend, {("wo-1", "127.0.0.1:19602", "writable")})
            fake.restart(reset_index=True)  # blocked queries are cut, indexes start low again
            fake.register("milvus-wo", "wo-2", "127.0.0.1", 19603)
            # Without resetting its index the follower would block on an index Consul
            # will not reach for a long time, and never see wo-2.
            await until(
                backend,
                {("wo-1", "127.0.0.1:19602", "writable"), ("wo-2", "127.0.0.1:19603", "writable")},
            )
        finally:
            await backend.close()

    asyncio.run(run())


def test_outage_and_timeout_are_unavailable_then_recovered(fake: FakeConsul) -> None:
    async def run() -> None:
        fake.register("milvus-wo", "wo-1", "127.0.0.1", 19601)
        backend = backend_for(fake)
        # py-consul allows a blocking query wait + wait/16 + request_timeout: 1.56 s here.
        backend.wait, backend.request_timeout = "1s", 0.5
        try:
            await until(backend, {("wo-1", "127.0.0.1:19601", "writable")})
            fake.fail(500, "No cluster leader")
            error = await until_unavailable(backend)
            # both services are watched; the error names the one whose query failed first
            assert "No cluster leader" in error and ("milvus-wo" in error or "milvus-ro" in error), error
            fake.recover()
            await until(backend, {("wo-1", "127.0.0.1:19601", "writable")})
            fake.hang(3.0)  # the agent accepts but does not answer in time
            fake.deregister("wo-1")  # wakes the blocked queries; the next ones hang
            error = await until_unavailable(backend)
            assert "Timeout" in error or "timed out" in error, error
            fake.hang(0)
            await until(backend, set(), timeout=10)
        finally:
            await backend.close()

    asyncio.run(run())


def test_acl_token_and_datacenter_are_sent(fake: FakeConsul) -> None:
    async def run() -> None:
        backend = backend_for(fake, DISCOVERY_CONSUL_TOKEN="wrong")
        try:
            assert "ACL" in await until_unavailable(backend)
        finally:
            await backend.close()
        backend = backend_for(fake, DISCOVERY_CONSUL_DATACENTER="dc2")
        try:
            assert "dc2" in await until_unavailable(backend)
        finally:
            await backend.close()

    asyncio.run(run())


def test_failing_check_and_deregistration_reach_watchers_without_a_probe_round(fake: FakeConsul) -> None:
    async def healthy(address: str) -> ProbeResult:
        return ProbeResult(True)

    def names(m: pb.Membership) -> set[str]:
        return {i.identity for i in m.instances}

    async def run() -> None:
        fake.register("milvus-wo", "wo-1", "10.0.0.1", 19530)
        fake.register("milvus-ro", "ro-1", "10.0.0.2", 19530)
        backend = backend_for(fake)
        prober = Prober(backend, probe=healthy, interval=3600)
        await prober.start()
        try:
            assert names(prober.board.current()) == {"wo-1", "ro-1"}
            fake.set_passing("ro-1", False)  # Consul's own health check fails
            await wait_membership(prober.board, lambda m: names(m) == {"wo-1"})
            fake.deregister("wo-1")
            await wait_membership(prober.board, lambda m: names(m) == set())
            assert prober.rounds == 1, "a probe round ran: the changes were not published on the query's signal"
        finally:
            await prober.stop()
            await backend.close()

    asyncio.run(run())
