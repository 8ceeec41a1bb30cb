"""Prober and membership board: damping, versions, outages, watchers."""

from __future__ import annotations

import asyncio
import time

import pytest

from mishards.discovery.backends import InstanceSpec, MemoryBackend
from mishards.discovery.membership import MembershipBoard
from mishards.discovery.prober import Prober, ProbeResult
from mishards.v1 import discovery_pb2 as pb

WO = InstanceSpec("wo:19601", "10.0.0.1:19601", "writable")
RO = InstanceSpec("ro:19602", "10.0.0.2:19602", "readonly")


class FakeHealth:
    """A scripted health function: address -> healthy, or the error to report."""

    def __init__(self) -> None:
        self.state: dict[str, bool | str] = {}
        self.calls: list[str] = []

    async def __call__(self, address: str) -> ProbeResult:
        self.calls.append(address)
        value = self.state.get(address, True)
        if value is True:
            return ProbeResult(True)
        return ProbeResult(False, str(value))


def health_of(m: pb.Membership) -> dict[str, tuple[int, str]]:
    return {i.identity: (i.health, i.reason) for i in m.instances}


def test_join_needs_consecutive_good_probes_and_loss_is_immediate() -> None:
    backend = MemoryBackend(instances=[WO])
    fake = FakeHealth()
    prober = Prober(backend, probe=fake, healthy_after=3)

    async def run() -> None:
        m = await prober.run_round()
        assert health_of(m) == {"wo:19601": (pb.HEALTH_UNKNOWN, "")}
        m = await prober.run_round()
        assert health_of(m)["wo:19601"][0] == pb.HEALTH_UNKNOWN
        fake.state[WO.address] = "connection refused"  # a failure resets the streak
        m = await prober.run_round()
        assert health_of(m) == {"wo:19601": (pb.DOWN, "connection refused")}
        fake.state[WO.address] = True
        for _ in range(2):
            m = await prober.run_round()
            assert health_of(m) == {"wo:19601": (pb.DOWN, "connection refused")}
        m = await prober.run_round()
        assert health_of(m) == {"wo:19601": (pb.HEALTHY, "")}
        fake.state[WO.address] = "UNAVAILABLE: gone"
        m = await prober.run_round()  # one failed probe is enough
        assert health_of(m) == {"wo:19601": (pb.DOWN, "UNAVAILABLE: gone")}

    asyncio.run(run())


def test_versions_count_changes_only() -> None:
    backend = MemoryBackend(instances=[WO])
    fake = FakeHealth()
    prober = Prober(backend, probe=fake)

    async def run() -> None:
        board = prober.board
        assert board.current().version == 0 and not board.current().backend_ok
        m = await prober.run_round()  # v1: WO listed (unknown), v2: WO healthy
        assert m.version == 2 and m.backend_ok
        assert (await prober.run_round()).version == 2  # nothing changed
        backend.set_instances([WO, RO])
        m = await prober.run_round()  # v3: RO joins unknown, v4: RO healthy
        assert m.version == 4
        ro = next(i for i in m.instances if i.identity == RO.identity)
        assert (ro.role, ro.health, ro.address) == (pb.READONLY, pb.HEALTHY, RO.address)
        fake.state[RO.address] = "a"
        assert (await prober.run_round()).version == 5
        fake.state[RO.address] = "b"  # a different reason is a change too
        assert (await prober.run_round()).version == 6
        backend.set_instances([WO])
        m = await prober.run_round()
        assert m.version == 7 and [i.identity for i in m.instances] == [WO.identity]

    asyncio.run(run())


def test_outage_keeps_last_list_and_keeps_probing() -> None:
    backend = MemoryBackend(instances=[WO, RO])
    fake = FakeHealth()
    prober = Prober(backend, probe=fake)

    async def run() -> None:
        healthy = await prober.run_round()
        backend.fail("consul: connection refused")
        backend.set_instances([])  # hidden by the outage
        fake.state[RO.address] = "down"
        m = await prober.run_round()
        assert not m.backend_ok and m.backend_error == "consul: connection refused"
        assert [i.identity for i in m.instances] == [i.identity for i in healthy.instances]
        assert health_of(m)[RO.identity] == (pb.DOWN, "down")
        backend.recover()
        m = await prober.run_round()
        assert m.backend_ok and m.backend_error == "" and list(m.instances) == []

    asyncio.run(run())


def test_unexpected_backend_errors_and_duplicates_are_outages() -> None:
    class Buggy(MemoryBackend):
        async def list_instances(self) -> list[InstanceSpec]:
            raise KeyError("oops")

    async def run() -> None:
        m = await Prober(Buggy(), probe=FakeHealth()).run_round()
        assert not m.backend_ok and m.backend_error == "KeyError: 'oops'"
        dup = MemoryBackend(instances=[WO, InstanceSpec(WO.identity, "x:1", "readonly")])
        m = await Prober(dup, probe=FakeHealth()).run_round()
        assert not m.backend_ok and "twice" in m.backend_error

    asyncio.run(run())


