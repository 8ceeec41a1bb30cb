"""Single-shard pass-through on both backends: the same answers as the decoding path and as one Milvus.

A second router over the same cluster runs with READ_PASSTHROUGH=false; a one-shard
collection is read through both routers (and directly): searches, queries, counts,
iterators and errors must come back the same, errors with the client's collection name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import connect
from differential import Pair, assert_same_error, assert_search_equal, run_both
from pymilvus import DataType, MilvusClient

DIM = 8
ROWS = 300


@pytest.fixture
def decoding(pair: Pair) -> Iterator[MilvusClient]:
    """A client of a router over the pair's cluster with the pass-through off."""
    extra = pair.cluster.start_extra_router(overrides={"READ_PASSTHROUGH": "false"})
    client = connect(f"http://{extra.address}")
    try:
        yield client
    finally:
        client.close()
        extra.stop(pair.cluster.stop_timeout)


def _make(client: MilvusClient, name: str) -> None:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=32)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index, num_shards=1, consistency_level="Strong")
    rows = [
        {"id": i, "vector": [float((i * k) % 17) for k in range(1, DIM + 1)], "tag": f"t{i % 7}", "extra": i % 3}
        for i in range(ROWS)
    ]
    client.insert(name, rows)


def test_one_shard_reads_answer_as_the_decoding_path_and_as_one_milvus(pair: Pair, decoding: MilvusClient) -> None:
    router, direct = pair.router, pair.direct
    name = f"pt_{pair.backend.replace('-', '_')}"
    for c in (router, direct):
        if c.has_collection(name):
            c.drop_collection(name)
        _make(c, name)
    assert router.describe_collection(name)["num_shards"] == 1
    q = [[float(k % 5) for k in range(DIM)], [1.0] * DIM, [float(k) for k in range(DIM)]]
    searches: list[Any] = [
        lambda c: c.search(name, data=q[:1], limit=7, offset=4),
        lambda c: c.search(name, data=q, limit=10, output_fields=["tag", "extra", "vector"]),
        lambda c: c.search(name, data=q, limit=5, filter='tag in ["t1", "t3"] and extra == 1', output_fields=["*"]),
        lambda c: c.search(
            name, data=q[:2], limit=20, search_params={"params": {"radius": 400.0, "range_filter": 1.0}}
        ),
    ]
    for call in searches:
        via_pass, via_decode, via_direct = call(router), call(decoding), call(direct)
        assert [list(map(dict, hits)) for hits in via_pass] == [list(map(dict, hits)) for hits in via_decode]
        assert_search_equal(via_pass, via_direct, fields=("tag", "extra"))
    queries: list[Any] = [
        lambda c: c.query(name, filter="id >= 10", limit=9, offset=3, output_fields=["tag", "extra"]),
        lambda c: c.query(name, filter='tag == "t2"', output_fields=["*"]),
        lambda c: c.query(name, filter="", output_fields=["count(*)"]),
        lambda c: c.get(name, ids=[1, 2, 299, 5000]),
    ]
    for call in queries:
        via_pass, via_decode, via_direct = call(router), call(decoding), call(direct)
        assert list(via_pass) == list(via_decode)
        key = (lambda r: r.get("id", 0)) if via_direct and "id" in via_direct[0] else (lambda r: 0)
        assert sorted(via_pass, key=key) == sorted(via_direct, key=key)
    # iterators page through one shard as through one Milvus
    seen: dict[str, list[int]] = {}
    for label, c in (("pass", router), ("decode", decoding), ("direct", direct)):
        it = c.query_iterator(name, batch_size=37, filter="id >= 0", output_fields=["id"])
        ids: list[int] = []
        while batch := it.next():
            ids.extend(r["id"] for r in batch)
        it.close()
        seen[label] = ids
    assert seen["pass"] == seen["decode"] and sorted(seen["pass"]) == sorted(seen["direct"]) == list(range(ROWS))
    # errors: the backend's words with the client's collection name, as the decoding router and one Milvus give them
    bad: list[Any] = [
        lambda c: c.search(name, data=[[1.0] * (DIM + 1)], limit=3),
        lambda c: c.query(name, filter="no_such_field > 1 and (", limit=3),
    ]
    for call in bad:
        (r, d), (r2, _) = run_both(router, direct, call), run_both(decoding, direct, call)
        assert_same_error(r, d)
        assert r.error is not None and r2.error is not None
        assert r.error.message == r2.error.message and "mishards_" not in r.error.message
    for c in (router, direct):
        c.drop_collection(name)
