"""Search and query as one Milvus answers them, sharded over two instances, on both backends.

The `milvus` 2.3.5 side uses the session cluster; the `milvus-lite` side its own cluster of
two milvus-lite instances and a third one as the single reference. Whether a backend
supports a feature is probed on the direct backend; a feature that must work on a backend
(hybrid search, group-by, multi-vector, sparse on milvus-lite) fails the test when it
does not, instead of being skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from differential import assert_same_error, assert_search_equal, hit_id, run_both, sorted_rows
from pymilvus import AnnSearchRequest, DataType, MilvusClient, RRFRanker, WeightedRanker
from pymilvus.exceptions import MilvusException

from mishards.cli.cluster import Cluster
from mishards.cli.launcher import LiteMilvus
from mishards.cli.ports import PortAllocator

DIM = 8
ROWS = 400
MUST_WORK = {"milvus-lite": {"hybrid", "group_by", "multi_vector", "sparse"}, "milvus": set()}


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, LiteMilvus]]:
    root = tmp_path_factory.mktemp("lite")
    cluster = Cluster(root_dir=str(root), writable=2, backend="milvus-lite", router_port=0,
                      extra_env={"DEFAULT_SHARDS_NUM": "2", "READ_REPLICAS": "0"})  # fmt: skip
    reference = LiteMilvus.open(root / "reference", "writable", PortAllocator(19800, 19899))
    cluster.start()
    try:
        reference.start()
        reference.wait_ready(60)
        yield cluster, reference
    finally:
        reference.stop()
        cluster.stop()


@pytest.fixture(params=["milvus", "milvus-lite"])
def clients(request: pytest.FixtureRequest) -> Iterator[tuple[str, MilvusClient, MilvusClient]]:
    if request.param == "milvus":
        cluster = request.getfixturevalue("cluster")
        router = MilvusClient(uri=cluster.router_uri)
        direct = MilvusClient(uri=f"http://{cluster.instances[0].address}")
    else:
        cluster, reference = request.getfixturevalue("lite")
        router = MilvusClient(uri=cluster.router_uri)
        direct = MilvusClient(uri=f"http://{reference.address}")
    yield request.param, router, direct
    router.close()
    direct.close()


def probe(backend: str, feature: str, direct: MilvusClient, call: Any) -> bool:
    """True when the direct backend supports the feature; a must-have that fails fails the test."""
    try:
        call(direct)
        return True
    except MilvusException as exc:
        if feature in MUST_WORK[backend]:
            pytest.fail(f"{feature} must work on {backend}, but the backend refused it: {exc}")
        return False


def new_name() -> str:
    return "s_" + uuid.uuid4().hex[:10]


def build(client: MilvusClient, name: str, metric: str = "L2", extra_vectors: bool = False) -> list[dict[str, Any]]:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("grp", DataType.INT64)
    schema.add_field("doc", DataType.JSON)
    if extra_vectors:
        schema.add_field("vec2", DataType.FLOAT_VECTOR, dim=4)
    client.create_collection(name, schema=schema, consistency_level="Strong")
    params = client.prepare_index_params()
    params.add_index("vec", index_type="FLAT", metric_type=metric)
    if extra_vectors:
        params.add_index("vec2", index_type="FLAT", metric_type="IP")
    client.create_index(name, params)
    client.load_collection(name)
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(ROWS, DIM)).astype(np.float32)
    vecs[200:220] = vecs[:20]  # ties
    rows = []
    for i in range(ROWS):
        row: dict[str, Any] = {"pk": i, "vec": vecs[i].tolist(), "grp": i % 9, "doc": {"a": {"b": i % 4}, "n": i}}
        if extra_vectors:
            row["vec2"] = rng.normal(size=4).astype(np.float32).tolist()
        rows.append(row)
    client.insert(name, rows)
    return rows


def both(router: MilvusClient, direct: MilvusClient, call: Any) -> tuple[Any, Any]:
    r, d = run_both(router, direct, call)
    assert r.error is None and d.error is None, (r.error, d.error)
    return r.value, d.value


def test_range_search_every_metric(clients: tuple[str, MilvusClient, MilvusClient]) -> None:
    backend, router, direct = clients
    for metric, radius, range_filter in [("L2", 8.0, 1.0), ("IP", 0.5, 5.0), ("COSINE", 0.2, 0.9)]:
        name = new_name()
        rows = build(router, name, metric)
        build(direct, name, metric)
        params = {"metric_type": metric, "params": {"radius": radius, "range_filter": range_filter}}
        q = [rows[1]["vec"], rows[7]["vec"]]
        if probe(backend, "range", direct, lambda c: c.search(name, data=q, limit=30, search_params=params)):
            r, d = both(router, direct, lambda c: c.search(name, data=q, limit=30, search_params=params))
            assert_search_equal(r, d)
            for hits in r:
                for h in hits:
                    lo, hi = sorted((radius, range_filter))
                    assert lo - 1e-4 <= h["distance"] <= hi + 1e-4
        for c in (router, direct):
            c.drop_collection(name)


def test_round_decimal_output_vectors_and_json_paths(clients: tuple[str, MilvusClient, MilvusClient]) -> None:
    backend, router, direct = clients
    name = new_name()
    rows = build(router, name)
    build(direct, name)
    q = [rows[3]["vec"]]
    r, d = both(router, direct, lambda c: c.search(name, data=q, limit=10, round_decimal=2, output_fields=["vec", "grp"],
                                                     filter='doc["a"]["b"] == 1'))  # fmt: skip
    assert_search_equal(r, d, fields=("grp",))
    for h in r[0]:
        assert round(h["distance"], 2) == pytest.approx(h["distance"], abs=1e-6)
        assert np.allclose(h["entity"]["vec"], rows[hit_id(h)]["vec"], atol=1e-6)
    r, d = both(
        router,
        direct,
        lambda c: c.query(
            name, filter='doc["n"] < 50 and (doc["a"]["b"] == 0 or doc["a"]["b"] == 3)', output_fields=["doc"]
        ),
    )
    assert sorted_rows(r, "pk") == sorted_rows(d, "pk")
    if probe(backend, "templates", direct, lambda c: c.query(name, filter="grp == {g}", filter_params={"g": 2})):
        r, d = both(
            router, direct, lambda c: c.query(name, filter="grp in {gs}", filter_params={"gs": [1, 2]}, limit=40)
        )
        assert [x["pk"] for x in r] == sorted(x["pk"] for x in d)
    for c in (router, direct):
        c.drop_collection(name)


def test_iterators_return_every_row_once(clients: tuple[str, MilvusClient, MilvusClient]) -> None:
    _, router, direct = clients
    name = new_name()
    rows = build(router, name)
    build(direct, name)
    seen: list[int] = []
    it = router.query_iterator(name, batch_size=37, filter="grp >= 0", output_fields=["grp"])
    while batch := it.next():
        seen.extend(x["pk"] for x in batch)
    it.close()
    assert seen == sorted(seen) and sorted(seen) == list(range(ROWS))  # once each, in primary-key order
    found: list[int] = []
    sit = router.search_iterator(name, data=[rows[0]["vec"]], batch_size=50, limit=300, anns_field="vec",
                                 search_params={"metric_type": "L2"})  # fmt: skip
    while batch := sit.next():
        found.extend(hit_id(h) for h in batch)
    sit.close()
    assert len(found) == len(set(found)) == 300
    direct_top = [hit_id(h) for h in direct.search(name, data=[rows[0]["vec"]], limit=300, anns_field="vec")[0]]
    assert len(set(found) & set(direct_top)) >= 290  # the same neighbourhood, up to ties at the edge
    for c in (router, direct):
        c.drop_collection(name)


def _groups(hits: Any) -> list[tuple[Any, list[float]]]:
    out: list[tuple[Any, list[float]]] = []
    for h in hits:
        g = h["entity"]["grp"]
        if not out or out[-1][0] != g:
            out.append((g, []))
        out[-1][1].append(h["distance"])
    return out


def assert_groups_match(router_hits: Any, direct_hits: Any, group_size: int) -> None:
    """Same groups in the same order with the same best hit; the router's groups never worse.

    A single Milvus may leave a group short of group_size, or return fewer groups (its
    search stops early); the router fills groups exactly, so it may hold more, never worse.
    """
    r, d = _groups(router_hits), _groups(direct_hits)
    # milvus-lite may also stop before `limit` groups (strict_group_size); never the reverse
    assert [g for g, _ in r][: len(d)] == [g for g, _ in d]
    for (_, rd), (_, dd) in zip(r, d):
        assert len(dd) <= len(rd) <= group_size
        assert rd[0] == pytest.approx(dd[0], abs=1e-4)
        for a, b in zip(rd, dd):
            assert a <= b + 1e-4  # L2: smaller is better


def test_group_by(clients: tuple[str, MilvusClient, MilvusClient]) -> None:
    backend, router, direct = clients
    name = new_name()
    rows = build(router, name)
    build(direct, name)
    q = [rows[5]["vec"], rows[9]["vec"]]

    def grouped(c: MilvusClient) -> None:
        res = c.search(name, data=q, limit=12, group_by_field="grp", output_fields=["grp"])  # 9 groups exist
        if len({h["entity"]["grp"] for h in res[0]}) != len(res[0]):
            raise MilvusException(message="group_by_field ignored by this backend")

    if not probe(backend, "group_by", direct, grouped):
        # the backend ignores group_by_field: the router answers as it does
        r, d = both(router, direct, lambda c: c.search(name, data=q, limit=3, group_by_field="grp"))
        assert_search_equal(r, d)
    else:
        for kw in [dict(limit=4), dict(limit=3, group_size=2)]:
            r, d = both(
                router, direct, lambda c: c.search(name, data=q, group_by_field="grp", output_fields=["grp"], **kw)
            )
            for rq, dq in zip(r, d):
                assert_groups_match(rq, dq, kw.get("group_size", 1))
        # offset counts groups, and strict_group_size keeps only full groups (checked against
        # the router's own full answer: milvus-lite applies both its own way)
        full = router.search(name, data=q, group_by_field="grp", group_size=2, limit=6, output_fields=["grp"])
        page = router.search(name, data=q, group_by_field="grp", group_size=2, limit=3, offset=2, output_fields=["grp"])
        strict = router.search(name, data=q, group_by_field="grp", group_size=2, limit=6, strict_group_size=True,
                               output_fields=["grp"])  # fmt: skip
        for fq, pq, sq in zip(full, page, strict):
            assert _groups(pq) == _groups(fq)[2:5]
            assert _groups(sq) == [g for g in _groups(fq) if len(g[1]) == 2][: len(_groups(sq))]
    for c in (router, direct):
        c.drop_collection(name)


def test_hybrid_search_multi_vector(clients: tuple[str, MilvusClient, MilvusClient]) -> None:
    backend, router, direct = clients
    name = new_name()
    if not probe(backend, "multi_vector", direct, lambda c: build(c, name, extra_vectors=True)):
        return
    rows = build(router, name, extra_vectors=True)
    reqs = [
        AnnSearchRequest(data=[rows[4]["vec"]], anns_field="vec", param={"metric_type": "L2"}, limit=20),
        AnnSearchRequest(data=[rows[4]["vec2"]], anns_field="vec2", param={"metric_type": "IP"}, limit=20),
    ]
    if probe(backend, "hybrid", direct, lambda c: c.hybrid_search(name, reqs, RRFRanker(), limit=5)):
        for ranker in (RRFRanker(60), WeightedRanker(0.7, 0.3)):
            r, d = both(router, direct, lambda c: c.hybrid_search(name, reqs, ranker, limit=8, output_fields=["grp"]))
            assert_search_equal(r, d, fields=("grp",))
    if probe(
        backend, "multi_vector", direct, lambda c: c.search(name, data=[rows[2]["vec2"]], anns_field="vec2", limit=5)
    ):
        r, d = both(router, direct, lambda c: c.search(name, data=[rows[2]["vec2"]], anns_field="vec2", limit=9))
        assert_search_equal(r, d)
    for c in (router, direct):
        c.drop_collection(name)


def test_sparse_vectors(clients: tuple[str, MilvusClient, MilvusClient]) -> None:
    backend, router, direct = clients
    name = new_name()

    def make(c: MilvusClient) -> None:
        schema = c.create_schema(auto_id=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("sv", DataType.SPARSE_FLOAT_VECTOR)
        c.create_collection(name, schema=schema, consistency_level="Strong")
        p = c.prepare_index_params()
        p.add_index("sv", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        c.create_index(name, p)
        c.load_collection(name)

    if not probe(backend, "sparse", direct, make):
        return
    make(router)
    rng = np.random.default_rng(9)
    data = [
        {"pk": i, "sv": {int(j): float(rng.random()) for j in rng.choice(50, 5, replace=False)}} for i in range(200)
    ]
    for c in (router, direct):
        c.insert(name, data)
    r, d = both(router, direct, lambda c: c.search(name, data=[data[3]["sv"]], anns_field="sv", limit=10,
                                                     search_params={"metric_type": "IP"}))  # fmt: skip
    assert_search_equal(r, d)
    for c in (router, direct):
        c.drop_collection(name)


def test_databases(clients: tuple[str, MilvusClient, MilvusClient]) -> None:
    _, router, _ = clients
    db = "db_" + uuid.uuid4().hex[:8]
    router.create_database(db)
    assert db in router.list_databases()
    name = new_name()
    router.create_collection(name, dimension=DIM, consistency_level="Strong")
    in_db = MilvusClient(uri=_uri_of(router), db_name=db)
    in_db.create_collection(name, dimension=DIM, consistency_level="Strong")  # same name, other database
    in_db.insert(name, [{"id": i, "vector": [float(i)] * DIM} for i in range(5)])
    router.insert(name, [{"id": i, "vector": [float(i)] * DIM} for i in range(3)])
    assert in_db.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 5
    assert router.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 3
    assert router.describe_collection(name)["collection_id"] != in_db.describe_collection(name)["collection_id"]
    with pytest.raises(MilvusException):
        router.drop_database(db)  # not empty
    in_db.drop_collection(name)
    in_db.close()
    router.drop_database(db)
    assert db not in router.list_databases()
    router.drop_collection(name)


def _uri_of(client: MilvusClient) -> str:
    return "http://" + client._get_connection().server_address


def test_collection_properties_compaction_and_index_listing(clients: tuple[str, MilvusClient, MilvusClient]) -> None:
    backend, router, direct = clients
    name = new_name()
    build(router, name)
    build(direct, name)
    for c in (router, direct):
        c.alter_collection_properties(name, properties={"collection.ttl.seconds": 3600})
    assert router.describe_collection(name)["properties"] == direct.describe_collection(name)["properties"]
    if probe(
        backend, "drop_properties", direct, lambda c: c.drop_collection_properties(name, ["collection.ttl.seconds"])
    ):
        router.drop_collection_properties(name, ["collection.ttl.seconds"])
        assert router.describe_collection(name)["properties"] == direct.describe_collection(name)["properties"]
    assert router.list_indexes(name) == direct.list_indexes(name)
    assert router.list_indexes(name, field_name="vec") == direct.list_indexes(name, field_name="vec")
    if probe(backend, "compaction", direct, lambda c: c.compact(name)):
        job = router.compact(name)
        assert router.get_compaction_state(job) in ("Completed", "Executing")
    for c in (router, direct):
        c.drop_collection(name)


def test_limits(clients: tuple[str, MilvusClient, MilvusClient]) -> None:
    backend, router, direct = clients
    if backend == "milvus-lite":
        pytest.skip("milvus-lite does not enforce Milvus's limits; the router enforces them as Milvus 2.3.5 does")
    name = new_name()
    build(router, name)
    build(direct, name)
    q = [[0.0] * DIM]
    for call in (lambda c: c.search(name, data=q, limit=16385),
                 lambda c: c.search(name, data=q, limit=16000, offset=385),
                 lambda c: c.query(name, filter="pk >= 0", limit=16000, offset=385),
                 lambda c: c.query(name, filter="", output_fields=["count(*)"], limit=5)):  # fmt: skip
        r, d = run_both(router, direct, call)
        assert_same_error(r, d)
    r, d = both(router, direct, lambda c: c.search(name, data=q, limit=16384, offset=0))
    assert len(r[0]) == len(d[0]) == ROWS
    for c in (router, direct):
        c.drop_collection(name)


def test_one_shard_collection_answers_as_its_milvus(clients: tuple[str, MilvusClient, MilvusClient]) -> None:
    _, router, direct = clients
    name = new_name()
    for c in (router, direct):
        c.create_collection(name, dimension=DIM, consistency_level="Strong", num_shards=1)
        c.insert(name, [{"id": i, "vector": [float((i * 7) % 13), 1.0, float(i % 5), 0.5] * 2} for i in range(120)])
    assert router.describe_collection(name)["num_shards"] == 1
    q = [[3.0, 1.0, 2.0, 0.5] * 2]
    r, d = both(router, direct, lambda c: c.search(name, data=q, limit=7, offset=4))
    assert_search_equal(r, d)
    r, d = both(router, direct, lambda c: c.query(name, filter="id >= 10", limit=9, offset=3))
    assert [x["id"] for x in r] == [x["id"] for x in d]
    r, d = both(router, direct, lambda c: c.query(name, filter="", output_fields=["count(*)"]))
    assert r[0]["count(*)"] == d[0]["count(*)"] == 120
    for c in (router, direct):
        c.drop_collection(name)


@pytest.mark.parametrize("index_type,params,search", [
    ("IVF_FLAT", {"nlist": 16}, {"nprobe": 8}),
    ("HNSW", {"M": 16, "efConstruction": 64}, {"ef": 64}),
])  # fmt: skip
def test_approximate_indexes_recall_like_one_milvus(
    clients: tuple[str, MilvusClient, MilvusClient], index_type: str, params: dict[str, int], search: dict[str, int]
) -> None:
    """Recall@10 against numpy brute force: the router within 0.02 of the single instance."""
    backend, router, direct = clients
    if backend == "milvus-lite":
        pytest.skip("milvus-lite searches exactly whatever the index type; recall is checked on milvus")
    name = new_name()
    rng = np.random.default_rng(21)
    base = rng.normal(size=(3000, 32)).astype(np.float32)
    queries = rng.normal(size=(20, 32)).astype(np.float32)
    for c in (router, direct):
        # data first, index built over sealed segments, then load: both sides search the index
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=32)
        c.create_collection(name, schema=schema, consistency_level="Strong")
        for start in range(0, len(base), 1000):
            c.insert(name, [{"id": i, "vector": base[i].tolist()} for i in range(start, start + 1000)])
        c.flush(name)
        p = c.prepare_index_params()
        p.add_index("vector", index_type=index_type, metric_type="L2", params=params)
        c.create_index(name, p)  # waits until every segment is indexed
        c.load_collection(name)
    truth = np.argsort(((queries[:, None, :] - base[None, :, :]) ** 2).sum(-1), axis=1)[:, :10]

    def recall(c: MilvusClient) -> float:
        res = c.search(name, data=queries.tolist(), limit=10, search_params={"metric_type": "L2", "params": search})
        return float(np.mean([len({hit_id(h) for h in hits} & set(t.tolist())) / 10 for hits, t in zip(res, truth)]))

    r, d = recall(router), recall(direct)
    assert r >= d - 0.02, (index_type, r, d)
    for c in (router, direct):
        c.drop_collection(name)
