"""Promotion and planned switches in the mutation log, and the rebalancing plan (offline).

The appliers run against a real SQLite store and `FakeMilvus` (test_mutation_log), which keeps
rows per primary key as one Milvus collection does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pymilvus.grpc_gen import common_pb2
from test_mutation_log import PRIMARY, FakeMilvus, append, eventually, insert, mutation_log

from mishards.common.errors import MilvusError
from mishards.common.settings import Settings
from mishards.meta import mutations
from mishards.meta.moves import Move, ShardMover, _drop_name
from mishards.meta.store import COPY_READY, READY, ROLE_FENCED, CollectionSpec, ShardSpec, Store

REPLICA = "ro:19530"


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mutations, "BACKOFF_FIRST", 0.01)
    monkeypatch.setattr(mutations, "BACKOFF_MAX", 0.05)
    monkeypatch.setattr(mutations, "STUCK_BACKOFF_MAX", 0.05)
    monkeypatch.setattr(mutations, "MARK_INTERVAL", 0.02)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path}/meta.db")
    s.migrate()
    spec = s.add_collection("default", "c", b"", 1, 0, [], 1, [PRIMARY])
    s.set_state(spec.id, READY)
    s.add_copy(1, 0, REPLICA, "replica", COPY_READY)
    return s


def test_a_promoted_replica_applies_the_rest_of_the_log_and_the_lost_primary_is_fenced(store: Store) -> None:
    milvus, replica = FakeMilvus(), FakeMilvus()
    milvus.others[REPLICA] = replica

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.start()
            await append(log, insert(1))
            await eventually(lambda: log.applier(1, 0, REPLICA).applied_seq == 1)  # type: ignore[union-attr]
            milvus.down = True  # the primary is lost; writes keep being logged
            for k in (2, 3):
                await append(log, insert(k), wait=False)
            assert log.applier(1, 0, REPLICA).applied_seq == 1  # type: ignore[union-attr]  # it follows its primary
            store.switch_primary(1, 0, REPLICA, ROLE_FENCED, "lost")
            await log.switch_primary(1, 0, REPLICA, lost=True)
            await eventually(lambda: log.applier(1, 0, REPLICA).applied_seq == 3)  # type: ignore[union-attr]
            assert log.applier(1, 0, PRIMARY) is None  # fenced: it applies nothing more
            await log.append(1, {0: REPLICA}, [insert(4)], True)  # applied mode: the new primary answers
            assert store.copy_info(1, 0, PRIMARY).role == ROLE_FENCED  # type: ignore[union-attr]

    asyncio.run(scenario())
    assert replica.rows == {1: 1, 2: 1, 3: 1, 4: 1}


def test_an_entry_the_lost_primary_applied_and_the_new_one_refuses_is_aborted_with_an_alert(store: Store) -> None:
    milvus, replica = FakeMilvus(), FakeMilvus()
    milvus.others[REPLICA] = replica

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.start()
            replica.down = True  # the replica lags; the primary applies 1 and 2, then is lost
            await append(log, insert(1))
            await append(log, insert(2))
            replica.down = False
            # entry 1 is refused, alone or in a run with 2 (however the applier batches them)
            replica.refused = {1: common_pb2.Status(code=1100, reason="refused")}
            store.switch_primary(1, 0, REPLICA, ROLE_FENCED, "lost")
            await log.switch_primary(1, 0, REPLICA, lost=True)
            await eventually(lambda: log.applier(1, 0, REPLICA).applied_seq == 2)  # type: ignore[union-attr]
            a = log.applier(1, 0, REPLICA)
            assert a is not None and not a.stuck and "aborted after promotion: entry 1" in a.alert
            # entry 1 is marked aborted, unless the log has already dropped it (every copy is past it)
            assert [e.aborted for e in store.entries_after(1, 0, 0) if e.seq == 1] in ([True], [])

    asyncio.run(scenario())
    assert replica.rows == {2: 1}


def test_a_planned_switch_holds_the_primary_until_the_replica_has_reached_it(store: Store) -> None:
    milvus, replica = FakeMilvus(), FakeMilvus()
    milvus.others[REPLICA] = replica

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.start()
            for k in range(1, 4):
                await append(log, insert(k))
            position = await log.hold_primary(1, 0)
            await append(log, insert(4), wait=False)  # logged while held: the old primary does not apply it
            await asyncio.sleep(0.2)
            assert log.applier(1, 0, PRIMARY).applied_seq == position == 3  # type: ignore[union-attr]
            await eventually(lambda: log.applier(1, 0, REPLICA).applied_seq == position)  # type: ignore[union-attr]
            store.switch_primary(1, 0, REPLICA, "retired", "switched")
            await log.switch_primary(1, 0, REPLICA, lost=False)
            await eventually(lambda: log.applier(1, 0, REPLICA).applied_seq == 4)  # type: ignore[union-attr]

    asyncio.run(scenario())
    assert milvus.rows == {1: 1, 2: 1, 3: 1}  # the old primary stopped at the switch
    assert replica.rows == {1: 1, 2: 1, 3: 1, 4: 1}
    assert [k for _, ids in replica.calls for k in ids] == [1, 2, 3, 4]  # each entry once


def test_a_held_primary_that_is_released_goes_on(store: Store) -> None:
    milvus = FakeMilvus()

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.start()
            await append(log, insert(1))
            await log.hold_primary(1, 0)
            await append(log, insert(2), wait=False)
            await asyncio.sleep(0.1)
            assert log.applier(1, 0, PRIMARY).applied_seq == 1  # type: ignore[union-attr]
            log.release_primary(1, 0)
            await eventually(lambda: log.applier(1, 0, PRIMARY).applied_seq == 2)  # type: ignore[union-attr]

    asyncio.run(scenario())


# --- the rebalancing plan -----------------------------------------------------------------------------


def spec(cid: int, primaries: list[str]) -> CollectionSpec:
    shards = [ShardSpec(k, f"mishards_{cid}_s{k}", p) for k, p in enumerate(primaries)]
    return CollectionSpec(cid, "default", f"c{cid}", b"", len(primaries), 0, [], 0, True, READY, shards)


def mover() -> ShardMover:
    return ShardMover(None, None, None, None, None, Settings(), None, asyncio.Lock())  # type: ignore[arg-type]


def test_a_new_writable_instance_takes_primaries_until_none_holds_more_than_its_share() -> None:
    m = mover()
    # 4 shards over 3 writable instances: at most ceil(4/3) = 2 each; a holds 3
    plan = m.plan({1: spec(1, ["a", "a", "a", "b"])}, {"a", "b", "c"}, {"a", "b", "c"})
    assert [(cid, target) for cid, _, target in plan] == [(1, "c")]
    assert mover().plan({1: spec(1, ["a", "a", "b", "b"])}, {"a", "b", "c"}, {"a", "b", "c"}) == []  # within bounds


def test_primaries_leave_read_only_and_draining_instances_and_a_lost_source_is_not_moved() -> None:
    m = mover()
    collections = {1: spec(1, ["ro", "a"]), 2: spec(2, ["drained", "b"]), 3: spec(3, ["dead", "a"])}
    plan = m.plan(collections, writable={"a", "b", "c"}, healthy={"a", "b", "c", "ro", "drained"})
    moved = {(cid, shard) for cid, shard, _ in plan}
    assert (1, 0) in moved and (2, 0) in moved and (3, 0) not in moved
    assert all(target in {"a", "b", "c"} for _, _, target in plan)


def test_instances_with_a_move_in_flight_take_no_other() -> None:
    m = mover()
    m.moves[(9, 0)] = Move(9, "c9", 0, "a", "c")  # a and c are busy
    plan = m.plan({1: spec(1, ["a", "a", "a", "b", "b", "b"])}, {"a", "b", "c", "d"}, {"a", "b", "c", "d"})
    assert plan == [(1, 3, "d")]  # b gives one to d; a waits for its move to end


def test_no_writable_instance_no_plan() -> None:
    assert mover().plan({1: spec(1, ["ro"])}, set(), {"ro"}) == []


def test_no_move_goes_to_an_instance_whose_old_copy_of_the_shard_waits_to_be_dropped() -> None:
    async def scenario() -> None:
        m = mover()
        # a promote left a retired copy of shard 0 on "a" (dropped in DRAIN_GRACE_SECONDS); the
        # primary is on read-only "ro" and must move to a writable instance: not to "a" yet
        m._spawn(asyncio.sleep(30), _drop_name(1, 0, "a"))
        assert m.dropping(1, 0, "a") and not m.dropping(1, 0, "b")
        assert m.plan({1: spec(1, ["ro"])}, {"a", "b"}, {"a", "b", "ro"}) == [(1, 0, "b")]
        assert m.plan({1: spec(1, ["ro"])}, {"a"}, {"a", "ro"}) == []  # it waits for the drop
        with pytest.raises(MilvusError, match="is being dropped"):
            m.start_move(spec(1, ["ro"]), 0, "a")
        for t in list(m._tasks):
            t.cancel()

    asyncio.run(scenario())


def test_a_delayed_drop_leaves_a_copy_that_is_live_again_alone(store: Store) -> None:
    dropped: list[str] = []

    class Backends:
        def stub(self, address: str) -> object:
            raise AssertionError(f"nothing may be dropped on {address}")

    async def scenario() -> None:
        m = ShardMover(store, None, Backends(), None, None, Settings(), None, asyncio.Lock())  # type: ignore[arg-type]
        # the copy on REPLICA was retired, then a move put a live copy back in its place
        await m._drop_later("mishards_1_s0", 1, 0, REPLICA)
        dropped.append("returned")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("mishards.meta.moves.DRAIN_GRACE_SECONDS", 0)
        asyncio.run(scenario())
    assert dropped == ["returned"] and store.copy_info(1, 0, REPLICA).role == "replica"  # type: ignore[union-attr]


def test_a_move_planned_from_a_stale_catalog_leaves_the_primary_it_finds_on_the_target_alone(store: Store) -> None:
    # the plan read the catalog just before another move switched: it thinks REPLICA is the primary
    # and moves the shard "to" PRIMARY, which already is the primary
    stale = spec(1, [REPLICA])
    m = ShardMover(store, None, None, None, None, Settings(), None, asyncio.Lock())  # type: ignore[arg-type]
    asyncio.run(m._move(stale, Move(1, "c", 0, REPLICA, PRIMARY)))
    assert store.copy_info(1, 0, PRIMARY).role == "primary"  # type: ignore[union-attr]
    assert store.copy_info(1, 0, REPLICA).role == "replica"  # type: ignore[union-attr]
    assert (1, 0) not in m.moves


def test_a_drained_replica_is_dropped_later_unless_a_copy_is_back_in_its_place(store: Store) -> None:
    from mishards.meta.replicas import ReplicaManager
    from mishards.v1 import discovery_pb2

    calls: list[tuple[str, str]] = []

    class Stub:
        def __init__(self, address: str) -> None:
            self.address = address

        async def DropCollection(self, request: object, **kwargs: object) -> common_pb2.Status:  # noqa: N802
            calls.append((self.address, request.collection_name))  # type: ignore[attr-defined]
            return common_pb2.Status()

    class Backends:
        def stub(self, address: str) -> Stub:
            return Stub(address)

        def metadata(self) -> tuple[()]:
            return ()

    class Membership:
        def by_identity(self) -> dict[str, discovery_pb2.Instance]:
            return {
                REPLICA: discovery_pb2.Instance(identity=REPLICA, address="127.0.0.1:1", health=discovery_pb2.HEALTHY)
            }

    async def scenario() -> None:
        r = ReplicaManager(store, Membership(), Backends(), None, Settings(), None, ddl_lock=asyncio.Lock())  # type: ignore[arg-type]
        await r._drop_later(1, 0, "mishards_1_s0", REPLICA)  # a replica is in the catalog there again
        assert calls == []
        store.remove_copy(1, 0, REPLICA)
        await r._drop_later(1, 0, "mishards_1_s0", REPLICA)  # the drained copy is gone from the catalog
        assert calls == [("127.0.0.1:1", "mishards_1_s0")]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("mishards.meta.replicas.DRAIN_GRACE_SECONDS", 0)
        asyncio.run(scenario())
