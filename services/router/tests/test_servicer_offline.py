"""RouterServicer's read and write handlers, end to end over an in-memory Milvus cluster (memory_milvus.py).

No private method is patched: the servicer gets the in-memory back ends, meta, catalog,
topology and write log through its constructor, in `make_servicer` alone (the one place to
change when the constructor does). Answers are checked against the rows each instance holds
and against a brute-force answer over every row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from memory_milvus import MemoryCluster, brute_force_search, column, placeholder_group
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common.hashing import shards_of
from mishards.common.milvus_messages import EncodedAnswer
from mishards.common.settings import load_settings
from mishards.router.auth import AuthCache
from mishards.router.main import build_servicer
from mishards.router.servicer import RouterServicer
from mishards.v1 import discovery_pb2

DIM = 4
COLORS = ["red", "green", "blue"]


def schema(by_color: bool = False) -> schema_pb2.CollectionSchema:
    """id (primary key), color (the partition key with `by_color`), vec."""
    out = schema_pb2.CollectionSchema(name="c")
    out.fields.add(fieldID=100, name="id", data_type=schema_pb2.Int64, is_primary_key=True)
    out.fields.add(fieldID=101, name="color", data_type=schema_pb2.VarChar, is_partition_key=by_color).type_params.add(
        key="max_length", value="16"
    )
    out.fields.add(fieldID=102, name="vec", data_type=schema_pb2.FloatVector).type_params.add(key="dim", value=str(DIM))
    return out


class Context:
    """A grpc.aio.ServicerContext as the handlers read it: no deadline, no metadata."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def time_remaining(self) -> float | None:
        return None


def make_servicer(cluster: MemoryCluster, **settings: str) -> Callable[[], Awaitable[RouterServicer]]:
    """The one place RouterServicer is built: by the router's own `build_servicer`, over `cluster`'s
    in-memory meta, back ends and log, with `settings` (e.g. MAX_RETRY="1") over the defaults."""

    async def build() -> RouterServicer:
        catalog, topology, meta, write_log = await cluster.start()
        return build_servicer(
            load_settings({"BACKEND_TIMEOUT": "5", **settings}, None),
            meta,
            catalog,
            AuthCache(meta),
            topology,
            cluster.backends,  # type: ignore[arg-type]
            write_log,
        )

    return build


def two_shards(shards: int = 2, by_color: bool = False) -> MemoryCluster:
    """Instances a and b; collection c with shard 0 on a and shard 1 on b (one shard, on a, when
    `shards` is 1), sharded by primary key or, `by_color`, by its partition key color."""
    cluster = MemoryCluster()
    cluster.add_instance("a")
    cluster.add_instance("b")
    cluster.add_collection("c", schema(by_color), ["a", "b"][:shards], shard_key="partition_key" if by_color else "")
    return cluster


