"""The core Milvus API through the router (2 shards on 2 instances) versus one Milvus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from differential import assert_same_error, assert_same_failure, assert_search_equal, normalised, run_both, sorted_rows
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

DIM = 8
ROWS = 300


def rich_schema(client: MilvusClient, pk_type: str, auto_id: bool = False, partition_key: bool = False) -> Any:
    schema = client.create_schema(auto_id=auto_id, enable_dynamic_field=True, description="rich")
    if pk_type == "int64":
        schema.add_field("pk", DataType.INT64, is_primary=True, auto_id=auto_id)
    else:
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=40)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("num", DataType.INT64, is_partition_key=partition_key)
    schema.add_field("score", DataType.DOUBLE)
    schema.add_field("label", DataType.VARCHAR, max_length=16)
    schema.add_field("doc", DataType.JSON)
    return schema


def rich_rows(pk_type: str, n: int = ROWS, start: int = 0, with_pk: bool = True) -> list[dict[str, Any]]:
    rng = np.random.default_rng(start + 11)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    rows = []
    for j in range(n):
        i = start + j
        row: dict[str, Any] = {
            "vec": vecs[j].tolist(),
            "num": i % 10,
            "score": float(i) / 7.0,
            "label": f"l{i % 4}",
            "doc": {"color": ["red", "green", "blue"][i % 3], "size": i % 5, "tags": [i % 2, i % 3]},
            "dyn_int": i % 6,  # dynamic field
        }
        if with_pk:
            row["pk"] = i if pk_type == "int64" else f"id-{i:06d}"
        rows.append(row)
    return rows


def create_both(router: MilvusClient, direct: MilvusClient, name: str, pk_type: str, **kw: Any) -> None:
    for client in (router, direct):
        client.create_collection(name, schema=rich_schema(client, pk_type, **kw), consistency_level="Strong")
        params = client.prepare_index_params()
        params.add_index("vec", index_type="FLAT", metric_type="L2")
        client.create_index(name, params)
        client.load_collection(name)


@pytest.fixture(params=["int64", "varchar"])
def pair(
    request: pytest.FixtureRequest, router: MilvusClient, direct: MilvusClient, name: str
) -> Iterator[tuple[str, str]]:
    pk_type = request.param
    create_both(router, direct, name, pk_type)
    for client in (router, direct):
        client.insert(name, rich_rows(pk_type))
    yield name, pk_type
    for client in (router, direct):
        client.drop_collection(name)


def both_ok(router: MilvusClient, direct: MilvusClient, call: Any) -> tuple[Any, Any]:
    r, d = run_both(router, direct, call)
    assert r.error is None and d.error is None, (r.error, d.error)
    return r.value, d.value


def test_filters_on_scalar_json_and_dynamic_fields(
    router: MilvusClient, direct: MilvusClient, pair: tuple[str, str]
) -> None:
    name, _ = pair
    filters = [
        "num in [1, 3, 5]",
        'score > 10.5 and label == "l2"',
        'doc["color"] == "red"',
        'doc["size"] >= 3',
        'json_contains(doc["tags"], 1)',
        "dyn_int == 4",
        "dyn_int in [1, 2] and num < 5",
    ]
    for expr in filters:
        r, d = both_ok(
            router, direct, lambda c: c.query(name, filter=expr, output_fields=["num", "label", "doc", "dyn_int"])
        )
        assert sorted_rows(r, "pk") == sorted_rows(d, "pk"), expr
        r, d = both_ok(
            router,
            direct,
            lambda c: c.search(
                name,
                data=[rich_rows("int64", 1, start=5)[0]["vec"]],
                filter=expr,
                limit=12,
                output_fields=["num", "dyn_int"],
            ),
        )
        assert_search_equal(r, d, fields=("num", "dyn_int"))


def test_upsert_delete_and_get(router: MilvusClient, direct: MilvusClient, pair: tuple[str, str]) -> None:
    name, pk_type = pair
    changed = rich_rows(pk_type, n=20, start=100)
    for row in changed:
        row["label"] = "changed"
    new = rich_rows(pk_type, n=10, start=ROWS + 50)
    r, d = both_ok(router, direct, lambda c: c.upsert(name, changed + new))
    assert r["upsert_count"] == d["upsert_count"] == 30
    ids = [row["pk"] for row in rich_rows(pk_type, n=ROWS)]
    r, d = both_ok(router, direct, lambda c: c.delete(name, ids=ids[:15]))
    assert r["delete_count"] == d["delete_count"] == 15
    r, d = both_ok(router, direct, lambda c: c.delete(name, filter="num == 7"))
    assert r["delete_count"] == d["delete_count"]
    r, d = both_ok(
        router,
        direct,
        lambda c: c.get(name, ids=ids[10:20] + ids[95:125] + [new[0]["pk"]], output_fields=["label", "num"]),
    )
    assert sorted_rows(r, "pk") == sorted_rows(d, "pk")
    assert any(x["label"] == "changed" for x in r)
    r, d = both_ok(router, direct, lambda c: c.query(name, filter="", output_fields=["count(*)"]))
    assert r[0]["count(*)"] == d[0]["count(*)"]
    r, d = both_ok(router, direct, lambda c: c.query(name, filter="num >= 0", output_fields=["label"]))
    assert sorted_rows(r, "pk") == sorted_rows(d, "pk")


def test_partitions(router: MilvusClient, direct: MilvusClient, pair: tuple[str, str]) -> None:
    name, pk_type = pair
    for client in (router, direct):
        client.release_collection(name)
        client.create_partition(name, "p1")
        client.create_partition(name, "p1")  # again: succeeds, as in Milvus
        assert client.has_partition(name, "p1") and not client.has_partition(name, "nope")
        client.insert(name, rich_rows(pk_type, n=40, start=1000), partition_name="p1")
        client.load_partitions(name, ["p1"])
    assert router.list_partitions(name) == direct.list_partitions(name) == ["_default", "p1"]
    q = rich_rows("int64", 1, start=1003)[0]["vec"]
    r, d = both_ok(router, direct, lambda c: c.search(name, data=[q], limit=10, partition_names=["p1"]))
    assert_search_equal(r, d)
    r, d = both_ok(
        router, direct, lambda c: c.query(name, filter="num >= 0", partition_names=["p1"], output_fields=["num"])
    )
    assert sorted_rows(r, "pk") == sorted_rows(d, "pk") and len(r) == 40
    for client in (router, direct):
        client.flush(name)
    assert router.get_partition_stats(name, "p1") == direct.get_partition_stats(name, "p1") == {"row_count": 40}
    r, d = run_both(router, direct, lambda c: c.get_partition_stats(name, "nope"))
    assert_same_error(r, d)
    r, d = run_both(router, direct, lambda c: c.insert(name, rich_rows(pk_type, 2), partition_name="nope"))
    assert_same_error(r, d)
    r, d = run_both(router, direct, lambda c: c.drop_partition(name, "p1"))  # still loaded
    assert_same_error(r, d)
    for client in (router, direct):
        client.release_partitions(name, ["p1"])
        client.drop_partition(name, "p1")
        assert not client.has_partition(name, "p1")


def _built_index(client: MilvusClient, name: str) -> dict[str, Any]:
    """describe_index once the index covers every flushed row (or after 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        desc = client.describe_index(name, "vec")
        done = desc["state"] == "Finished" and desc["pending_index_rows"] == 0
        if (done and desc["indexed_rows"] == desc["total_rows"]) or time.monotonic() > deadline:
            return desc
        time.sleep(0.5)


def test_indexes_and_load_state(router: MilvusClient, direct: MilvusClient, pair: tuple[str, str], stubs: Any) -> None:
    name, _ = pair
    for client in (router, direct):
        client.flush(name)
    r, d = _built_index(router, name), _built_index(direct, name)
    assert r["index_type"] == d["index_type"] == "FLAT" and r["metric_type"] == d["metric_type"]
    assert r["total_rows"] == d["total_rows"] == ROWS and r["state"] == d["state"] == "Finished"
    for key in ("indexed_rows", "total_rows", "pending_index_rows"):
        assert r[key] == d[key], (key, r[key], d[key])
    statistics = [
        stub.GetIndexStatistics(milvus_pb2.GetIndexStatisticsRequest(collection_name=name), timeout=30)
        for stub in stubs
    ]
    assert [s.status.code for s in statistics] == [0, 0]
    shape = [
        [(i.index_name, i.field_name, i.indexed_rows, i.total_rows, i.state) for i in s.index_descriptions]
        for s in statistics
    ]
    assert shape[0] == shape[1], shape
    progress = [c._get_connection().get_loading_progress(name) for c in (router, direct)]
    assert progress == [100, 100]
    assert sorted(router.list_indexes(name)) == sorted(direct.list_indexes(name))  # Milvus lists them in map order
    r, d = run_both(router, direct, lambda c: c.drop_index(name, "vec"))  # loaded: refused
    assert_same_error(r, d)
    for client in (router, direct):
        client.release_collection(name)
        assert client.get_load_state(name)["state"].name == "NotLoad"
        params = client.prepare_index_params()
        params.add_index("num", index_type="STL_SORT", index_name="num_idx")
        client.create_index(name, params)
        assert "num_idx" in client.list_indexes(name)
        client.drop_index(name, "num_idx")
        assert "num_idx" not in client.list_indexes(name)
        client.load_collection(name)
        assert client.get_load_state(name)["state"].name == "Loaded"
        client.load_collection(name, refresh=True)  # refresh_load: reloads every copy
    r, d = run_both(router, direct, lambda c: c.describe_index(name, "nope"))
    assert (r.error is None) == (d.error is None) and r.value == d.value
    assert router.get_load_state("no_such_coll_q") == direct.get_load_state("no_such_coll_q")


def test_describe_collection_identical(router: MilvusClient, direct: MilvusClient, name: str) -> None:
    for pk_type, auto_id, pkey in [("int64", True, False), ("varchar", False, True), ("int64", False, True)]:
        coll = f"{name}_{pk_type}_{int(auto_id)}_{int(pkey)}"
        for client in (router, direct):
            client.create_collection(coll, schema=rich_schema(client, pk_type, auto_id=auto_id, partition_key=pkey))
        r, d = router.describe_collection(coll), direct.describe_collection(coll)
        for key in (
            "collection_name",
            "auto_id",
            "description",
            "enable_dynamic_field",
            "fields",
            "consistency_level",
            "num_partitions",
            "properties",
        ):
            assert r[key] == d[key], (coll, key, r[key], d[key])
        assert router.describe_collection(coll)["collection_id"] == r["collection_id"]
        assert router.list_partitions(coll) == direct.list_partitions(coll)
        for client in (router, direct):
            client.drop_collection(coll)
    # nullable and default values: Milvus 2.3.5 drops `nullable` and keeps `default_value`;
    # the router describes the collection as the backend does
    coll = f"{name}_nullable"
    for client in (router, direct):
        schema = client.create_schema(enable_dynamic_field=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field("n", DataType.INT64, nullable=True)
        schema.add_field("dv", DataType.INT64, default_value=7)
        schema.add_field("ds", DataType.VARCHAR, max_length=8, default_value="x")
        client.create_collection(coll, schema=schema)
    r, d = router.describe_collection(coll), direct.describe_collection(coll)
    assert r["fields"] == d["fields"]
    by_name = {f["name"]: f for f in r["fields"]}
    assert "default_value" in by_name["dv"] and "default_value" in by_name["ds"]
    assert not by_name["n"].get("nullable")  # what 2.3.5 makes of nullable=True
    for client in (router, direct):
        client.drop_collection(coll)


def test_aliases_and_rename(router: MilvusClient, direct: MilvusClient, pair: tuple[str, str], stubs: Any) -> None:
    name, pk_type = pair
    other = name + "_b"
    for client in (router, direct):
        client.create_collection(other, dimension=DIM, consistency_level="Strong")
        client.create_alias(name, name + "_al")
        client.create_alias(name, name + "_al")  # same target again: fine
    assert router.describe_alias(name + "_al") == direct.describe_alias(name + "_al")
    assert router.list_aliases(name)["aliases"] == direct.list_aliases(name)["aliases"] == [name + "_al"]
    # every data call accepts the alias
    r, d = both_ok(router, direct, lambda c: c.query(name + "_al", filter="num == 1", output_fields=["num"]))
    assert sorted_rows(r, "pk") == sorted_rows(d, "pk")
    r, d = both_ok(router, direct, lambda c: c.search(name + "_al", data=[[0.1] * DIM], limit=5))
    assert_search_equal(r, d)
    both_ok(router, direct, lambda c: c.insert(name + "_al", rich_rows(pk_type, n=3, start=5000)))
    assert router.describe_collection(name + "_al")["collection_name"] == name
    alias = name + "_al"
    ids = [row["pk"] for row in rich_rows(pk_type, n=8)]
    r, d = both_ok(router, direct, lambda c: c.get(alias, ids=ids, output_fields=["num", "label"]))
    assert sorted_rows(r, "pk") == sorted_rows(d, "pk") and len(r) == 8
    r, d = both_ok(router, direct, lambda c: c.upsert(alias, rich_rows(pk_type, n=4, start=2)))
    assert r["upsert_count"] == d["upsert_count"] == 4
    r, d = both_ok(router, direct, lambda c: c.delete(alias, ids=ids[:2]))
    assert r["delete_count"] == d["delete_count"] == 2
    deleted = [
        stub.Delete(milvus_pb2.DeleteRequest(collection_name=alias, expr="num == 3"), timeout=30) for stub in stubs
    ]
    assert [x.status.code for x in deleted] == [0, 0] and deleted[0].delete_cnt == deleted[1].delete_cnt
    router_ids = deleted[0].IDs
    assert not router_ids.int_id.data and not router_ids.str_id.data  # Delete.IDs is left empty
    for client in (router, direct):
        client.flush(name)
    r, d = both_ok(router, direct, lambda c: c.get_collection_stats(alias))
    assert r == d
    both_ok(router, direct, lambda c: c.release_collection(alias))
    assert router.get_load_state(alias) == direct.get_load_state(alias)

    def scalar_index(c: MilvusClient) -> None:
        params = c.prepare_index_params()
        params.add_index("num", index_type="STL_SORT", index_name="num_al")
        c.create_index(alias, params)

    both_ok(router, direct, scalar_index)
    assert sorted(router.list_indexes(alias)) == sorted(direct.list_indexes(alias))  # Milvus lists them in map order
    both_ok(router, direct, lambda c: c.load_collection(alias))
    assert router.get_load_state(alias)["state"].name == direct.get_load_state(alias)["state"].name == "Loaded"
    r, d = both_ok(router, direct, lambda c: c.query(alias, filter="", output_fields=["count(*)"]))
    assert r[0]["count(*)"] == d[0]["count(*)"]
    for call in (
        lambda c: c.create_alias(other, name + "_al"),  # alias of another collection
        lambda c: c.create_alias(name, other),  # alias named like a collection
        lambda c: c.create_alias("no_such_coll_zz", name + "_x"),
        lambda c: c.describe_alias("no_such_alias"),
        lambda c: c.alter_alias(other, "no_such_alias"),
        lambda c: c.drop_collection(name + "_al"),  # drop via alias is refused
        lambda c: c.rename_collection("no_such_coll_zz", "x2"),
        lambda c: c.rename_collection(other, name),
    ):
        r, d = run_both(router, direct, call)
        assert_same_error(r, d)
    for client in (router, direct):
        client.alter_alias(other, name + "_al")
        assert client.describe_alias(name + "_al")["collection_name"] == other
        client.drop_alias(name + "_al")
        client.drop_alias(name + "_al")  # again: fine
        client.rename_collection(other, other + "_r")
        assert client.has_collection(other + "_r") and not client.has_collection(other)
        client.drop_collection(other + "_r")


def test_flush_several_collections(router: MilvusClient, direct: MilvusClient, name: str) -> None:
    names = [name + "_1", name + "_2"]
    for n in names:
        router.create_collection(n, dimension=DIM, consistency_level="Strong")
        router.insert(n, [{"id": i, "vector": [float(i)] * DIM} for i in range(30)])
    router._get_connection().flush(names)
    for n in names:
        assert router.get_collection_stats(n)["row_count"] == 30
        router.drop_collection(n)


def test_large_insert_of_20_mb(router: MilvusClient, name: str) -> None:
    n, dim = 40_000, 128  # 40k x 128 float32 = 20 MB of vectors in one call
    router.create_collection(name, dimension=dim, consistency_level="Strong")
    vecs = np.random.default_rng(5).random((n, dim), dtype=np.float32)
    res = router.insert(name, [{"id": i, "vector": vecs[i]} for i in range(n)])
    assert res["insert_count"] == n
    assert router.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == n
    router.drop_collection(name)


def test_auto_id_variant(router: MilvusClient, direct: MilvusClient, name: str) -> None:
    """auto_id: ids differ between the sides, so rows are matched by `score` (unique per row)."""
    create_both(router, direct, name, "int64", auto_id=True)
    r, d = both_ok(router, direct, lambda c: c.insert(name, rich_rows("int64", with_pk=False)))
    r_ids, d_ids = r["ids"], d["ids"]
    assert len(r_ids) == len(set(r_ids)) == len(d_ids) == ROWS

    def same_rows(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
        strip = [
            sorted(({k: v for k, v in row.items() if k != "pk"} for row in x), key=lambda r: r["score"]) for x in (a, b)
        ]
        assert strip[0] == strip[1]

    # get: the n-th id of each side names the same row (ids come back in row order)
    r = router.get(name, ids=r_ids[20:40], output_fields=["score", "label", "num"])
    d = direct.get(name, ids=d_ids[20:40], output_fields=["score", "label", "num"])
    same_rows(r, d)
    assert len(r) == 20
    # upsert naming a primary key of an auto_id collection: Milvus 2.3.5's error
    upserted = [{**row, "pk": r_ids[0]} for row in rich_rows("int64", n=1)]
    r_out, d_out = run_both(router, direct, lambda c: c.upsert(name, upserted))
    assert_same_failure(r_out, d_out)
    r_out, d_out = run_both(router, direct, lambda c: c.insert(name, rich_rows("int64", n=1, start=3000)))
    assert_same_failure(r_out, d_out)  # insert with a primary key value on an auto_id collection
    r_del = router.delete(name, ids=r_ids[:15])
    d_del = direct.delete(name, ids=d_ids[:15])
    assert r_del["delete_count"] == d_del["delete_count"] == 15
    r, d = both_ok(router, direct, lambda c: c.delete(name, filter="num == 4"))
    assert r["delete_count"] == d["delete_count"]
    # partitions
    for client in (router, direct):
        client.create_partition(name, "p1")
        client.insert(name, rich_rows("int64", n=30, start=1000, with_pk=False), partition_name="p1")
    r, d = both_ok(
        router,
        direct,
        lambda c: c.query(name, filter="num >= 0", partition_names=["p1"], output_fields=["score", "num"]),
    )
    same_rows(r, d)
    assert len(r) == 30
    # aliases
    for client in (router, direct):
        client.create_alias(name, name + "_al")
    r, d = both_ok(router, direct, lambda c: c.query(name + "_al", filter="num < 3", output_fields=["score", "label"]))
    same_rows(r, d)
    r, d = both_ok(router, direct, lambda c: c.delete(name + "_al", filter="num == 2"))
    assert r["delete_count"] == d["delete_count"]
    r, d = both_ok(router, direct, lambda c: c.query(name, filter="", output_fields=["count(*)"]))
    assert r[0]["count(*)"] == d[0]["count(*)"] > 0
    for client in (router, direct):
        client.drop_alias(name + "_al")
        client.drop_collection(name)


def test_errors_are_those_of_one_milvus(router: MilvusClient, direct: MilvusClient, pair: tuple[str, str]) -> None:
    name, pk_type = pair
    q = [[0.0] * DIM]
    row = rich_rows(pk_type, 1, start=9000)[0]
    # Each fails on one Milvus 2.3.5: the router must fail too, with the same code and the same
    # message (numbers of 9+ digits, i.e. ids, normalised; collection names are the same on both
    # sides, so a physical name leaking into a router message makes it differ).
    must_fail = {
        "unknown collection (query)": lambda c: c.query("no_such_coll_zz", filter="pk > 0"),
        "unknown collection (search)": lambda c: c.search("no_such_coll_zz", data=q, limit=3),
        "unknown collection (insert)": lambda c: c.insert("no_such_coll_zz", [row]),
        "unknown collection (describe)": lambda c: c.describe_collection("no_such_coll_zz"),
        "unknown collection (delete)": lambda c: c.delete("no_such_coll_zz", filter="num > 0"),
        "unknown collection (list aliases)": lambda c: c.list_aliases("no_such_coll_zz"),
        "wrong vector dimension": lambda c: c.insert(name, [{**row, "vec": [0.0] * (DIM + 1)}]),
        "bad filter expression (query)": lambda c: c.query(name, filter="num >>> 3"),
        "bad filter expression (search)": lambda c: c.search(name, data=q, filter="nope == 3 and", limit=3),
        "duplicate collection, other schema": lambda c: c.create_collection(name, dimension=DIM + 3),
        "invalid index params": lambda c: c.create_index(name, _index(c, "IVF_FLAT", {"nlist": 0})),
        "unknown index type": lambda c: c.create_index(name, _index(c, "NOPE", {})),
        "topk out of range": lambda c: c.search(name, data=q, limit=20000),
        "limit + offset out of range (search)": lambda c: c.search(name, data=q, limit=10000, offset=7000),
        "limit + offset out of range (query)": lambda c: c.query(name, filter="num > 0", limit=10000, offset=7000),
        "count(*) with a limit": lambda c: c.query(name, filter="", output_fields=["count(*)"], limit=3),
        "unknown partition (search)": lambda c: c.search(name, data=q, limit=3, partition_names=["nope"]),
        "unknown partition (query)": lambda c: c.query(name, filter="num > 0", partition_names=["nope"]),
        "unknown partition (insert)": lambda c: c.insert(name, [row], partition_name="nope"),
    }
    mismatches = []
    for label, call in must_fail.items():
        r, d = run_both(router, direct, call)
        assert d.error is not None, f"{label}: Milvus 2.3.5 accepted it"
        try:
            assert_same_failure(r, d)
        except AssertionError as exc:
            mismatches.append(f"{label}: {exc}")
    assert not mismatches, "\n".join(mismatches)
    # Accepted by Milvus 2.3.5, so by the router: with the dynamic field on, an unknown output
    # field names a dynamic key that rows may lack (the case without it is in the test below).
    accepted = {
        "unknown output field, dynamic (query)": lambda c: c.query(
            name, filter="num == 1", output_fields=["no_such_field"], limit=3
        ),
        "unknown output field, dynamic (search)": lambda c: c.search(
            name, data=q, limit=3, output_fields=["no_such_field"]
        ),
    }
    for label, call in accepted.items():
        r, d = run_both(router, direct, call)
        assert d.error is None and r.error is None, (label, r.error, d.error)
    # nothing was half written by the failed inserts
    r, d = both_ok(router, direct, lambda c: c.query(name, filter="", output_fields=["count(*)"]))
    assert r[0]["count(*)"] == d[0]["count(*)"] == ROWS


def test_errors_without_dynamic_field(router: MilvusClient, direct: MilvusClient, stubs: Any, name: str) -> None:
    for client in (router, direct):
        schema = client.create_schema(enable_dynamic_field=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field("x", DataType.INT64)
        client.create_collection(name, schema=schema, consistency_level="Strong")
        params = client.prepare_index_params()
        params.add_index("vec", index_type="FLAT", metric_type="L2")
        client.create_index(name, params)
        client.load_collection(name)
        client.insert(name, [{"pk": i, "vec": [float(i)] * DIM, "x": i} for i in range(10)])
    for call in (
        lambda c: c.query(name, filter="x > 0", output_fields=["no_such_field"]),
        lambda c: c.search(name, data=[[0.0] * DIM], limit=3, output_fields=["no_such_field"]),
    ):
        r, d = run_both(router, direct, call)
        assert_same_failure(r, d)
    # A row without the field x: pymilvus refuses it before sending, so send it as raw gRPC.
    request = milvus_pb2.InsertRequest(collection_name=name, num_rows=2)
    pk = request.fields_data.add(field_name="pk", type=schema_pb2.Int64)
    pk.scalars.long_data.data.extend([100, 101])
    vec = request.fields_data.add(field_name="vec", type=schema_pb2.FloatVector)
    vec.vectors.dim = DIM
    vec.vectors.float_vector.data.extend([0.5] * (2 * DIM))
    r_status, d_status = (stub.Insert(request, timeout=30).status for stub in stubs)
    assert d_status.code != 0, "Milvus 2.3.5 accepted a row without a field"
    assert (r_status.code, r_status.error_code) == (d_status.code, d_status.error_code)
    assert normalised(r_status.reason) == normalised(d_status.reason), (r_status.reason, d_status.reason)
    r, d = both_ok(router, direct, lambda c: c.query(name, filter="", output_fields=["count(*)"]))
    assert r[0]["count(*)"] == d[0]["count(*)"] == 10
    for client in (router, direct):
        client.drop_collection(name)


def test_handshake(stubs: Any) -> None:
    router_stub, direct_stub = stubs
    info = common_pb2.ClientInfo(sdk_type="Python", sdk_version="test", user="tester")
    connected = router_stub.Connect(milvus_pb2.ConnectRequest(client_info=info), timeout=30)
    assert connected.status.code == 0 and connected.identifier != 0
    server = connected.server_info
    assert server.deploy_mode == "mishards" and server.build_tags.startswith("mishards-")
    assert dict(server.reserved).get("proxy") == "mishards-router"
    version = router_stub.GetVersion(milvus_pb2.GetVersionRequest(), timeout=30)
    direct_version = direct_stub.GetVersion(milvus_pb2.GetVersionRequest(), timeout=30)
    assert version.status.code == 0 and version.version == direct_version.version != ""
    health = router_stub.CheckHealth(milvus_pb2.CheckHealthRequest(), timeout=30)
    assert health.status.code == 0 and health.isHealthy and not health.reasons


def _index(client: MilvusClient, index_type: str, params: dict[str, Any]) -> Any:
    p = client.prepare_index_params()
    p.add_index("vec", index_type=index_type, metric_type="L2", params=params, index_name="bad")
    return p
