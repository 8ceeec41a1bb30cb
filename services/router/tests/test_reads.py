"""Reader over fake shards: the group-by second round, and query pages with reduce_stop_for_best."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pymilvus import DataType
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.router.catalog import CollectionView, _view
from mishards.router.limits import params_of
from mishards.router.reads import Reader
from mishards.v1 import meta_pb2

Hit = tuple[int, float, int]  # (pk, L2 distance, group)


def view(shards_num: int = 2) -> CollectionView:
    schema = schema_pb2.CollectionSchema(
        name="c",
        fields=[
            schema_pb2.FieldSchema(fieldID=100, name="pk", data_type=DataType.INT64, is_primary_key=True),
            schema_pb2.FieldSchema(fieldID=101, name="grp", data_type=DataType.INT64),
        ],
    )
    shards = [meta_pb2.ShardPlacement(index=i, physical_name=f"p{i}") for i in range(shards_num)]
    message = meta_pb2.Collection(
        id=1, name="c", shards_num=shards_num, shards=shards, schema=schema.SerializeToString()
    )
    return _view(message)


class FakeReader(Reader):
    """Each shard answers from its own rows; `requests` records what every shard was sent."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[Any] = []

    async def _fan_out(self, view: CollectionView, method: str, request: Any, build: Any) -> list[Any]:
        out = []
        for shard in view.shards:
            req = build(shard.physical_name)
            self.requests.append(req)
            out.append(self.answer(shard.index, req))
        return out


def group_search(rows: list[Hit], req: milvus_pb2.SearchRequest) -> milvus_pb2.SearchResults:
    """One shard's group-by search that stops early, as a single Milvus may.

    It looks at its best `topk * group_size` hits only (after the filter), so a group can
    come back short of hits the shard holds.
    """
    params = params_of(req.search_params)
    topk, group_size = int(params["topk"]), int(params.get("group_size", "1"))
    allowed = re.search(r"grp in \[([^\]]*)\]", req.dsl)
    wanted = {int(v) for v in allowed.group(1).split(",")} if allowed else None
    seen = sorted((h for h in rows if wanted is None or h[2] in wanted), key=lambda h: (h[1], h[0]))
    groups: dict[int, list[Hit]] = {}
    for h in seen[: topk * group_size]:
        groups.setdefault(h[2], [])
        if len(groups[h[2]]) < group_size:
            groups[h[2]].append(h)
    hits = [h for g in list(groups)[:topk] for h in groups[g]]
    res = schema_pb2.SearchResultData(num_queries=1, top_k=topk, scores=[h[1] for h in hits], topks=[len(hits)])
    res.ids.int_id.data.extend(h[0] for h in hits)
    res.group_by_field_value.CopyFrom(schema_pb2.FieldData(field_name="grp", type=DataType.INT64))
    res.group_by_field_value.scalars.long_data.data.extend(h[2] for h in hits)
    return milvus_pb2.SearchResults(status=common_pb2.Status(), results=res)


def reference(shards: list[list[Hit]], limit: int, offset: int, group_size: int) -> list[tuple[int, list[int]]]:
    """Exact group-by over all rows: groups by best hit, `group_size` best hits each."""
    groups: dict[int, list[Hit]] = {}
    for h in sorted((h for rows in shards for h in rows), key=lambda h: (h[1], h[0])):
        groups.setdefault(h[2], []).append(h)
    return [(g, [h[0] for h in hits[:group_size]]) for g, hits in list(groups.items())[offset : offset + limit]]


def answered(res: milvus_pb2.SearchResults) -> list[tuple[int, list[int]]]:
    out: list[tuple[int, list[int]]] = []
    for pk, g in zip(res.results.ids.int_id.data, res.results.group_by_field_value.scalars.long_data.data):
        if not out or out[-1][0] != g:
            out.append((g, []))
        out[-1][1].append(pk)
    return out


SHARDS: list[list[Hit]] = [
    [(1, 0.10, 1), (2, 0.20, 2), (3, 0.30, 3), (4, 0.90, 1), (9, 0.95, 2)],
    [(5, 0.15, 2), (6, 0.25, 3), (7, 0.35, 4), (8, 0.50, 1), (10, 0.60, 2)],
]


def search(limit: int, offset: int, group_size: int, strict: bool = False) -> tuple[FakeReader, Any]:
    reader = FakeReader(lambda shard, req: group_search(SHARDS[shard], req))
    req = milvus_pb2.SearchRequest(collection_name="c", nq=1, dsl_type=common_pb2.BoolExprV1)
    params = {"topk": limit, "offset": offset, "group_by_field": "grp", "group_size": group_size,
              "metric_type": "L2", "strict_group_size": str(strict).lower()}  # fmt: skip
    for k, v in params.items():
        req.search_params.add(key=k, value=str(v))
    return reader, asyncio.run(reader.search(view(), req))


def test_second_round_fills_the_winning_groups_from_every_shard() -> None:
    reader, res = search(limit=2, offset=0, group_size=2)
    # first round: shard 1 leaves group 1 out of its best groups (it holds pk 8 of it)
    assert answered(res) == reference(SHARDS, 2, 0, 2) == [(1, [1, 8]), (2, [5, 2])]
    second = reader.requests[2:]
    assert len(second) == 2 and all(r.dsl == "grp in [1, 2]" for r in second)
    assert all(params_of(r.search_params)["topk"] == "2" for r in second)