def rows(n: int, start: int = 0, seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    vectors = rng.random((n, DIM), dtype=np.float32)
    return [{"id": start + i, "color": COLORS[i % 3], "vec": tuple(float(x) for x in vectors[i])} for i in range(n)]


def insert_request(batch: list[dict[str, Any]], upsert: bool = False) -> Any:
    fields = schema().fields
    kind = milvus_pb2.UpsertRequest if upsert else milvus_pb2.InsertRequest
    request = kind(collection_name="c", num_rows=len(batch))
    request.fields_data.extend(column(f, [r[f.name] for r in batch]) for f in fields)
    return request


class Served:
    """The servicer as a client reaches it: each Milvus method through its entry in `handlers()`
    (guarded: errors come back as statuses), anything else the servicer's own attribute."""

    def __init__(self, servicer: RouterServicer) -> None:
        self.servicer = servicer
        self._handlers = servicer.handlers()

    def __getattr__(self, name: str) -> Any:
        if name in self._handlers:
            return self._handlers[name]
        return getattr(self.servicer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("servicer", "_handlers"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.servicer, name, value)  # e.g. `passthrough`, read per call


def run(cluster: MemoryCluster, scenario: Callable[[Any], Awaitable[Any]], **settings: str) -> Any:
    async def main() -> Any:
        servicer = await make_servicer(cluster, **settings)()
        try:
            return await scenario(Served(servicer))
        finally:
            await servicer.catalog.stop()

    return asyncio.run(main())


async def load(servicer: RouterServicer, batch: list[dict[str, Any]]) -> milvus_pb2.MutationResult:
    answer = await servicer.Insert(insert_request(batch), Context())
    assert answer.status.code == 0, answer.status.reason
    return answer


def all_rows(cluster: MemoryCluster) -> list[dict[str, Any]]:
    return [row for m in cluster.backends.instances.values() for coll in m.collections.values() for row in coll.rows]


def search_request(vectors: list[list[float]], limit: int, **extra: Any) -> milvus_pb2.SearchRequest:
    params = {"anns_field": "vec", "topk": str(limit), "metric_type": "L2", "params": "{}"}
    params.update(extra.pop("params", {}))
    request = milvus_pb2.SearchRequest(
        collection_name="c",
        nq=len(vectors),
        placeholder_group=placeholder_group(vectors),
        dsl_type=common_pb2.BoolExprV1,
        **extra,
    )
    for key, value in params.items():
        request.search_params.add(key=key, value=value)
    return request


def hits(results: schema_pb2.SearchResultData) -> list[list[tuple[int, float]]]:
    """Per query, `(key, score)` of each hit."""
    out, start = [], 0
    for k in results.topks:
        out.append(list(zip(results.ids.int_id.data[start : start + k], results.scores[start : start + k])))
        start += k
    return out


def assert_same_hits(got: list[list[tuple[int, float]]], want: list[list[tuple[Any, float]]]) -> None:
    assert [[k for k, _ in q] for q in got] == [[k for k, _ in q] for q in want]
    assert np.allclose([s for q in got for _, s in q], [s for q in want for _, s in q], rtol=1e-5)


def decoded(answer: Any, kind: Any) -> Any:
    return kind.FromString(answer.data) if isinstance(answer, EncodedAnswer) else answer


# --- writes -----------------------------------------------------------------------------------


def test_insert_lands_split_by_shard_key_on_the_two_instances() -> None:
    cluster = two_shards()
    batch = rows(40)

    answer = run(cluster, lambda s: load(s, batch))

    assert answer.insert_cnt == 40 and list(answer.IDs.int_id.data) == [r["id"] for r in batch]
    shard = dict(zip([r["id"] for r in batch], shards_of([r["id"] for r in batch], 2).tolist()))
    on_a = cluster.instance("a").rows("mishards_1_s0")
    on_b = cluster.instance("b").rows("mishards_1_s1")
    assert on_a and on_b
    assert {r["id"] for r in on_a} == {k for k, s in shard.items() if s == 0}
    assert {r["id"] for r in on_b} == {k for k, s in shard.items() if s == 1}
    assert sorted(on_a + on_b, key=lambda r: r["id"]) == batch  # every column arrived intact


def test_upsert_replaces_rows_and_statistics_count_every_shard() -> None:
    cluster = two_shards()
    batch = rows(30)
    changed = [dict(r, color="changed") for r in batch[:10]]

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch)
        upserted = await servicer.Upsert(insert_request(changed, upsert=True), Context())
        stats = await servicer.GetCollectionStatistics(
            milvus_pb2.GetCollectionStatisticsRequest(collection_name="c"), Context()
        )
        return upserted, stats

    upserted, stats = run(cluster, scenario)

    assert upserted.status.code == 0 and upserted.upsert_cnt == 10
    assert dict((kv.key, kv.value) for kv in stats.stats) == {"row_count": "30"}
    assert sorted(all_rows(cluster), key=lambda r: r["id"]) == changed + batch[10:]


def test_delete_by_ids_removes_from_both_shards_and_counts_the_keys() -> None:
    cluster = two_shards()
    batch = rows(30)
    doomed = [1, 2, 3, 4, 5, 6, 7, 8]
    assert set(shards_of(doomed, 2).tolist()) == {0, 1}  # the keys span both shards

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch)
        return await servicer.Delete(milvus_pb2.DeleteRequest(collection_name="c", expr=f"id in {doomed}"), Context())

    answer = run(cluster, scenario)

    assert answer.status.code == 0 and answer.delete_cnt == len(doomed)
    assert {r["id"] for r in all_rows(cluster)} == {r["id"] for r in batch} - set(doomed)
    deletes = [
        (m.address, r.collection_name)
        for m in cluster.backends.instances.values()
        for (n, r) in m.calls
        if n == "Delete"
    ]
    assert sorted(deletes) == [("memory-a:19530", "mishards_1_s0"), ("memory-b:19530", "mishards_1_s1")]


