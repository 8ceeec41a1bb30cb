"""The in-memory Milvus the servicer tests run on answers as Milvus does, for what it models."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from memory_milvus import MemoryBackends, Refused, column, compile_filter, placeholder_group
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.router import literals

SCHEMA = schema_pb2.CollectionSchema(name="p")
SCHEMA.fields.add(fieldID=100, name="id", data_type=schema_pb2.Int64, is_primary_key=True)
SCHEMA.fields.add(fieldID=101, name="tag", data_type=schema_pb2.VarChar)
SCHEMA.fields.add(fieldID=102, name="vec", data_type=schema_pb2.FloatVector).type_params.add(key="dim", value="2")
FIELDS = {f.name: f for f in SCHEMA.fields}
ROWS: list[dict[str, Any]] = [
    {"id": -(2**63), "tag": 'a"b', "vec": (0.0, 0.0)},
    {"id": 1, "tag": "x", "vec": (1.0, 0.0)},
    {"id": 2, "tag": "y", "vec": (0.0, 1.0)},
    {"id": 3, "tag": "x", "vec": (3.0, 4.0)},
]


def matching(expr: str) -> list[int]:
    match = compile_filter(expr, FIELDS)
    return [r["id"] for r in ROWS if match(r)]


@pytest.mark.parametrize(
    ("expr", "ids"),
    [
        ("", [-(2**63), 1, 2, 3]),
        ('tag == "x"', [1, 3]),
        ("id in [2, 3, 9]", [2, 3]),
        ("id not in [2, 3]", [-(2**63), 1]),
        ('id > 1 and tag != "y"', [3]),
        ('(id == 1 or id == 2) and tag == "x"', [1]),
        ('tag in ["x", "y"] || id <= 1', [-(2**63), 1, 2, 3]),
        ("id >= 1 && id < 3", [1, 2]),
    ],
)
def test_filters_of_the_modelled_subset(expr: str, ids: list[int]) -> None:
    assert matching(expr) == ids


def test_the_router_delete_expressions_are_read() -> None:
    assert matching(literals.delete_expr(FIELDS["id"], [-(2**63), 2])) == [-(2**63), 2]
    assert matching(literals.delete_expr(FIELDS["tag"], ['a"b', "y"])) == [-(2**63), 2]  # quoted as Milvus reads it


@pytest.mark.parametrize("expr", ["tag like 'x%'", "json_contains(tag, 1)", "nope == 1", "id in [1", "id == "])
def test_an_expression_outside_the_subset_is_refused_as_milvus_words_it(expr: str) -> None:
    with pytest.raises(Refused) as info:
        compile_filter(expr, FIELDS)
    assert info.value.status.code == 1100
    assert info.value.status.reason.startswith(f"cannot parse expression: {expr}, error: ")


def _insert(name: str, rows: list[dict[str, Any]]) -> milvus_pb2.InsertRequest:
    request = milvus_pb2.InsertRequest(collection_name=name, num_rows=len(rows))
    request.fields_data.extend(column(f, [r[f.name] for r in rows]) for f in SCHEMA.fields)
    return request


def test_an_instance_keeps_duplicate_keys_upserts_replace_and_answers_in_milvus_messages() -> None:
    backends = MemoryBackends()
    milvus = backends.add("m:1")
    milvus.create_collection("p", SCHEMA)

    async def scenario() -> Any:
        await milvus.Insert(_insert("p", ROWS[1:3]))
        await milvus.Insert(_insert("p", ROWS[1:2]))  # Milvus 2.3 keeps both rows of key 1
        twice = len(milvus.rows("p"))
        await milvus.Upsert(
            milvus_pb2.UpsertRequest.FromString(_insert("p", [dict(ROWS[1], tag="z")]).SerializeToString())
        )
        request = milvus_pb2.SearchRequest(collection_name="p", nq=1, placeholder_group=placeholder_group([[1.0, 1.0]]))
        for key, value in {"topk": "5", "metric_type": "L2", "round_decimal": "2"}.items():
            request.search_params.add(key=key, value=value)
        raw = await backends.raw("m:1", "Search")(request)
        missing = await milvus.Query(milvus_pb2.QueryRequest(collection_name="gone", expr=""))
        return twice, raw, missing

    twice, raw, missing = asyncio.run(scenario())

    assert twice == 3
    assert sorted((r["id"], r["tag"]) for r in milvus.rows("p")) == [(1, "z"), (2, "y")]
    answer = milvus_pb2.SearchResults.FromString(raw)
    assert answer.status.code == 0 and answer.collection_name == "p"
    assert list(answer.results.topks) == [2] and list(answer.results.ids.int_id.data) == [1, 2]
    assert list(answer.results.scores) == [1.0, 1.0]  # squared L2, ties by smaller key
    assert missing.status.code == 100 and missing.status.error_code == common_pb2.CollectionNotExists
    assert missing.status.reason == "collection not found[database=default][collection=gone]"
    assert backends.raw_calls == [("m:1", "Search")]


def test_faults_a_stopped_instance_and_an_unknown_address() -> None:
    backends = MemoryBackends()
    milvus = backends.add("m:1")
    milvus.create_collection("p", SCHEMA)
    milvus.fail("Query", common_pb2.Status(code=5, reason="boom"))

    async def scenario() -> Any:
        failed = await milvus.Query(milvus_pb2.QueryRequest(collection_name="p"))
        then = await milvus.Query(milvus_pb2.QueryRequest(collection_name="p"))
        milvus.down = True
        for stub in (milvus, backends.stub("elsewhere:1")):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Query(milvus_pb2.QueryRequest(collection_name="p"))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        return failed, then

    failed, then = asyncio.run(scenario())

    assert (failed.status.code, failed.status.reason) == (5, "boom")
    assert then.status.code == 0  # a fault answers once
    assert milvus.methods() == ["Query"] * 3
