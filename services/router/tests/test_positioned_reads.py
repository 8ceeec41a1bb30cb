"""Positioned reads: a Strong, Session or guarantee timestamp becomes, per shard, a copy that applied it and that copy's clock.

The topology and meta are fakes: `FakeMeta.GetReadPositions` answers as meta's
`MetaServicer.GetReadPositions` does (per asked shard: the position the timestamp needs and
each applying copy's position and clock). What goes to each copy is captured from
the shard caller the Reader is given, resolving per-copy requests for every copy the shard may try.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common.errors import MilvusError
from mishards.router import consistency
from mishards.router.catalog import CollectionView, _view
from mishards.router.consistency import DEADLINE
from mishards.router.meta_client import MetaClient
from mishards.router.reads import Reader
from mishards.router.topology import Target
from mishards.v1 import discovery_pb2, meta_pb2

SESSION, STRONG, BOUNDED, CUSTOMIZED = common_pb2.Session, common_pb2.Strong, common_pb2.Bounded, common_pb2.Customized
ADDRESS = {"wo": "127.0.0.1:1", "ro": "127.0.0.1:2"}


def view(default_level: int = BOUNDED, replicas: bool = False) -> CollectionView:
    schema = schema_pb2.CollectionSchema(name="c")
    schema.fields.add(name="pk", data_type=schema_pb2.Int64, is_primary_key=True)
    shards = [
        meta_pb2.ShardPlacement(
            index=k, physical_name=f"mishards_1_s{k}", primary="wo", replicas=["ro"] if replicas else []
        )
        for k in range(2)
    ]
    message = meta_pb2.Collection(
        id=1,
        name="c",
        shards_num=2,
        shards=shards,
        schema=schema.SerializeToString(),
        consistency_level=default_level,
    )
    return _view(message)


class FakeMembership:
    def by_identity(self) -> dict[str, discovery_pb2.Instance]:
        return {
            i: discovery_pb2.Instance(identity=i, address=a, health=discovery_pb2.HEALTHY) for i, a in ADDRESS.items()
        }


class FakeTopology:
    """Ready replicas first, then the primary, as `Topology.read_targets` orders them."""

    membership = FakeMembership()

    def read_targets(self, shard: meta_pb2.ShardPlacement, collection: str, primary_only: bool) -> list[Target]:
        replicas = [] if primary_only else [Target(ADDRESS[r], "replica") for r in shard.replicas]
        return replicas + [Target(ADDRESS[shard.primary], "primary")]

    def suspect(self, address: str) -> None: ...

    def started(self, target: Target) -> None: ...

    def finished(self, target: Target) -> None: ...


class FakeMeta:
    """Meta's read positions: shard -> (position needed, {identity: (applied position, copy clock)})."""

    def __init__(self, positions: dict[int, tuple[int, dict[str, tuple[int, int]]]] | None = None) -> None:
        self.positions = positions or {}
        self.asked: list[meta_pb2.ReadPositionsRequest] = []
        self.down = False

    async def GetReadPositions(
        self, request: meta_pb2.ReadPositionsRequest, timeout: float, wait_for_ready: bool = False
    ) -> meta_pb2.ReadPositionsResponse:
        self.asked.append(request)
        if self.down:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())
        out = meta_pb2.ReadPositionsResponse()
        for k in request.shards:
            seq, copies = self.positions[k]
            shard = out.shards.add(shard=k, seq=seq)
            for identity, (applied, ts) in copies.items():
                shard.copies.add(instance=identity, applied_seq=applied, backend_timestamp=ts)
        return out


# per shard: [(address, level, guarantee_timestamp, use_default_consistency)] in the order the copies are tried
Sent = list[list[tuple[str, int, int, bool]]]