def test_delete_by_expression_deletes_the_rows_a_strong_query_finds() -> None:
    cluster = two_shards()
    batch = rows(30)

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch)
        return await servicer.Delete(milvus_pb2.DeleteRequest(collection_name="c", expr='color == "red"'), Context())

    answer = run(cluster, scenario)

    assert answer.status.code == 0 and answer.delete_cnt == 10
    assert sorted(r["id"] for r in all_rows(cluster)) == [r["id"] for r in batch if r["color"] != "red"]


def test_a_filter_the_backend_cannot_parse_is_refused_as_milvus_words_it() -> None:
    cluster = two_shards()

    answer = run(
        cluster,
        lambda s: s.Delete(milvus_pb2.DeleteRequest(collection_name="c", expr="color like 'r%'"), Context()),
    )

    assert answer.status.code == 65535
    assert answer.status.reason == "failed to create expr plan, expr = color like 'r%'"


def test_a_write_the_primary_rejects_comes_back_with_the_client_collection_name() -> None:
    cluster = two_shards()
    reason = "insert into collection mishards_1_s1 refused: disk quota exceeded"
    cluster.instance("b").fail("Insert", common_pb2.Status(code=8, error_code=common_pb2.RateLimit, reason=reason))

    answer = run(cluster, lambda s: s.Insert(insert_request(rows(20)), Context()))

    assert answer.status.code == 8
    assert answer.status.reason == "insert into collection c refused: disk quota exceeded"


def test_flush_flushes_every_shard_and_answers_with_the_client_name() -> None:
    cluster = two_shards()

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, rows(10))
        return await servicer.Flush(milvus_pb2.FlushRequest(collection_names=["c"]), Context())

    answer = run(cluster, scenario)

    assert answer.status.code == 0 and list(answer.coll_flush_ts) == ["c"]
    for identity, physical in (("a", "mishards_1_s0"), ("b", "mishards_1_s1")):
        flushes = [r for n, r in cluster.instance(identity).calls if n == "Flush"]
        assert [list(r.collection_names) for r in flushes] == [[physical]]


# --- reads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_search_across_shards_equals_brute_force(metric: str) -> None:
    cluster = two_shards()
    batch = rows(60)
    queries = [list(v) for v in np.random.default_rng(3).random((3, DIM), dtype=np.float32)]

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch)
        request = search_request(queries, 7, params={"metric_type": metric, "offset": "2"}, output_fields=["color"])
        return await servicer.Search(request, Context())

    answer = decoded(run(cluster, scenario), milvus_pb2.SearchResults)

    assert answer.status.code == 0 and answer.collection_name == "c"
    assert_same_hits(hits(answer.results), brute_force_search(batch, "id", "vec", queries, metric, 7, offset=2))
    colors = {r["id"]: r["color"] for r in batch}
    assert list(answer.results.fields_data[0].scalars.string_data.data) == [
        colors[k] for k in answer.results.ids.int_id.data
    ]


