"""Router (2 shards on 2 Milvus instances) versus one Milvus holding the same data.

The search and query tests run on both embedded backends (the `pair` fixture); the
collection-lifecycle and error tests on the session cluster's backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import instance_client
from differential import (
    Pair,
    assert_same_error,
    assert_same_failure,
    assert_search_equal,
    run_both,
    sorted_rows,
    supported,
)
from pymilvus import DataType, MilvusClient

DIM = 16
ROWS = 600


def make_schema(client: MilvusClient, pk_type: str, auto_id: bool, metric_vector: str = "float") -> Any:
    schema = client.create_schema(auto_id=auto_id, enable_dynamic_field=True)
    if pk_type == "int64":
        schema.add_field("pk", DataType.INT64, is_primary=True, auto_id=auto_id)
    else:
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    if metric_vector == "binary":
        schema.add_field("vec", DataType.BINARY_VECTOR, dim=DIM * 8)
    else:
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("category", DataType.INT64)
    schema.add_field("tag", DataType.VARCHAR, max_length=32)
    return schema


def make_rows(pk_type: str, auto_id: bool, vector: str = "float", seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    if vector == "binary":
        base = rng.integers(0, 256, size=(ROWS, DIM), dtype=np.uint8)
        base[ROWS // 2 : ROWS // 2 + 40] = base[:40]  # duplicate vectors: ties
        vecs: list[Any] = [bytes(v) for v in base]
    else:
        base = rng.normal(size=(ROWS, DIM)).astype(np.float32)
        base[ROWS // 2 : ROWS // 2 + 40] = base[:40]
        vecs = [v.tolist() for v in base]
    rows = []
    for i in range(ROWS):
        row: dict[str, Any] = {"vec": vecs[i], "category": int(i % 7), "tag": f"tag{i % 5}", "extra": i % 3}
        if not auto_id:
            row["pk"] = i * 3 + 1 if pk_type == "int64" else f"key-{i:05d}"
        rows.append(row)
    return rows


def setup_pair(
    router: MilvusClient,
    direct: MilvusClient,
    name: str,
    pk_type: str,
    auto_id: bool,
    metric: str,
    vector: str = "float",
) -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
    """Create, index (FLAT), load and fill the same collection on both sides; return their ids."""
    index_type = "BIN_FLAT" if vector == "binary" else "FLAT"
    ids = []
    rows = make_rows(pk_type, auto_id, vector)
    for client in (router, direct):
        client.create_collection(name, schema=make_schema(client, pk_type, auto_id, vector), consistency_level="Strong")
        params = client.prepare_index_params()
        params.add_index("vec", index_type=index_type, metric_type=metric)
        client.create_index(name, params)
        client.load_collection(name)
        res = client.insert(name, rows)
        assert res["insert_count"] == ROWS
        ids.append(list(res["ids"]))
    return ids[0], ids[1], rows


def drop_pair(router: MilvusClient, direct: MilvusClient, name: str) -> None:
    for client in (router, direct):
        client.drop_collection(name)


@pytest.mark.parametrize("pk_type", ["int64", "varchar"])
@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_search_and_query_match_single_milvus(pair: Pair, name: str, pk_type: str, metric: str) -> None:
    router, direct = pair.router, pair.direct
    r_ids, d_ids, rows = setup_pair(router, direct, name, pk_type, False, metric)
    assert r_ids == d_ids  # ids come back in the client's row order
    queries = [rows[0]["vec"], rows[5]["vec"], rows[123]["vec"]]
    cases: list[dict[str, Any]] = [
        dict(limit=10),
        dict(limit=7, offset=5),
        dict(limit=20, filter="category in [1, 2]"),
        dict(limit=5, filter='tag == "tag3"', output_fields=["category", "tag", "extra"]),
        dict(limit=50, filter="extra == 1", output_fields=["*"]),
    ]
    for kw in cases:
        r, d = run_both(
            router,
            direct,
            lambda c: c.search(name, data=queries, anns_field="vec", search_params={"metric_type": metric}, **kw),
        )
        assert r.error is None and d.error is None, (r.error, d.error)
        assert_search_equal(r.value, d.value, fields=tuple(f for f in kw.get("output_fields", []) if f != "*"))

    for kw in [
        dict(filter="category == 3"),
        dict(filter="category >= 0", limit=25, offset=10),
        dict(filter='tag in ["tag1", "tag4"]', output_fields=["tag", "extra"], limit=40),
        dict(filter="extra == 2", output_fields=["category"]),
    ]:
        r, d = run_both(router, direct, lambda c: c.query(name, **kw))
        assert r.error is None and d.error is None, (r.error, d.error)
        if "limit" in kw:
            # with a limit both sides answer in primary-key order, so the same rows come back
            assert [x["pk"] for x in r.value] == sorted(x["pk"] for x in d.value)
        assert sorted_rows(r.value, "pk") == sorted_rows(d.value, "pk")

    r, d = run_both(router, direct, lambda c: c.query(name, filter="", output_fields=["count(*)"]))
    assert r.value[0]["count(*)"] == d.value[0]["count(*)"] == ROWS
    r, d = run_both(router, direct, lambda c: c.query(name, filter="category == 2", output_fields=["count(*)"]))
    assert r.value[0]["count(*)"] == d.value[0]["count(*)"]
    drop_pair(router, direct, name)


@pytest.mark.parametrize("metric", ["HAMMING", "JACCARD"])
def test_binary_vectors_match_single_milvus(pair: Pair, name: str, metric: str) -> None:
    router, direct = pair.router, pair.direct
    schema = make_schema(direct, "int64", False, "binary")
    if not supported(pair.backend, "binary", direct, lambda c: c.create_collection(name, schema=schema)):
        # the backend has no binary vectors: the router refuses the collection as it does
        r, d = run_both(router, direct, lambda c: c.create_collection(name, schema=schema))
        assert_same_error(r, d)
        assert not router.has_collection(name)
        pytest.skip(f"{pair.backend} has no binary vectors (docs/compatibility.md)")
    direct.drop_collection(name)
    _, _, rows = setup_pair(router, direct, name, "int64", False, metric, vector="binary")
    queries = [rows[0]["vec"], rows[77]["vec"]]
    r, d = run_both(
        router,
        direct,
        lambda c: c.search(name, data=queries, anns_field="vec", limit=15, search_params={"metric_type": metric}),
    )
    assert r.error is None and d.error is None, (r.error, d.error)
    assert_search_equal(r.value, d.value)
    # range search: range_filter <= distance < radius (the duplicated rows, at 0, left out)
    radius, range_filter = {"HAMMING": (58, 1), "JACCARD": (0.62, 0.1)}[metric]
    params = {"metric_type": metric, "params": {"radius": radius, "range_filter": range_filter}}
    r, d = run_both(
        router, direct, lambda c: c.search(name, data=queries, anns_field="vec", limit=40, search_params=params)
    )
    assert r.error is None and d.error is None, (r.error, d.error)
    assert_search_equal(r.value, d.value)
    assert all(len(hits) > 0 for hits in r.value)
    assert all(range_filter - 1e-4 <= h["distance"] <= radius + 1e-4 for hits in r.value for h in hits)
    drop_pair(router, direct, name)


def test_auto_id_ids_are_unique_and_rows_spread(pair: Pair, name: str) -> None:
    router, direct, cluster = pair.router, pair.direct, pair.cluster
    r_ids, _, rows = setup_pair(router, direct, name, "int64", True, "L2")
    assert len(set(r_ids)) == ROWS
    got = router.query(name, filter=f"pk in {r_ids[:5]}", output_fields=["category"])
    assert sorted(x["pk"] for x in got) == sorted(r_ids[:5])
    # the rows of each id are the rows the client sent, in its order
    by_pk = {x["pk"]: x for x in router.query(name, filter="category >= 0", output_fields=["category", "tag"])}
    for i, pk in enumerate(r_ids):
        assert by_pk[pk]["category"] == rows[i]["category"] and by_pk[pk]["tag"] == rows[i]["tag"]
    # both shards (on two instances) hold rows: the data really is spread
    desc = router.describe_collection(name)
    assert desc["num_shards"] == 2
    counts = []
    for inst in cluster.instances:
        c = instance_client(inst)
        for coll in c.list_collections():
            if coll.startswith(f"mishards_{desc['collection_id']}_s"):
                c.load_collection(coll)
                counts.append(
                    c.query(coll, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
                )
        c.close()
    assert len(counts) == 2 and sum(counts) == ROWS and min(counts) > 0
    drop_pair(router, direct, name)


def test_collection_lifecycle(router: MilvusClient, direct: MilvusClient, name: str) -> None:
    for client in (router, direct):
        client.create_collection(name, dimension=8)  # quick setup: AUTOINDEX, loaded
        assert client.has_collection(name)
        assert name in client.list_collections()
        assert client.get_load_state(name)["state"].name == "Loaded"
    r, d = router.describe_collection(name), direct.describe_collection(name)
    for key in ("collection_name", "auto_id", "enable_dynamic_field", "consistency_level"):
        assert r[key] == d[key], key
    assert [(f["name"], f["type"], f.get("params")) for f in r["fields"]] == [
        (f["name"], f["type"], f.get("params")) for f in d["fields"]
    ]
    assert r["num_shards"] == 2
    # a second describe returns the same stable collection id
    assert router.describe_collection(name)["collection_id"] == r["collection_id"]
    rows = [{"id": i, "vector": [float(i % 5)] * 8} for i in range(50)]
    for client in (router, direct):
        client.insert(name, rows)
        client.flush(name)
    assert router.get_collection_stats(name)["row_count"] == direct.get_collection_stats(name)["row_count"] == 50
    for client in (router, direct):
        client.drop_collection(name)
        assert not client.has_collection(name)


def test_errors_match_single_milvus(router: MilvusClient, direct: MilvusClient, name: str) -> None:
    r, d = run_both(router, direct, lambda c: c.describe_collection("no_such_collection_xyz"))
    assert_same_failure(r, d)
    r, d = run_both(router, direct, lambda c: c.search("no_such_collection_xyz", data=[[0.0] * 8], limit=3))
    assert_same_failure(r, d)
    for client in (router, direct):
        client.create_collection(name, dimension=8, consistency_level="Strong")
    r, d = run_both(router, direct, lambda c: c.insert(name, [{"id": 1, "vector": [0.0] * 9}]))
    assert_same_failure(r, d)
    assert router.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 0
    r, d = run_both(router, direct, lambda c: c.query(name, filter="id >>> 3"))
    assert_same_failure(r, d)
    drop_pair(router, direct, name)


TENANTS = [f"tenant-{i:02d}" for i in range(16)]


def test_partition_key_collection_is_sharded_by_key_and_matches_single_milvus(pair: Pair, name: str) -> None:
    """A varchar partition key: each tenant's rows on one shard, pinned and unpinned reads equal a
    single Milvus's, and an upsert that gives a row a new tenant moves it (it appears once)."""
    router, direct, cluster = pair.router, pair.direct, pair.cluster
    rng = np.random.default_rng(11)
    vecs = rng.normal(size=(ROWS, DIM)).astype(np.float32)
    rows = [{"pk": i, "vec": vecs[i].tolist(), "tenant": TENANTS[i % 16], "category": i % 7} for i in range(ROWS)]
    for client in (router, direct):
        schema = client.create_schema(enable_dynamic_field=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field("tenant", DataType.VARCHAR, max_length=32, is_partition_key=True)
        schema.add_field("category", DataType.INT64)
        client.create_collection(name, schema=schema, consistency_level="Strong", num_partitions=8)
        params = client.prepare_index_params()
        params.add_index("vec", index_type="FLAT", metric_type="L2")
        client.create_index(name, params)
        client.load_collection(name)
        assert client.insert(name, rows)["insert_count"] == ROWS
    r, d = router.describe_collection(name), direct.describe_collection(name)
    assert r["fields"] == d["fields"] and r["num_partitions"] == d["num_partitions"]

    # every tenant's rows are on one shard (the physical collections keep the partition key)
    physical = []
    for inst in cluster.instances:
        c = instance_client(inst)  # retried: milvus-lite may have closed an idle channel
        for coll in c.list_collections():
            if coll.startswith(f"mishards_{r['collection_id']}_s"):
                c.load_collection(coll)
                physical.append((c, coll))
    assert len(physical) == 2

    def placed(filter: str) -> list[list[dict[str, Any]]]:
        return [
            c.query(coll, filter=filter, output_fields=["tenant"], consistency_level="Strong") for c, coll in physical
        ]

    per_shard = placed("pk >= 0")
    assert sorted(len(rs) for rs in per_shard) != [0, ROWS]
    tenants_per_shard = [{x["tenant"] for x in rs} for rs in per_shard]
    assert not tenants_per_shard[0] & tenants_per_shard[1]

    queries = [rows[0]["vec"], rows[77]["vec"]]
    searches: list[dict[str, Any]] = [
        dict(limit=10),  # unpinned: every shard
        dict(limit=7, offset=3, filter=f'tenant == "{TENANTS[3]}"'),
        dict(limit=15, filter=f'category > 2 and tenant in ["{TENANTS[1]}", "{TENANTS[6]}", "{TENANTS[9]}"]'),
        dict(limit=5, filter=f'tenant == "{TENANTS[2]}" or category == 1'),  # unpinned
    ]
    for kw in searches:
        r, d = run_both(router, direct, lambda c: c.search(name, data=queries, output_fields=["tenant"], **kw))
        assert r.error is None and d.error is None, (kw, r.error, d.error)
        assert_search_equal(r.value, d.value, fields=("tenant",))
    # a templated pin (the router expands templates; Milvus 2.3.5 has none: the reference gets the literal)
    templated = router.search(name, data=queries, limit=5, filter="tenant in {ts}", filter_params={"ts": TENANTS[4:6]})
    literal = direct.search(name, data=queries, limit=5, filter=f'tenant in ["{TENANTS[4]}", "{TENANTS[5]}"]')
    assert_search_equal(templated, literal)
    for kw in [
        dict(filter=f'tenant == "{TENANTS[5]}"', output_fields=["tenant", "category"]),
        dict(filter=f'tenant in ["{TENANTS[0]}", "{TENANTS[15]}"] && category < 3'),
        dict(filter="category == 4"),
    ]:
        r, d = run_both(router, direct, lambda c: c.query(name, **kw))
        assert r.error is None and d.error is None, (kw, r.error, d.error)
        assert sorted_rows(r.value, "pk") == sorted_rows(d.value, "pk")
    for filter in (f'tenant == "{TENANTS[7]}"', 'tenant in ["nobody"]', ""):
        r, d = run_both(router, direct, lambda c: c.query(name, filter=filter, output_fields=["count(*)"]))
        assert r.value[0]["count(*)"] == d.value[0]["count(*)"]

    # an upsert moves a row to its new tenant's shard, in one write: it appears exactly once
    moved = next(i for i in range(ROWS) if rows[i]["tenant"] in tenants_per_shard[0])
    new_tenant = next(t for t in TENANTS if t in tenants_per_shard[1])
    row = dict(rows[moved], tenant=new_tenant, category=99)
    for client in (router, direct):
        assert client.upsert(name, [row])["upsert_count"] == 1
    located = placed(f"pk == {moved}")
    assert [len(rs) for rs in located] == [0, 1] and located[1][0]["tenant"] == new_tenant
    r, d = run_both(router, direct, lambda c: c.query(name, filter=f"pk == {moved}", output_fields=["tenant"]))
    assert r.value == d.value and len(r.value) == 1
    r, d = run_both(router, direct, lambda c: c.query(name, filter="", output_fields=["count(*)"]))
    assert r.value[0]["count(*)"] == d.value[0]["count(*)"] == ROWS
    r, d = run_both(router, direct, lambda c: c.query(name, filter="category == 99", output_fields=["tenant"]))
    assert r.value == d.value and [x["pk"] for x in r.value] == [moved]
    # pinned to the new tenant: Milvus 2.3.5 itself, at times, leaves a row it upserted out of a
    # partition-key filter; the router logs a moved row as a delete then an insert, and finds it
    got = router.query(name, filter=f'tenant == "{new_tenant}" and category == 99', output_fields=["tenant"])
    assert [(x["pk"], x["tenant"]) for x in got] == [(moved, new_tenant)]

    # a delete by primary key reaches every shard and counts each key once
    r, d = run_both(
        router, direct, lambda c: c.delete(name, filter=f"pk in [{moved}, {moved}, {ROWS - 1}, {ROWS - 2}]")
    )
    # pymilvus gives milvus-lite's deleted keys as a list (the router returns them as it does)
    counts = [len(v) if isinstance(v, list) else v["delete_count"] for v in (r.value, d.value)]
    assert counts[0] == counts[1] == 4
    r, d = run_both(router, direct, lambda c: c.query(name, filter="", output_fields=["count(*)"]))
    assert r.value[0]["count(*)"] == d.value[0]["count(*)"] == ROWS - 3
    for c, _ in physical:
        c.close()
    drop_pair(router, direct, name)