def read(meta: FakeMeta | None, v: CollectionView, **fields: Any) -> Sent:
    sent: Sent = []

    async def capture(v: Any, method: str, calls: Any, timeout: float, failover: Any, raw: bool = False) -> list[Any]:
        for call in calls:
            tries = []
            for t in call.targets:
                r = call.request_for(t)
                tries.append((t.address, r.consistency_level, r.guarantee_timestamp, r.use_default_consistency))
            sent.append(tries)
        return []

    reader = Reader(FakeTopology(), capture, 5.0, meta=MetaClient(meta), read_wait=7.0)  # type: ignore[arg-type]
    request = milvus_pb2.QueryRequest(**fields)

    def build(physical: str) -> milvus_pb2.QueryRequest:
        out = milvus_pb2.QueryRequest()
        out.CopyFrom(request)
        out.collection_name = physical
        return out

    asyncio.run(reader._fan_out(v, "Query", request, build))
    return sent


WO, RO = ADDRESS["wo"], ADDRESS["ro"]


def test_a_session_timestamp_is_read_where_each_shard_has_applied_it() -> None:
    """Router A wrote shard 0 at ts 200: its log position there is 8, which the primary has applied (clock 600)."""
    meta = FakeMeta({0: (8, {"wo": (8, 600)}), 1: (3, {"wo": (4, 900)})})
    sent = read(meta, view(), consistency_level=SESSION, guarantee_timestamp=200)
    assert sent == [[(WO, SESSION, 600, False)], [(WO, SESSION, 900, False)]]
    assert [(r.collection_id, r.timestamp, list(r.shards), r.wait_seconds) for r in meta.asked] == [
        (1, 200, [0, 1], 7.0)  # READ_WAIT_TIMEOUT: meta waits that long at most for the primaries
    ]


def test_an_explicit_guarantee_timestamp_is_mapped_the_same_way() -> None:
    meta = FakeMeta({0: (8, {"wo": (8, 600)}), 1: (3, {"wo": (4, 900)})})
    sent = read(meta, view(), consistency_level=CUSTOMIZED, guarantee_timestamp=200)
    assert sent == [[(WO, CUSTOMIZED, 600, False)], [(WO, CUSTOMIZED, 900, False)]]


def test_replicas_that_reached_the_position_serve_session_reads_first() -> None:
    meta = FakeMeta({0: (8, {"wo": (9, 600), "ro": (8, 4000)}), 1: (5, {"wo": (5, 700), "ro": (4, 3000)})})
    sent = read(meta, view(replicas=True), consistency_level=SESSION, guarantee_timestamp=100)
    assert sent == [
        [(RO, SESSION, 4000, False), (WO, SESSION, 600, False)],  # each copy at its own clock
        [(WO, SESSION, 700, False)],  # the replica is behind: not tried
    ]


def test_strong_reads_use_copies_that_have_applied_the_whole_log() -> None:
    """Strong is the end of every shard's log; a copy there serves it at its clock (Milvus
    ignores a timestamp with Strong, so the read goes as Customized)."""
    meta = FakeMeta({0: (9, {"wo": (9, 600), "ro": (9, 4000)}), 1: (5, {"wo": (5, 700), "ro": (4, 3000)})})
    sent = read(meta, view(replicas=True), consistency_level=STRONG)
    assert sent == [
        [(RO, CUSTOMIZED, 4000, False), (WO, CUSTOMIZED, 600, False)],
        [(WO, CUSTOMIZED, 700, False)],  # the replica is behind
    ]
    assert [(r.timestamp, list(r.shards)) for r in meta.asked] == [(consistency.LOG_END, [0, 1])]


def test_a_copy_whose_clock_is_unknown_is_read_strong() -> None:
    """After meta restarts, a copy has applied nothing since: its clock is 0, and Strong shows all it has."""
    meta = FakeMeta({0: (8, {"wo": (8, 0)}), 1: (3, {"wo": (3, 0)})})
    sent = read(meta, view(), consistency_level=SESSION, guarantee_timestamp=200)
    assert sent == [[(WO, STRONG, 0, False)], [(WO, STRONG, 0, False)]]


def test_a_shard_no_copy_of_which_reached_the_position_fails_the_read_naming_it() -> None:
    """No read falls back to a primary that may lag: a client must never miss a write it was told is done."""
    meta = FakeMeta({0: (8, {"wo": (8, 600)}), 1: (5, {"wo": (4, 700)})})
    with pytest.raises(MilvusError) as failed:
        read(meta, view(), consistency_level=STRONG)
    assert failed.value.code == 2
    assert "shard 1 of collection c has no copy that applied the writes this read must see" in failed.value.reason
    assert "log position 5; its primary wo is at 4" in failed.value.reason


