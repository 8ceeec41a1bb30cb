"""Session reads: a client's Mishards timestamp becomes each shard's newest backend write timestamp."""

from __future__ import annotations

from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.router.catalog import CollectionView, _view
from mishards.router.reads import SessionClock, consistency_of
from mishards.v1 import meta_pb2

SESSION, STRONG, BOUNDED = common_pb2.Session, common_pb2.Strong, common_pb2.Bounded


def view(default_level: int) -> CollectionView:
    schema = schema_pb2.CollectionSchema(name="c")
    schema.fields.add(name="pk", data_type=schema_pb2.Int64, is_primary_key=True)
    return _view(meta_pb2.Collection(name="c", schema=schema.SerializeToString(), consistency_level=default_level))


def clock() -> SessionClock:
    c = SessionClock()
    c.record("mishards_1_s0", backend_ts=555, mishards_ts=1000)
    c.record("mishards_1_s1", backend_ts=0, mishards_ts=900)  # a backend that gave no timestamp
    return c


def read(
    c: SessionClock, default_level: int, physical: str = "mishards_1_s0", **fields: object
) -> milvus_pb2.QueryRequest:
    request = milvus_pb2.QueryRequest(**fields)  # type: ignore[arg-type]
    c.apply(request, physical, consistency_of(view(default_level), request))
    return request


def test_a_session_timestamp_this_router_issued_reads_at_the_shards_newest_write() -> None:
    out = read(clock(), BOUNDED, consistency_level=SESSION, guarantee_timestamp=1000)
    assert (out.consistency_level, out.guarantee_timestamp) == (SESSION, 555)


def test_a_collection_whose_default_is_session_keeps_the_clients_timestamp() -> None:
    """pymilvus sends no level (use_default_consistency) but its last write's timestamp."""
    out = read(clock(), SESSION, use_default_consistency=True, guarantee_timestamp=1000)
    assert out.use_default_consistency and out.guarantee_timestamp == 555
    newer = read(clock(), SESSION, use_default_consistency=True, guarantee_timestamp=1001)
    assert (newer.use_default_consistency, newer.consistency_level, newer.guarantee_timestamp) == (False, STRONG, 0)


def test_timestamps_this_router_cannot_place_are_read_strong() -> None:
    newer = read(clock(), BOUNDED, consistency_level=SESSION, guarantee_timestamp=1001)
    assert (newer.consistency_level, newer.guarantee_timestamp) == (STRONG, 0)
    untimed = read(clock(), BOUNDED, physical="mishards_1_s1", consistency_level=SESSION, guarantee_timestamp=900)
    assert (untimed.consistency_level, untimed.guarantee_timestamp) == (STRONG, 0)


def test_other_levels_drop_the_timestamp() -> None:
    bounded = read(clock(), SESSION, consistency_level=BOUNDED, guarantee_timestamp=1000)
    assert (bounded.consistency_level, bounded.guarantee_timestamp) == (BOUNDED, 0)
    default_bounded = read(clock(), BOUNDED, use_default_consistency=True, guarantee_timestamp=1000)
    assert default_bounded.use_default_consistency and default_bounded.guarantee_timestamp == 0
    no_write_yet = read(clock(), SESSION, use_default_consistency=True, guarantee_timestamp=1)
    assert no_write_yet.guarantee_timestamp == 1  # as pymilvus sent it: Milvus reads what it has
