"""The Writer: rows split by shard into log entries, deletes resolved to keys, answers built by the router (offline)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from google.protobuf import message as pb_message
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from mishards.common.errors import MilvusError
from mishards.common.hashing import shard_of
from mishards.router import validation, writes
from mishards.router.catalog import CollectionView, _view
from mishards.router.writes import LoggedWrite, WriteLog, Writer
from mishards.v1 import meta_pb2


def view(auto_id: bool = False, shards: int = 2) -> CollectionView:
    schema = schema_pb2.CollectionSchema(name="c")
    schema.fields.add(fieldID=100, name="pk", data_type=schema_pb2.Int64, is_primary_key=True, autoID=auto_id)
    vec = schema.fields.add(fieldID=101, name="vec", data_type=schema_pb2.FloatVector)
    vec.type_params.add(key="dim", value="2")
    placements = [
        meta_pb2.ShardPlacement(index=k, physical_name=f"mishards_1_s{k}", primary="wo") for k in range(shards)
    ]
    message = meta_pb2.Collection(
        id=1, name="c", shards_num=shards, shards=placements, schema=schema.SerializeToString(), partitions=["_default"]
    )
    return _view(message)


class Log(WriteLog):
    """Records each write's entries; answers with timestamp 777."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[int, list[Any]]]] = []

    async def append(
        self, view: CollectionView, method: str, parts: dict[int, list[pb_message.Message]]
    ) -> LoggedWrite:
        self.writes.append((method, parts))
        return LoggedWrite(777, {k: len(v) for k, v in parts.items()})


class Ids:
    async def allocate(self, count: int) -> np.ndarray:
        return np.arange(1000, 1000 + count, dtype=np.int64)


def writer(log: Log, matching: dict[int, list[Any]] | None = None) -> Writer:
    async def keys_matching(v: CollectionView, expr: str, partitions: list[str]) -> dict[int, list[Any]]:
        return matching or {}

    async def timestamp() -> int:
        return 555

    return Writer(log, Ids(), keys_matching, timestamp)


def insert(keys: list[int] | None, rows: int) -> milvus_pb2.InsertRequest:
    request = milvus_pb2.InsertRequest(collection_name="c", num_rows=rows)
    if keys is not None:
        request.fields_data.add(field_name="pk", type=schema_pb2.Int64).scalars.long_data.data.extend(keys)
    vec = request.fields_data.add(field_name="vec", type=schema_pb2.FloatVector)
    vec.vectors.dim = 2
    vec.vectors.float_vector.data.extend([0.5] * (2 * rows))
    return request


def test_rows_go_to_their_shards_as_one_write_and_the_router_answers() -> None:
    log = Log()
    keys = list(range(20))
    answer = asyncio.run(writer(log).write_rows(view(), insert(keys, 20), "Insert"))
    assert list(answer.IDs.int_id.data) == keys and answer.insert_cnt == 20 and answer.timestamp == 777
    ((method, parts),) = log.writes
    assert method == "Insert" and sorted(parts) == [0, 1]
    for shard, entries in parts.items():
        (entry,) = entries
        assert entry.collection_name == f"mishards_1_s{shard}"
        assert all(shard_of(k, 2) == shard for k in entry.fields_data[0].scalars.long_data.data)


def test_auto_id_keys_come_from_meta_blocks_and_an_upsert_counts_as_upserted() -> None:
    log = Log()
    answer = asyncio.run(writer(log).write_rows(view(auto_id=True), insert(None, 3), "Insert"))
    assert list(answer.IDs.int_id.data) == [1000, 1001, 1002]
    answer = asyncio.run(writer(log).write_rows(view(), insert([1, 2], 2), "Upsert"))
    assert answer.upsert_cnt == 2 and answer.insert_cnt == 0


def test_a_delete_by_keys_counts_every_key_named_and_returns_them_only_where_the_backend_does() -> None:
    log = Log()
    request = milvus_pb2.DeleteRequest(collection_name="c", expr="pk in [1, 2, 2, 3]")
    answer = asyncio.run(writer(log).delete(view(), request, validation.MILVUS))
    assert answer.delete_cnt == 4 and not answer.IDs.HasField("int_id") and answer.timestamp == 777
    answer = asyncio.run(writer(log).delete(view(), request, validation.LITE))
    assert list(answer.IDs.int_id.data) == [1, 2, 2, 3]
    method, parts = log.writes[0]
    assert method == "Delete"
    named = {k: [int(x) for x in e[0].expr.split("[")[1].rstrip("]").split(",")] for k, e in parts.items()}
    assert sorted(k for keys in named.values() for k in keys) == [1, 2, 2, 3]
    assert all(shard_of(k, 2) == shard for shard, keys in named.items() for k in keys)


def test_a_delete_by_expression_deletes_the_keys_a_strong_query_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writes, "DELETE_ENTRY_CHARS", 20)
    log = Log()
    request = milvus_pb2.DeleteRequest(collection_name="c", expr="vec_score > 1", partition_name="p1")
    v = view()
    v.message.partitions.append("p1")
    answer = asyncio.run(writer(log, {0: [10, 12, 14, 16, 18], 1: []}).delete(v, request, validation.MILVUS))
    assert answer.delete_cnt == 5
    ((_, parts),) = log.writes
    assert list(parts) == [0]  # a shard with no match gets no entry
    assert len(parts[0]) > 1  # cut into several entries, none with too long an expression
    assert all(e.partition_name == "p1" and e.collection_name == "mishards_1_s0" for e in parts[0])


def test_a_delete_that_matches_nothing_logs_nothing() -> None:
    log = Log()
    request = milvus_pb2.DeleteRequest(collection_name="c", expr="pk > 5")
    answer = asyncio.run(writer(log).delete(view(), request, validation.LITE))
    assert answer.delete_cnt == 0 and answer.timestamp == 555 and log.writes == []


def test_an_empty_expression_deletes_nothing_on_a_released_2_3_5_collection_and_is_refused_on_a_loaded_one() -> None:
    log = Log()
    request = milvus_pb2.DeleteRequest(collection_name="c", expr="")
    answer = asyncio.run(writer(log).delete(view(), request, validation.MILVUS))
    assert answer.delete_cnt == 0 and log.writes == []
    loaded = view()
    loaded.message.loaded = True
    with pytest.raises(MilvusError) as refused:
        asyncio.run(writer(log).delete(loaded, request, validation.MILVUS))
    assert refused.value.code == 1100 and "actual=empty expr" in refused.value.reason


def test_a_write_to_one_shard_keeps_only_what_a_physical_request_needs() -> None:
    log = Log()
    request = insert([1, 2, 3], 3)
    request.db_name = "db1"
    asyncio.run(writer(log).write_rows(view(shards=1), request, "Insert"))
    ((_, parts),) = log.writes
    (entry,) = parts[0]
    assert entry.collection_name == "mishards_1_s0" and entry.db_name == "" and entry.num_rows == 3
    assert [fd.field_name for fd in entry.fields_data] == ["pk", "vec"]