def test_second_round_with_offset_and_a_filter() -> None:
    reader, res = search(limit=2, offset=1, group_size=3)
    assert answered(res) == reference(SHARDS, 2, 1, 3) == [(2, [5, 2, 10]), (3, [6, 3])]
    assert {r.dsl for r in reader.requests[2:]} == {"grp in [1, 2, 3]"}


def test_strict_group_size_keeps_only_full_groups() -> None:
    _, res = search(limit=3, offset=0, group_size=2, strict=True)
    full = [g for g in reference(SHARDS, 4, 0, 2) if len(g[1]) == 2]
    assert answered(res) == full[:3] == [(1, [1, 8]), (2, [5, 2]), (3, [6, 3])]


def test_one_hit_per_group_needs_no_second_round() -> None:
    reader, res = search(limit=3, offset=0, group_size=1)
    assert answered(res) == reference(SHARDS, 3, 0, 1)
    assert len(reader.requests) == 2


def query_shard(rows: list[int], req: milvus_pb2.QueryRequest) -> milvus_pb2.QueryResults:
    """A shard whose rows sit in two segments: with reduce_stop_for_best it stops when one drains."""
    params = params_of(req.query_params)
    limit = int(params["limit"])
    segments = [rows[: len(rows) // 2], rows[len(rows) // 2 :]]
    if params.get("reduce_stop_for_best", "false").lower() == "true":
        merged, cursors = [], [0, 0]
        while all(c < len(s) for c, s in zip(cursors, segments)) and len(merged) < limit:
            i = 0 if segments[0][cursors[0]] < segments[1][cursors[1]] else 1
            merged.append(segments[i][cursors[i]])
            cursors[i] += 1
    else:
        merged = sorted(rows)[:limit]
    pk = schema_pb2.FieldData(field_name="pk", type=DataType.INT64, field_id=100)
    pk.scalars.long_data.data.extend(merged)
    return milvus_pb2.QueryResults(status=common_pb2.Status(), fields_data=[pk], output_fields=["pk"])


def test_query_page_skips_no_row_when_the_client_asks_reduce_stop_for_best() -> None:
    # shard 0's segments: [1, 3] and [5, 7, 9]; stopping at the first drained one it would
    # answer [1, 3] only, and a page filled from shard 1 would skip 5 for good
    rows = [[1, 3, 5, 7, 9], [2, 4, 6, 8, 10, 12]]
    reader = FakeReader(lambda shard, req: query_shard(rows[shard], req))
    req = milvus_pb2.QueryRequest(collection_name="c", expr="pk > 0", output_fields=["pk"])
    for k, v in {"limit": "6", "reduce_stop_for_best": "True", "iterator": "True"}.items():
        req.query_params.add(key=k, value=v)
    res = asyncio.run(reader.query(view(), req))
    assert list(res.fields_data[0].scalars.long_data.data) == [1, 2, 3, 4, 5, 6]
    assert all("reduce_stop_for_best" not in params_of(r.query_params) for r in reader.requests)


def test_no_backend_session_timestamp_reaches_the_client() -> None:
    # a backend's session_ts is its own clock (DESIGN.md, Timestamps): neither a one-shard
    # answer (passed on without a merge) nor a merged one carries it
    def answer(shard: int, req: Any) -> milvus_pb2.QueryResults:
        res = query_shard([shard + 1], req)
        res.session_ts = 449_000_000_000_000_000 + shard
        return res

    req = milvus_pb2.QueryRequest(collection_name="c", expr="pk > 0", output_fields=["pk"])
    req.query_params.add(key="limit", value="5")
    for shards_num in (1, 2):
        res = asyncio.run(FakeReader(answer).query(view(shards_num), req))
        assert res.session_ts == 0
        assert res.collection_name == "c"


def test_a_one_shard_search_sends_the_clients_request_itself_with_backend_only_keys_taken_out() -> None:
    def ok(shard: int, req: Any) -> milvus_pb2.SearchResults:
        return milvus_pb2.SearchResults(status=common_pb2.Status(), results=schema_pb2.SearchResultData(num_queries=1))

    def sent(pairs: list[tuple[str, str]]) -> tuple[milvus_pb2.SearchRequest, milvus_pb2.SearchRequest]:
        reader = FakeReader(ok)
        req = milvus_pb2.SearchRequest(collection_name="c", nq=1, dsl_type=common_pb2.BoolExprV1, db_name="db")
        for k, v in pairs:
            req.search_params.add(key=k, value=v)
        asyncio.run(reader.search(view(1), req))
        return req, reader.requests[0]

    req, out = sent([("topk", "3"), ("metric_type", "L2")])
    assert out is req and out.collection_name == "p0" and out.db_name == ""  # no copy for one shard
    assert [(kv.key, kv.value) for kv in out.search_params] == [("topk", "3"), ("metric_type", "L2")]
    _, out = sent([("topk", "3"), ("search_iter_v2", "true"), ("collection_id", "9")])
    assert params_of(out.search_params) == {"topk": "3"} and len(out.search_params) == 1
    _, out = sent([("topk", "3"), ("topk", "5")])  # a repeated key goes once, as the router read it
    assert [(kv.key, kv.value) for kv in out.search_params] == [("topk", "5")]