def test_filtered_search_equals_brute_force_over_the_matching_rows() -> None:
    cluster = two_shards()
    batch = rows(60)
    queries = [[0.5] * DIM]

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch)
        return await servicer.Search(search_request(queries, 5, dsl='color == "blue" and id > 10'), Context())

    answer = decoded(run(cluster, scenario), milvus_pb2.SearchResults)

    matching = [r for r in batch if r["color"] == "blue" and r["id"] > 10]
    assert_same_hits(hits(answer.results), brute_force_search(matching, "id", "vec", queries, "L2", 5))


def test_query_across_shards_equals_brute_force() -> None:
    cluster = two_shards()
    batch = rows(40)

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch)
        page = milvus_pb2.QueryRequest(collection_name="c", expr='color != "green"', output_fields=["color"])
        page.query_params.add(key="limit", value="6")
        page.query_params.add(key="offset", value="3")
        count = milvus_pb2.QueryRequest(collection_name="c", expr="id >= 5", output_fields=["count(*)"])
        return await servicer.Query(page, Context()), await servicer.Query(count, Context())

    page, count = run(cluster, scenario)
    page = decoded(page, milvus_pb2.QueryResults)

    want = sorted((r for r in batch if r["color"] != "green"), key=lambda r: r["id"])[3:9]
    columns = {fd.field_name: fd for fd in page.fields_data}
    assert list(columns["id"].scalars.long_data.data) == [r["id"] for r in want]
    assert list(columns["color"].scalars.string_data.data) == [r["color"] for r in want]
    assert page.collection_name == "c"
    assert count.fields_data[0].field_name == "count(*)"
    assert list(count.fields_data[0].scalars.long_data.data) == [35]


def test_a_backend_error_comes_back_as_its_status_with_the_client_collection_name() -> None:
    cluster = two_shards()
    batch = rows(20)

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch)
        del cluster.instance("b").collections["mishards_1_s1"]  # the copy's collection is gone
        return await servicer.Search(search_request([[0.1] * DIM], 3), Context())

    answer = run(cluster, scenario)

    assert isinstance(answer, milvus_pb2.SearchResults)
    assert answer.status.code == 100 and answer.status.error_code == common_pb2.CollectionNotExists
    assert answer.status.reason == "collection not found[database=default][collection=c]"


def test_a_backend_that_does_not_answer_names_the_shard() -> None:
    cluster = two_shards()

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, rows(20))
        cluster.instance("a").down = True
        request = milvus_pb2.QueryRequest(collection_name="c", expr="id > 0", output_fields=["id"])
        return await servicer.Query(request, Context())

    answer = run(cluster, scenario)

    assert answer.status.code == 2
    assert answer.status.reason.startswith("mishards: shard 0 of collection c failed on memory-a:19530")


def test_a_one_shard_read_is_the_backend_answer_passed_through() -> None:
    cluster = two_shards(shards=1)
    batch = rows(30)
    queries = [[0.2, 0.4, 0.6, 0.8]]

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch)
        search = await servicer.Search(search_request(queries, 4, output_fields=["color"]), Context())
        query = await servicer.Query(
            milvus_pb2.QueryRequest(collection_name="c", expr="id in [3, 4, 5]", output_fields=["color"]), Context()
        )
        return search, query

    search, query = run(cluster, scenario)

    assert isinstance(search, EncodedAnswer) and isinstance(query, EncodedAnswer)
    assert cluster.backends.raw_calls == [("memory-a:19530", "Search"), ("memory-a:19530", "Query")]
    search = milvus_pb2.SearchResults.FromString(search.data)
    assert search.collection_name == "c"
    assert_same_hits(hits(search.results), brute_force_search(batch, "id", "vec", queries, "L2", 4))
    query = milvus_pb2.QueryResults.FromString(query.data)
    assert query.collection_name == "c"
    assert [list(fd.scalars.long_data.data) for fd in query.fields_data if fd.field_name == "id"] == [[3, 4, 5]]