def test_role_and_address_changes() -> None:
    backend = MemoryBackend(instances=[RO])
    fake = FakeHealth()
    prober = Prober(backend, probe=fake, healthy_after=2)

    async def run() -> None:
        await prober.run_round()
        m = await prober.run_round()
        assert health_of(m)[RO.identity][0] == pb.HEALTHY
        backend.set_instances([InstanceSpec(RO.identity, RO.address, "writable")])
        m = await prober.run_round()  # a role change keeps health
        assert (m.instances[0].role, m.instances[0].health) == (pb.WRITABLE, pb.HEALTHY)
        backend.set_instances([InstanceSpec(RO.identity, "10.9.9.9:19602", "writable")])
        m = await prober.run_round()  # a new address must prove itself again
        assert (m.instances[0].address, m.instances[0].health) == (
            "10.9.9.9:19602",
            pb.HEALTH_UNKNOWN,
        )
        assert fake.calls[-1] == "10.9.9.9:19602"

    asyncio.run(run())


def test_probes_run_concurrently_and_time_out() -> None:
    instances = [InstanceSpec(f"i{n}:1", f"10.0.0.{n}:1", "readonly") for n in range(10)]

    async def slow(address: str) -> ProbeResult:
        if address == "10.0.0.0:1":
            await asyncio.sleep(30)  # hangs: the prober's own deadline ends it
        await asyncio.sleep(0.2)
        return ProbeResult(True)

    prober = Prober(MemoryBackend(instances=instances), probe=slow, timeout=0.1)

    async def run() -> pb.Membership:
        return await prober.run_round()

    started = time.monotonic()
    m = asyncio.run(run())
    assert time.monotonic() - started < 2.0  # ten 0.2 s probes in parallel, one cut at 1.1 s
    assert health_of(m)["i0:1"] == (pb.DOWN, "health probe timed out after 0.1s")
    assert all(h == pb.HEALTHY for i, (h, _) in health_of(m).items() if i != "i0:1")


def test_probe_exceptions_mean_down() -> None:
    async def boom(address: str) -> ProbeResult:
        raise ConnectionError("refused")

    m = asyncio.run(Prober(MemoryBackend(instances=[WO]), probe=boom).run_round())
    assert health_of(m) == {WO.identity: (pb.DOWN, "ConnectionError: refused")}


def test_background_loop_probes_on_interval_and_stops() -> None:
    backend = MemoryBackend(instances=[WO])
    fake = FakeHealth()
    prober = Prober(backend, probe=fake, interval=0.05)

    async def run() -> None:
        await prober.start()
        assert prober.rounds == 1  # start() returns after the first round
        await asyncio.sleep(0.3)
        await prober.stop()
        rounds = prober.rounds
        assert 3 <= rounds <= 8
        await asyncio.sleep(0.1)
        assert prober.rounds == rounds

    asyncio.run(run())


def test_healthy_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="healthy_after"):
        Prober(MemoryBackend(), healthy_after=0)


def _instance(name: str) -> pb.Instance:
    return pb.Instance(identity=name, address=name, role=pb.WRITABLE, health=pb.HEALTHY)


def test_board_watch_gets_snapshot_then_every_version_in_order() -> None:
    async def run() -> None:
        board = MembershipBoard()
        board.publish([_instance("a")], backend_ok=True)
        stream = board.watch()
        first = await anext(stream)
        assert first.version == 1 and [i.identity for i in first.instances] == ["a"]
        board.publish([_instance("a"), _instance("b")], backend_ok=True)
        board.publish([_instance("b")], backend_ok=True)
        assert not board.publish([_instance("b")], backend_ok=True)  # no change, no version
        board.publish([_instance("b")], backend_ok=False, backend_error="x")
        got = [await anext(stream) for _ in range(3)]
        assert [m.version for m in got] == [2, 3, 4]
        assert [m.backend_ok for m in got] == [True, True, False]
        board.close()
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        assert board.watcher_count == 0

    asyncio.run(run())


def test_slow_watcher_skips_to_latest_without_blocking_others() -> None:
    async def run() -> None:
        board = MembershipBoard(queue_size=4)
        slow, fast = board.watch(), board.watch()
        await anext(slow)
        await anext(fast)
        seen_fast = []
        for n in range(10):
            board.publish([_instance(f"i{n}")], backend_ok=True)  # never blocks
            seen_fast.append((await anext(fast)).version)
        assert seen_fast == list(range(1, 11))
        behind = [(await anext(slow)).version for _ in range(4)]
        assert behind == [7, 8, 9, 10]  # oldest pending dropped, ends on the latest
        board.close()
        assert [m async for m in slow] == []
        assert [m async for m in fast] == []

    asyncio.run(run())
