"""Partition-key sharding: which shards a filter pins, and the reads and writes routed by it (offline)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from google.protobuf import message as pb_message
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common.errors import MilvusError
from mishards.common.hashing import shard_of
from mishards.router import validation
from mishards.router.catalog import CollectionView, _view
from mishards.router.pins import PIN_CACHE_MAX_EXPR, _cached_shards, conjuncts, pinned_shards, pinned_values
from mishards.router.reads import Reader
from mishards.router.writes import LoggedWrite, WriteLog, Writer, method_of
from mishards.v1 import meta_pb2

SHARDS = 4


def view(key_type: int = schema_pb2.VarChar, shard_key: str = "partition_key", shards: int = SHARDS) -> CollectionView:
    schema = schema_pb2.CollectionSchema(name="c")
    schema.fields.add(fieldID=100, name="pk", data_type=schema_pb2.Int64, is_primary_key=True)
    tenant = schema.fields.add(fieldID=101, name="tenant", data_type=key_type, is_partition_key=True)
    if key_type == schema_pb2.VarChar:
        tenant.type_params.add(key="max_length", value="64")
    vec = schema.fields.add(fieldID=102, name="vec", data_type=schema_pb2.FloatVector)
    vec.type_params.add(key="dim", value="2")
    placements = [meta_pb2.ShardPlacement(index=k, physical_name=f"mishards_1_s{k}") for k in range(shards)]
    message = meta_pb2.Collection(
        id=1,
        name="c",
        shards_num=shards,
        shards=placements,
        schema=schema.SerializeToString(),
        partitions=[f"_default_{i}" for i in range(16)],
        shard_key=shard_key,
    )
    return _view(message)


KEY = schema_pb2.FieldSchema(name="tenant", data_type=schema_pb2.VarChar)
INT_KEY = schema_pb2.FieldSchema(name="tenant", data_type=schema_pb2.Int64)


@pytest.mark.parametrize(
    ("expr", "values"),
    [
        ('tenant == "a"', {"a"}),
        ('"a" == tenant', {"a"}),
        ("tenant == 'a'", {"a"}),
        ('tenant in ["a", "b"]', {"a", "b"}),
        ('(tenant in ["a", "b"])', {"a", "b"}),
        ('x > 1 and tenant == "a"', {"a"}),
        ('tenant == "a" && x > 1', {"a"}),
        ('(x > 1 and (tenant == "a")) and y < 2', {"a"}),
        ('tenant in ["a", "b"] and tenant in ["b", "c"]', {"b"}),
        ('tenant == "a" and tenant == "b"', set()),
        ("tenant in []", set()),
        ('s == "x or y" and tenant == "a"', {"a"}),  # words inside strings are not operators
        ('tenant == "a\\"b"', {'a"b'}),
        ('f["or"] == 1 and tenant == "a"', {"a"}),
        ('x != 1 and tenant == "a"', {"a"}),
    ],
)
def test_filters_that_pin_the_key(expr: str, values: set[Any]) -> None:
    assert pinned_values(expr, KEY) == values


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "x > 1",
        'tenant == "a" or x > 1',
        'x > 1 || tenant == "a"',
        'not tenant == "a"',
        '!(tenant == "a")',
        'not (x > 1) and tenant == "a"',  # a top-level not: precedence is the backends' to say
        'tenant == "a" AND x > 1',  # `AND` may be and, or may not be: unsure
        'tenant == "a" OR x > 1',
        'tenant != "a"',
        'tenant not in ["a"]',
        'tenant like "a%"',
        'tenant > "a"',
        'tenant == "a" + "b"',
        "tenant == 1",  # an int for a varchar key: the backend answers, from every shard
        'tenants == "a"',
        'tenant == "a',
        '(tenant == "a"',
        'tenant == "\\x41"',  # Milvus reads \x41, milvus-lite does not: unsure
        'tenant == "a") and (x > 1',
        "tenant == {t}",  # a template left unexpanded
    ],
)
def test_filters_that_do_not_pin_the_key(expr: str) -> None:
    assert pinned_values(expr, KEY) is None


def test_int64_keys_are_read_as_both_backends_read_them() -> None:
    assert pinned_values("tenant in [1, -2, 3] and v > 0.5", INT_KEY) == {1, -2, 3}
    assert pinned_values("tenant == 0x10", INT_KEY) is None  # Milvus reads 16, milvus-lite nothing
    assert pinned_values('tenant == "1"', INT_KEY) is None
    assert pinned_values("tenant == 1.0", INT_KEY) is None


def test_conjuncts_flatten_parenthesised_conjunctions_only() -> None:
    assert [c.strip() for c in conjuncts("(a > 1 and b < 2) and c == 3")] == ["a > 1", "b < 2", "c == 3"]
    assert [c.strip() for c in conjuncts("(a > 1) + (b) and c")] == ["(a > 1) + (b)", "c"]


def test_only_collections_sharded_by_partition_key_are_pinned() -> None:
    v = view()
    expected = tuple(sorted({shard_of("a", SHARDS), shard_of("b", SHARDS)}))
    assert pinned_shards(v, 'tenant in ["a", "b"]') == expected
    assert pinned_shards(v, 'tenant == "a" and tenant == "b"') == (0,)  # no row matches: one shard answers so
    assert pinned_shards(v, "x > 1") is None
    assert pinned_shards(view(shard_key="primary"), 'tenant == "a"') is None  # created before: sharded by pk
    assert pinned_shards(view(shards=1), 'tenant == "a"') is None


def test_pinned_shards_are_cached_per_filter_key_and_shard_count() -> None:
    _cached_shards.cache_clear()
    v, ints = view(), view(schema_pb2.Int64)
    for _ in range(3):
        assert pinned_shards(v, 'tenant == "a"') == (shard_of("a", SHARDS),)
        assert pinned_shards(ints, "tenant == 7") == (shard_of(7, SHARDS),)
        assert pinned_shards(v, "tenant == 7") is None  # same filter, varchar key: no pin
        assert pinned_shards(view(shards=2), 'tenant == "a"') == (shard_of("a", 2),)
    info = _cached_shards.cache_info()
    assert (info.misses, info.hits) == (4, 8)
    long_expr = 'tenant == "a" and ' + " and ".join(f"x != {i}" for i in range(PIN_CACHE_MAX_EXPR // 8))
    assert len(long_expr) > PIN_CACHE_MAX_EXPR
    assert pinned_shards(v, long_expr) == (shard_of("a", SHARDS),)
    assert _cached_shards.cache_info().currsize == 4  # long filters are read every time, never kept


class FakeReader(Reader):
    """Each shard answers a query with its count; `sent` records the shards each read went to."""

    def __init__(self) -> None:
        self.sent: list[list[int]] = []

    async def _fan_out(self, view: CollectionView, method: str, request: Any, build: Any) -> list[Any]:
        self.sent.append([s.index for s in view.shards])
        out = []
        for s in view.shards:
            req = build(s.physical_name)
            if method == "Query":
                answer = milvus_pb2.QueryResults(status=common_pb2.Status(), output_fields=["count(*)"])
                column = answer.fields_data.add(field_name="count(*)", type=schema_pb2.Int64)
                column.scalars.long_data.data.append(10 + s.index)
                answer.session_ts = 99
            else:
                answer = milvus_pb2.SearchResults(status=common_pb2.Status())
                answer.results.num_queries = 1
                answer.results.top_k = int(dict((kv.key, kv.value) for kv in req.search_params)["topk"])
                answer.results.topks.append(0)
            out.append(answer)
        return out


def test_a_pinned_query_goes_to_its_shard_alone_and_is_answered_as_that_shard_answers() -> None:
    reader, v = FakeReader(), view()
    shard = shard_of("t7", SHARDS)
    request = milvus_pb2.QueryRequest(collection_name="c", expr='tenant == "t7"', output_fields=["count(*)"])
    answer = asyncio.run(reader.query(v, request))
    assert reader.sent == [[shard]]
    assert list(answer.fields_data[0].scalars.long_data.data) == [10 + shard]
    assert answer.collection_name == "c" and answer.session_ts == 0
    request = milvus_pb2.QueryRequest(collection_name="c", expr="pk > 0", output_fields=["count(*)"])
    answer = asyncio.run(reader.query(v, request))
    assert reader.sent[-1] == list(range(SHARDS))
    assert list(answer.fields_data[0].scalars.long_data.data) == [sum(10 + k for k in range(SHARDS))]


def test_a_templated_pin_counts_and_a_pinned_search_needs_no_merge() -> None:
    reader, v = FakeReader(), view()
    request = milvus_pb2.SearchRequest(collection_name="c", dsl="tenant in {ts}", nq=1, dsl_type=common_pb2.BoolExprV1)
    request.expr_template_values["ts"].array_val.string_data.data.extend(["t1", "t2"])
    request.search_params.add(key="topk", value="5")
    request.search_params.add(key="offset", value="2")
    asyncio.run(reader.search(v, request))
    assert reader.sent == [sorted({shard_of("t1", SHARDS), shard_of("t2", SHARDS)})]


class Log(WriteLog):
    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[int, list[Any]]]] = []

    async def append(
        self, view: CollectionView, method: str, parts: dict[int, list[pb_message.Message]]
    ) -> LoggedWrite:
        self.writes.append((method, parts))
        return LoggedWrite(777, {k: len(v) for k, v in parts.items()})


def writer(log: Log) -> Writer:
    async def keys_matching(v: CollectionView, expr: str, partitions: list[str]) -> dict[int, list[Any]]:
        return {}

    async def timestamp() -> int:
        return 555

    return Writer(log, None, keys_matching, timestamp)


def rows(request: Any, keys: list[int], tenants: list[str]) -> Any:
    request.collection_name, request.num_rows = "c", len(keys)
    request.fields_data.add(field_name="pk", type=schema_pb2.Int64).scalars.long_data.data.extend(keys)
    request.fields_data.add(field_name="tenant", type=schema_pb2.VarChar).scalars.string_data.data.extend(tenants)
    vec = request.fields_data.add(field_name="vec", type=schema_pb2.FloatVector)
    vec.vectors.dim = 2
    vec.vectors.float_vector.data.extend([0.5] * (2 * len(keys)))
    return request


def tenants_spread() -> list[str]:
    """Tenant names, at least two on each shard."""
    names = [f"t{i}" for i in range(64)]
    return [n for k in range(SHARDS) for n in [t for t in names if shard_of(t, SHARDS) == k][:2]]


def logged_rows(entry: Any) -> list[tuple[int, str]]:
    by_name = {fd.field_name: fd for fd in entry.fields_data}
    return list(zip(by_name["pk"].scalars.long_data.data, by_name["tenant"].scalars.string_data.data))


def test_inserts_go_to_their_partition_keys_shard() -> None:
    log, tenants = Log(), tenants_spread()
    keys = list(range(len(tenants)))
    answer = asyncio.run(writer(log).write_rows(view(), rows(milvus_pb2.InsertRequest(), keys, tenants), "Insert"))
    assert answer.insert_cnt == len(keys) and list(answer.IDs.int_id.data) == keys
    ((method, parts),) = log.writes
    assert method == "Insert" and sorted(parts) == list(range(SHARDS))
    for shard, entries in parts.items():
        assert all(shard_of(t, SHARDS) == shard for e in entries for _, t in logged_rows(e))


def test_an_upsert_deletes_its_keys_on_every_shard_then_inserts_the_rows_in_the_same_write() -> None:
    log = Log()
    request = rows(milvus_pb2.UpsertRequest(), [1, 2, 1], ["t1", "t1", "t1"])
    answer = asyncio.run(writer(log).write_rows(view(), request, "Upsert"))
    assert answer.upsert_cnt == 3
    ((method, parts),) = log.writes  # one log write
    home = shard_of("t1", SHARDS)
    assert sorted(parts) == list(range(SHARDS))
    for shard, entries in parts.items():
        delete = entries[0]
        assert isinstance(delete, milvus_pb2.DeleteRequest) and delete.expr == "pk in [1,2]"
        assert delete.collection_name == f"mishards_1_s{shard}"
        if shard == home:  # then the rows, as an insert: they are new on this shard
            (insert,) = entries[1:]
            assert isinstance(insert, milvus_pb2.InsertRequest) and insert.collection_name == f"mishards_1_s{shard}"
            assert logged_rows(insert) == [(1, "t1"), (2, "t1"), (1, "t1")]
        else:
            assert len(entries) == 1
    assert [method_of(e, method) for e in parts[home]] == ["Delete", "Insert"]


def test_an_upsert_validates_before_anything_is_logged() -> None:
    log = Log()
    request = rows(milvus_pb2.UpsertRequest(), [1, 2], ["t1", "t1"])
    request.num_rows = 3
    with pytest.raises(MilvusError):
        asyncio.run(writer(log).write_rows(view(), request, "Upsert"))
    assert log.writes == []


def test_a_delete_by_primary_key_goes_to_every_shard_and_counts_each_key_once() -> None:
    log = Log()
    request = milvus_pb2.DeleteRequest(collection_name="c", expr="pk in [1, 2, 3]")
    answer = asyncio.run(writer(log).delete(view(), request, validation.MILVUS))
    assert answer.delete_cnt == 3
    ((method, parts),) = log.writes
    assert method == "Delete" and sorted(parts) == list(range(SHARDS))
    assert all(e[0].expr == "pk in [1,2,3]" for e in parts.values())


def test_rows_of_a_collection_created_before_are_still_sharded_by_primary_key() -> None:
    log = Log()
    keys = list(range(20))
    request = rows(milvus_pb2.InsertRequest(), keys, ["t1"] * 20)
    asyncio.run(writer(log).write_rows(view(shard_key="primary"), request, "Insert"))
    ((_, parts),) = log.writes
    for shard, entries in parts.items():
        assert all(shard_of(pk, SHARDS) == shard for e in entries for pk, _ in logged_rows(e))
    assert np.unique([shard_of(k, SHARDS) for k in keys]).size == len(parts)
