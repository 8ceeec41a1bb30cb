"""Parity cases found by running the same calls against the router and a direct Milvus (issue 20).

Each runs on both embedded backends; where the backends differ, the router follows the one
the cluster runs (docs/compatibility.md, "Per backend").
"""

from __future__ import annotations

from typing import Any

import grpc
from conftest import connect
from differential import Pair, assert_same_error, assert_same_failure, run_both
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc


def _both(pair: Pair) -> tuple[MilvusClient, MilvusClient]:
    return pair.router, pair.direct


def test_describe_after_rename_reports_the_new_name(pair: Pair, name: str) -> None:
    renamed = name + "_r"
    for client in _both(pair):
        client.create_collection(name, dimension=8)
        client.rename_collection(name, renamed)
    r, d = pair.router.describe_collection(renamed), pair.direct.describe_collection(renamed)
    assert r["collection_name"] == d["collection_name"] == renamed
    fresh = connect(pair.cluster.router_uri)  # a client that never saw the old name
    assert fresh.describe_collection(renamed)["collection_name"] == renamed
    fresh.close()
    for client in _both(pair):
        client.drop_collection(renamed)


def test_creating_an_existing_collection_again_answers_as_the_backend(pair: Pair, name: str) -> None:
    for client in _both(pair):
        client.create_collection(name, dimension=8)
    r, d = run_both(pair.router, pair.direct, lambda c: c.create_collection(name, dimension=8))
    if d.error is None:  # 2.3.5 accepts an identical schema
        assert r.error is None, r.error
    else:  # milvus-lite: code 1, already exists
        assert_same_error(r, d, message=True)
    for client in _both(pair):
        client.drop_collection(name)


def test_a_negative_offset_is_refused_with_the_backends_message(pair: Pair, name: str) -> None:
    for client in _both(pair):
        client.create_collection(name, dimension=8, consistency_level="Strong")
        client.insert(name, [{"id": i, "vector": [float(i)] * 8} for i in range(5)])
    calls = [
        lambda c: c.query(name, filter="id >= 0", offset=16384, limit=10),
        lambda c: c.search(name, data=[[0.0] * 8], limit=3, offset=-1),
        lambda c: c.query(name, filter="id >= 0", offset=-1, limit=3),
    ]
    for call in calls:
        r, d = run_both(pair.router, pair.direct, call)
        if pair.backend == "milvus":
            assert_same_error(r, d, message=True)
        else:  # milvus-lite has no window check; the router keeps 2.3.5's bound (docs/compatibility.md)
            assert r.error is not None and r.error.message.startswith(("invalid max query result window", "offset"))
    for client in _both(pair):
        client.drop_collection(name)


def test_delete_answers_the_deleted_keys_where_the_backend_does(pair: Pair, name: str) -> None:
    for client in _both(pair):
        client.create_collection(name, dimension=8, consistency_level="Strong")
        client.insert(name, [{"id": i, "vector": [float(i)] * 8} for i in range(10)])
    by_ids = [pair.router.delete(name, ids=[1, 2, 3]), pair.direct.delete(name, ids=[1, 2, 3])]
    by_filter = [pair.router.delete(name, filter="id in [4, 5]"), pair.direct.delete(name, filter="id in [4, 5]")]
    for r, d in (by_ids, by_filter):
        # pymilvus answers the deleted keys as a list when the server sends them, else {"delete_count": n}
        assert type(r) is type(d), (r, d)
        assert (sorted(r) if isinstance(r, list) else r["delete_count"]) == (
            sorted(d) if isinstance(d, list) else d["delete_count"]
        )
    for client in _both(pair):
        client.drop_collection(name)


def test_altering_an_unknown_collection_answers_as_the_backend(pair: Pair, name: str) -> None:
    r, d = run_both(pair.router, pair.direct, lambda c: c.alter_collection_properties(name, {"mmap.enabled": "true"}))
    assert_same_failure(r, d)  # 2.3.5 puts a timestamp in its message: compared as <id>


def test_describe_database_answers_what_milvus_lite_answers(lite: Any, name: str) -> None:
    """2.3.5 has no DescribeDatabase; milvus-lite, the reference, answers the name alone (no id, no time)."""
    cluster, reference = lite
    answers = []
    for address in (cluster.router_address, reference.address):
        client = connect(f"http://{address}")
        client.create_database(name)
        with grpc.insecure_channel(address) as channel:
            stub = milvus_pb2_grpc.MilvusServiceStub(channel)
            answers.append(
                [stub.DescribeDatabase(milvus_pb2.DescribeDatabaseRequest(db_name=db)) for db in ("default", name)]
            )
        client.drop_database(name)
        client.close()
    assert answers[0] == answers[1]
    assert [a.db_name for a in answers[0]] == ["default", name]