def test_a_read_pinned_to_one_shard_passes_through_and_decoding_gives_the_same_answer() -> None:
    cluster = two_shards(by_color=True)
    batch = rows(30)
    holder = "memory-a:19530" if shards_of(["blue"], 2)[0] == 0 else "memory-b:19530"
    queries = [[0.0] * DIM]

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch)
        raw = await servicer.Search(search_request(queries, 3, dsl='color == "blue"'), Context())
        servicer.passthrough = False
        return raw, await servicer.Search(search_request(queries, 3, dsl='color == "blue"'), Context())

    raw, plain = run(cluster, scenario)

    assert cluster.backends.raw_calls == [(holder, "Search")]  # the shard holding blue rows, alone
    assert isinstance(raw, EncodedAnswer) and isinstance(plain, milvus_pb2.SearchResults)
    assert milvus_pb2.SearchResults.FromString(raw.data) == plain
    blue = [r for r in batch if r["color"] == "blue"]
    assert_same_hits(hits(plain.results), brute_force_search(blue, "id", "vec", queries, "L2", 3))


def test_rows_of_a_collection_sharded_by_partition_key_land_on_their_key_shard() -> None:
    cluster = two_shards(by_color=True)
    batch = rows(30)
    moved = [dict(batch[0], color="green" if batch[0]["color"] != "green" else "red")]

    async def scenario(servicer: RouterServicer) -> None:
        await load(servicer, batch)
        answer = await servicer.Upsert(insert_request(moved, upsert=True), Context())
        assert answer.status.code == 0, answer.status.reason

    run(cluster, scenario)

    now = moved + batch[1:]
    shard = dict(zip(COLORS + ["changed"], shards_of(COLORS + ["changed"], 2).tolist()))
    for identity, k in (("a", 0), ("b", 1)):
        held = cluster.instance(identity).rows(f"mishards_1_s{k}")
        assert sorted(r["id"] for r in held) == sorted(r["id"] for r in now if shard[r["color"]] == k)
    assert sorted(all_rows(cluster), key=lambda r: r["id"]) == now  # the upserted row left its old shard


@pytest.mark.parametrize("level", ["Strong", "Session", "Bounded", "Eventually", "collection default"])
def test_a_read_sees_the_writes_at_every_consistency_level(level: str) -> None:
    cluster = two_shards()
    batch = rows(20)

    async def scenario(servicer: RouterServicer) -> Any:
        written = await load(servicer, batch)
        request = milvus_pb2.QueryRequest(collection_name="c", expr="id >= 0", output_fields=["id"])
        if level == "collection default":  # the collection's own level (Strong here), as pymilvus asks by default
            request.use_default_consistency = True
        else:
            request.consistency_level = common_pb2.ConsistencyLevel.Value(level)
            request.guarantee_timestamp = written.timestamp if level == "Session" else 0
        return await servicer.Query(request, Context())

    answer = decoded(run(cluster, scenario), milvus_pb2.QueryResults)

    assert answer.status.code == 0, answer.status.reason
    assert list(answer.fields_data[0].scalars.long_data.data) == [r["id"] for r in batch]


def test_an_auto_id_insert_gets_keys_from_meta_and_lands_split_by_them() -> None:
    cluster = MemoryCluster()
    cluster.add_instance("a")
    cluster.add_instance("b")
    auto = schema()
    auto.fields[0].autoID = True
    cluster.add_collection("c", auto, ["a", "b"])
    batch = rows(20)
    request = milvus_pb2.InsertRequest(collection_name="c", num_rows=len(batch))
    request.fields_data.extend(column(f, [r[f.name] for r in batch]) for f in auto.fields[1:])  # no id column

    answer = run(cluster, lambda s: s.Insert(request, Context()))

    assert answer.status.code == 0 and answer.insert_cnt == 20
    keys = list(answer.IDs.int_id.data)
    assert len(set(keys)) == 20
    for identity, k in (("a", 0), ("b", 1)):
        held = [r["id"] for r in cluster.instance(identity).rows(f"mishards_1_s{k}")]
        assert sorted(held) == sorted(key for key, s in zip(keys, shards_of(keys, 2).tolist()) if s == k)
    by_key = {r["id"]: r["color"] for r in all_rows(cluster)}
    assert [by_key[key] for key in keys] == [r["color"] for r in batch]  # each key names its own row