def test_without_meta_a_positioned_read_fails() -> None:
    meta = FakeMeta()
    meta.down = True
    with pytest.raises(MilvusError) as failed:
        read(meta, view(replicas=True), consistency_level=SESSION, guarantee_timestamp=9)
    assert failed.value.code == 2 and "meta did not say where" in failed.value.reason


def test_the_clients_deadline_bounds_the_wait() -> None:
    meta = FakeMeta({0: (1, {"wo": (1, 5)}), 1: (1, {"wo": (1, 5)})})
    token = DEADLINE.set(time.monotonic() + 2.0)
    try:
        read(meta, view(), consistency_level=STRONG)
    finally:
        DEADLINE.reset(token)
    assert 0 < meta.asked[0].wait_seconds <= 2.0


def test_a_collection_whose_default_is_session_keeps_the_clients_timestamp() -> None:
    """pymilvus sends no level (use_default_consistency) but its last write's timestamp."""
    meta = FakeMeta({0: (8, {"wo": (8, 555)}), 1: (3, {"wo": (3, 777)})})
    sent = read(meta, view(SESSION), use_default_consistency=True, guarantee_timestamp=100)
    assert sent == [[(WO, SESSION, 555, False)], [(WO, SESSION, 777, False)]]


def test_other_levels_drop_the_timestamp() -> None:
    v = view(SESSION, replicas=True)
    meta = FakeMeta()
    meta.down = True  # Bounded without meta: Milvus's own Bounded, replicas first
    bounded = read(meta, v, consistency_level=BOUNDED, guarantee_timestamp=100)
    assert bounded == [[(RO, BOUNDED, 0, False), (WO, BOUNDED, 0, False)]] * 2
    eventually = read(FakeMeta(), v, consistency_level=common_pb2.Eventually, guarantee_timestamp=100)
    assert eventually == [[(RO, common_pb2.Eventually, 0, False), (WO, common_pb2.Eventually, 0, False)]] * 2
    no_write_yet = read(FakeMeta(), v, use_default_consistency=True, guarantee_timestamp=1)
    assert no_write_yet == [[(WO, 0, 1, True)]] * 2  # as pymilvus sent it: Milvus reads what it has


def test_a_bounded_read_uses_copies_that_applied_what_was_acknowledged_staleness_ago() -> None:
    """Shard 0's replica has every write of that moment (read at its clock of it); shard 1's lags: the primary serves."""
    meta = FakeMeta({0: (8, {"wo": (9, 600), "ro": (8, 4000)}), 1: (5, {"wo": (5, 700), "ro": (3, 3000)})})
    sent = read(meta, view(replicas=True), consistency_level=BOUNDED)
    assert sent == [
        [(RO, CUSTOMIZED, 4000, False), (WO, CUSTOMIZED, 600, False)],
        [(WO, CUSTOMIZED, 700, False)],
    ]
    (asked,) = meta.asked
    bound_ms = (asked.timestamp >> 18) - int(time.time() * 1000)
    assert -5000 <= bound_ms <= -5000 + 1000 * consistency.BOUNDED_REFRESH + 50  # BOUNDED_STALENESS_MS ago
    assert asked.wait_seconds == 0  # no waiting while some copy has it


def test_bounded_positions_are_reused_for_a_moment() -> None:
    meta = FakeMeta({0: (1, {"wo": (1, 5)}), 1: (1, {"wo": (1, 5)})})
    sent: list[Any] = []

    async def capture(v: Any, method: str, calls: Any, timeout: float, failover: Any, raw: bool = False) -> list[Any]:
        sent.append(calls)
        return []

    reader = Reader(FakeTopology(), capture, 5.0, meta=MetaClient(meta), read_wait=7.0)  # type: ignore[arg-type]
    request = milvus_pb2.QueryRequest(consistency_level=BOUNDED)

    async def twice() -> None:
        for _ in range(2):
            await reader._fan_out(view(), "Query", request, lambda physical: milvus_pb2.QueryRequest())

    asyncio.run(twice())
    assert len(sent) == 2 and len(meta.asked) == 1
