"""Limits against a real Milvus 2.3.5: the router answers what the direct instance answers.

Each bad request goes as raw gRPC (pymilvus refuses most of them) to the router and to the
cluster's first instance, and the (code, legacy code, reason) must be equal. Inputs that
crash 2.3.5 (a negative nq, a DSL-type search) go to the router only: it must refuse them
and every backend must still be running. Unit tests: services/router/tests/test_limits.py.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2

from mishards.cli.cluster import Cluster

DIM = 2
Stubs = tuple[milvus_pb2_grpc.MilvusServiceStub, milvus_pb2_grpc.MilvusServiceStub]


def answer(response: Any) -> tuple[int, int, str]:
    st = response if isinstance(response, common_pb2.Status) else response.status
    return st.code, st.error_code, st.reason


@pytest.fixture(scope="module")
def both(router: MilvusClient, direct: MilvusClient) -> Iterator[str]:
    """The same small collection through the router and on the direct instance."""
    name = "limits_" + uuid.uuid4().hex[:8]
    rows = [{"id": i, "vector": [float(i), 1.0]} for i in range(1, 6)]
    for client in (router, direct):
        client.create_collection(name, dimension=DIM, primary_field_name="id", auto_id=False)
        client.insert(name, rows)
    yield name
    for client in (router, direct):
        client.drop_collection(name)


def search(name: str, nq: int = 1, dsl_type: int = common_pb2.BoolExprV1, **params: str) -> milvus_pb2.SearchRequest:
    vector = struct.pack(f"{DIM}f", 1.0, 1.0)
    group = common_pb2.PlaceholderGroup(
        placeholders=[
            common_pb2.PlaceholderValue(tag="$0", type=common_pb2.PlaceholderType.FloatVector, values=[vector])
        ]
    )
    kv = {"anns_field": "vector", "metric_type": "COSINE", "params": "{}", **params}
    return milvus_pb2.SearchRequest(
        collection_name=name,
        dsl_type=dsl_type,  # type: ignore[arg-type]
        placeholder_group=group.SerializeToString(),
        nq=nq,
        search_params=[common_pb2.KeyValuePair(key=k, value=v) for k, v in kv.items()],
    )


def query(name: str, **params: str) -> milvus_pb2.QueryRequest:
    kv = [common_pb2.KeyValuePair(key=k, value=v) for k, v in params.items()]
    return milvus_pb2.QueryRequest(collection_name=name, expr="id >= 0", output_fields=["id"], query_params=kv)


SEARCHES = [
    {"topk": "-1"},
    {"topk": "0"},
    {"topk": "16385"},
    {"topk": "abc"},
    {},
    {"topk": "3", "offset": "-1"},
    {"topk": "3", "offset": "abc"},
    {"topk": "16384", "offset": "1"},
]
QUERIES = [
    {"limit": "-1"},
    {"limit": "0"},
    {"limit": "3", "offset": "-1"},
    {"limit": "abc"},
    {"limit": "16385"},
    {"limit": "3", "offset": "abc"},
]


@pytest.mark.parametrize("params", SEARCHES, ids=str)
def test_search_window_errors_match(stubs: Stubs, both: str, params: dict[str, str]) -> None:
    via_router, direct = stubs
    expected = answer(direct.Search(search(both, **params), timeout=30))
    assert expected[0] != 0
    assert answer(via_router.Search(search(both, **params), timeout=30)) == expected


def test_nq_too_large_matches(stubs: Stubs, both: str) -> None:
    via_router, direct = stubs
    expected = answer(direct.Search(search(both, nq=16385, topk="3"), timeout=30))
    assert answer(via_router.Search(search(both, nq=16385, topk="3"), timeout=30)) == expected


@pytest.mark.parametrize("params", QUERIES, ids=str)
def test_query_window_errors_match(stubs: Stubs, both: str, params: dict[str, str]) -> None:
    via_router, direct = stubs
    expected = answer(direct.Query(query(both, **params), timeout=30))
    assert expected[0] != 0
    assert answer(via_router.Query(query(both, **params), timeout=30)) == expected


@pytest.mark.parametrize("shards_num", [17, 2**31 - 1])
def test_too_many_shards_match(stubs: Stubs, name: str, shards_num: int) -> None:
    schema = schema_pb2.CollectionSchema(
        name=name,
        fields=[
            schema_pb2.FieldSchema(fieldID=100, name="id", data_type=DataType.INT64, is_primary_key=True),
            schema_pb2.FieldSchema(
                fieldID=101,
                name="v",
                data_type=DataType.FLOAT_VECTOR,
                type_params=[common_pb2.KeyValuePair(key="dim", value="2")],
            ),
        ],
    )
    request = milvus_pb2.CreateCollectionRequest(
        collection_name=name, schema=schema.SerializeToString(), shards_num=shards_num
    )
    via_router, direct = stubs
    expected = answer(direct.CreateCollection(request, timeout=30))
    assert expected == (65535, 1, "maximum shards's number should be limited to 16")
    assert answer(via_router.CreateCollection(request, timeout=30)) == expected


@pytest.mark.parametrize("case", ["negative nq", "dsl type"])
def test_inputs_that_crash_2_3_5_are_refused_by_the_router(
    cluster: Cluster, stubs: Stubs, both: str, router: MilvusClient, case: str
) -> None:
    request = (
        search(both, nq=-1, topk="3") if case == "negative nq" else search(both, dsl_type=common_pb2.Dsl, topk="3")
    )
    code, _, reason = answer(stubs[0].Search(request, timeout=30))
    assert code in (65535, 1100) and reason
    assert all(i.is_running() for i in cluster.instances)
    hits = router.search(both, [[5.0, 1.0]], limit=2, consistency_level="Strong")
    assert [h["id"] for h in hits[0]] == [5, 4]