def test_version_and_health_come_from_the_instances() -> None:
    cluster = two_shards()

    async def scenario(servicer: RouterServicer) -> Any:
        version = await servicer.GetVersion(milvus_pb2.GetVersionRequest(), Context())
        health = await servicer.CheckHealth(milvus_pb2.CheckHealthRequest(), Context())
        return version, health

    version, health = run(cluster, scenario)

    assert version.version == "v2.3.5" and health.isHealthy


def with_replica() -> MemoryCluster:
    """Collection c: shard 0 on a, shard 1 on b, each with a replica on r (read-only)."""
    cluster = MemoryCluster()
    cluster.add_instance("a")
    cluster.add_instance("b")
    cluster.add_instance("r", discovery_pb2.READONLY)
    cluster.add_collection("c", schema(), ["a", "b"], replicas=["r"])
    return cluster


def query_all(level: int) -> milvus_pb2.QueryRequest:
    return milvus_pb2.QueryRequest(collection_name="c", expr="id >= 0", output_fields=["id"], consistency_level=level)


def ids(answer: Any) -> list[int]:
    return list(decoded(answer, milvus_pb2.QueryResults).fields_data[0].scalars.long_data.data)


def queries_on(cluster: MemoryCluster, identity: str) -> int:
    return cluster.instance(identity).methods().count("Query")


def test_an_eventually_read_goes_to_the_replica_and_fails_over_to_the_primary() -> None:
    cluster = with_replica()
    batch = rows(20)

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch)
        first = await servicer.Query(query_all(common_pb2.Eventually), Context())
        on_replica = queries_on(cluster, "r")
        cluster.instance("r").down = True
        second = await servicer.Query(query_all(common_pb2.Eventually), Context())
        return first, on_replica, second

    first, on_replica, second = run(cluster, scenario, MAX_RETRY="1")

    assert ids(first) == ids(second) == [r["id"] for r in batch]
    assert on_replica == 2 and queries_on(cluster, "a") == queries_on(cluster, "b") == 1  # then the primaries


def test_a_strong_read_skips_a_replica_that_missed_writes() -> None:
    cluster = with_replica()
    batch = rows(20)

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, batch[:10])
        cluster.instance("r").down = True
        await load(servicer, batch[10:])  # the replica misses these
        cluster.instance("r").down = False
        strong = await servicer.Query(query_all(common_pb2.Strong), Context())
        eventually = await servicer.Query(query_all(common_pb2.Eventually), Context())
        return strong, eventually

    strong, eventually = run(cluster, scenario)

    assert ids(strong) == [r["id"] for r in batch]
    assert ids(eventually) == [r["id"] for r in batch[:10]]  # Eventually may read the lagging replica
    assert queries_on(cluster, "r") == 2  # the Eventually read alone (per shard)


def test_a_copy_that_does_not_answer_without_retries_fails_the_read_naming_it() -> None:
    cluster = with_replica()

    async def scenario(servicer: RouterServicer) -> Any:
        await load(servicer, rows(10))
        cluster.instance("r").down = True
        return await servicer.Query(query_all(common_pb2.Eventually), Context())

    answer = run(cluster, scenario, MAX_RETRY="0")

    assert answer.status.code == 2
    assert "of collection c failed on memory-r:19530" in answer.status.reason
