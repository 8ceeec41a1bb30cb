"""Tests of mishards.router.merge against a plain-Python reference merge."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymilvus import DataType
from pymilvus.grpc_gen import schema_pb2

from mishards.router.merge import (
    larger_is_better,
    merge_query_results,
    merge_search_results,
    sum_counts,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Hit = tuple[Any, float, int]  # (pk, score, shard)


def _fields(hits: list[Hit]) -> list[schema_pb2.FieldData]:
    """Output columns derived from each hit: its shard, its pk as text, a vector."""
    shard = schema_pb2.FieldData(field_name="shard", type=DataType.INT64)
    shard.scalars.long_data.data.extend([h[2] for h in hits])
    label = schema_pb2.FieldData(field_name="label", type=DataType.VARCHAR)
    label.scalars.string_data.data.extend([f"pk={h[0]}" for h in hits])
    vec = schema_pb2.FieldData(field_name="vec", type=DataType.FLOAT_VECTOR)
    vec.vectors.dim = 2
    vec.vectors.float_vector.data.extend([x for h in hits for x in (h[1], float(h[2]))])
    return [shard, label, vec]


def _ids(pks: list[Any], str_pk: bool) -> schema_pb2.IDs:
    if str_pk:
        return schema_pb2.IDs(str_id=schema_pb2.StringArray(data=pks))
    return schema_pb2.IDs(int_id=schema_pb2.LongArray(data=pks))


def _part(per_query: list[list[Hit]], str_pk: bool, group_by: bool = False) -> schema_pb2.SearchResultData:
    flat = [h for q in per_query for h in q]
    res = schema_pb2.SearchResultData(
        num_queries=len(per_query),
        top_k=max((len(q) for q in per_query), default=0),
        scores=[h[1] for h in flat],
        distances=[h[1] for h in flat],
        ids=_ids([h[0] for h in flat], str_pk),
        topks=[len(q) for q in per_query],
        output_fields=["shard", "label", "vec"],
        fields_data=_fields(flat),
        all_search_count=len(flat),
        primary_field_name="pk",
    )
    if group_by:
        gb = schema_pb2.FieldData(field_name="grp", type=DataType.INT64)
        gb.scalars.long_data.data.extend([h[2] * 1000 for h in flat])
        res.group_by_field_value.CopyFrom(gb)
    return res


def _reference(shards: list[list[list[Hit]]], nq: int, limit: int, offset: int, ip: bool) -> list[list[Hit]]:
    out = []
    for q in range(nq):
        union = [h for shard in shards for h in shard[q]]
        union.sort(key=lambda h: (-h[1] if ip else h[1], h[0]))  # stable: shard order on ties
        seen: set[Any] = set()
        unique = []
        for h in union:
            if h[0] not in seen:
                seen.add(h[0])
                unique.append(h)
        out.append(unique[offset : offset + limit])
    return out


@st.composite
def _shards(draw: st.DrawFn, nq: int, str_pk: bool, ip: bool, topk: int) -> list[list[list[Hit]]]:
    nshards = draw(st.integers(1, 4))
    pk = st.integers(0, 30).map(lambda x: f"k{x:02d}" if str_pk else x - 10)
    score = st.integers(0, 6).map(float)  # few values: many ties
    shards = []
    for s in range(nshards):
        per_query = []
        for _ in range(nq):
            pks = draw(st.lists(pk, unique=True, max_size=topk))
            hits = [(p, draw(score), s) for p in pks]
            hits.sort(key=lambda h: (-h[1] if ip else h[1], h[0]))
            per_query.append(hits)
        shards.append(per_query)
    return shards


def _hits(res: schema_pb2.SearchResultData, nq: int) -> list[list[Hit]]:
    fields = {fd.field_name: fd for fd in res.fields_data}
    pks = list(res.ids.str_id.data) if res.ids.HasField("str_id") else list(res.ids.int_id.data)
    shard = list(fields["shard"].scalars.long_data.data)
    labels = list(fields["label"].scalars.string_data.data)
    vec = list(fields["vec"].vectors.float_vector.data)
    assert labels == [f"pk={p}" for p in pks]  # fields travel with their hit
    assert vec[0::2] == list(res.scores) == list(res.distances)
    assert vec[1::2] == [float(s) for s in shard]
    out, start = [], 0
    for k in res.topks:
        out.append(
            list(
                zip(
                    pks[start : start + k],
                    res.scores[start : start + k],
                    shard[start : start + k],
                    strict=True,
                )
            )
        )
        start += k
    assert len(out) == nq and start == len(pks)
    return out


@SETTINGS
@given(
    data=st.data(),
    nq=st.integers(1, 4),
    str_pk=st.booleans(),
    metric=st.sampled_from(["IP", "L2", "cosine", "HAMMING"]),
    limit=st.integers(0, 6),
    offset=st.integers(0, 4),
)
def test_merge_search_equals_sorted_deduped_union(
    data: st.DataObject, nq: int, str_pk: bool, metric: str, limit: int, offset: int
) -> None:
    ip = larger_is_better(metric)
    shards = data.draw(_shards(nq, str_pk, ip, offset + limit))
    parts = [_part(s, str_pk, group_by=True) for s in shards]
    res = merge_search_results(parts, nq=nq, limit=limit, offset=offset, metric_type=metric)
    want = _reference(shards, nq, limit, offset, ip)
    assert _hits(res, nq) == want
    assert list(res.topks) == [len(w) for w in want]
    assert (res.num_queries, res.top_k) == (nq, limit)
    assert res.all_search_count == sum(p.all_search_count for p in parts)
    assert list(res.output_fields) == ["shard", "label", "vec"]
    assert res.primary_field_name == "pk"
    assert list(res.group_by_field_value.scalars.long_data.data) == [h[2] * 1000 for q in want for h in q]
    assert res.ids.WhichOneof("id_field") == ("str_id" if str_pk else "int_id")


def test_ties_prefer_smaller_pk_and_duplicates_keep_best_score() -> None:
    a = _part([[(7, 0.9, 0), (5, 0.5, 0), (3, 0.5, 0)]], str_pk=False)
    b = _part([[(4, 0.9, 1), (7, 0.8, 1), (2, 0.1, 1)]], str_pk=False)
    res = merge_search_results([a, b], nq=1, limit=10, offset=0, metric_type="IP")
    assert list(res.ids.int_id.data) == [4, 7, 3, 5, 2]
    assert list(res.scores) == pytest.approx([0.9, 0.9, 0.5, 0.5, 0.1])
    assert list(res.fields_data[0].scalars.long_data.data) == [1, 0, 0, 0, 1]

    l2a = _part([[("b", 1.0, 0), ("c", 3.0, 0)]], str_pk=True)
    l2b = _part([[("a", 1.0, 1), ("c", 2.0, 1)]], str_pk=True)
    res = merge_search_results([l2a, l2b], nq=1, limit=2, offset=1, metric_type="L2")
    assert list(res.ids.str_id.data) == ["b", "c"]
    assert list(res.scores) == [1.0, 2.0]
    assert list(res.topks) == [2]


def test_empty_parts_and_no_hits() -> None:
    hit = _part([[(1, 0.5, 0)], []], str_pk=False)
    empty = schema_pb2.SearchResultData()
    no_hits = _part([[], []], str_pk=False)
    res = merge_search_results([empty, hit, no_hits], nq=2, limit=3, offset=0, metric_type="IP")
    assert list(res.topks) == [1, 0]
    assert list(res.ids.int_id.data) == [1]
    res = merge_search_results([empty, no_hits], nq=2, limit=3, offset=0, metric_type="IP")
    assert list(res.topks) == [0, 0] and len(res.scores) == 0
    assert res.ids.WhichOneof("id_field") == "int_id"
    assert merge_search_results([], nq=1, limit=3, offset=0, metric_type="L2").topks == [0]


def test_search_without_output_fields_and_inconsistent_parts() -> None:
    res = schema_pb2.SearchResultData(num_queries=1, top_k=2, scores=[0.1, 0.2], ids=_ids([1, 2], False), topks=[2])
    out = merge_search_results([res, res], nq=1, limit=5, offset=0, metric_type="L2")
    assert list(out.ids.int_id.data) == [1, 2] and len(out.fields_data) == 0
    with pytest.raises(ValueError):
        merge_search_results([res], nq=2, limit=5, offset=0, metric_type="L2")
    bad = schema_pb2.SearchResultData(num_queries=1, scores=[0.1], ids=_ids([1, 2], False), topks=[2])
    with pytest.raises(ValueError):
        merge_search_results([bad], nq=1, limit=5, offset=0, metric_type="L2")


def test_larger_is_better() -> None:
    for metric in [
        "IP",
        "ip",
        "COSINE",
        "BM25",
        "MAX_SIM",
        "MAX_SIM_COSINE",
        "max_sim_ip",
        "MHJACCARD",
    ]:
        assert larger_is_better(metric), metric
    for metric in [
        "L2",
        "HAMMING",
        "JACCARD",
        "MAX_SIM_L2",
        "MAX_SIM_HAMMING",
        "",
        "SUBSTRUCTURE",
    ]:
        assert not larger_is_better(metric), metric


def _query_part(pks: list[Any], shard: int) -> list[schema_pb2.FieldData]:
    pk = schema_pb2.FieldData(
        field_name="pk",
        type=DataType.VARCHAR if pks and isinstance(pks[0], str) else DataType.INT64,
    )
    if pks and isinstance(pks[0], str):
        pk.scalars.string_data.data.extend(pks)
    else:
        pk.scalars.long_data.data.extend(pks)
    tag = schema_pb2.FieldData(field_name="tag", type=DataType.VARCHAR)
    tag.scalars.string_data.data.extend([f"{p}@{shard}" for p in pks])
    return [pk, tag] if pks else []


@SETTINGS
@given(
    data=st.data(),
    str_pk=st.booleans(),
    limit=st.one_of(st.none(), st.integers(0, 8)),
    offset=st.integers(0, 5),
)
def test_merge_query_orders_by_pk_then_slices(
    data: st.DataObject, str_pk: bool, limit: int | None, offset: int
) -> None:
    pk = st.integers(-20, 20).map(lambda x: f"k{x + 20:02d}" if str_pk else x)
    shards = data.draw(st.lists(st.lists(pk, unique=True, max_size=6), min_size=1, max_size=4))
    parts = [_query_part(pks, s) for s, pks in enumerate(shards)]
    got = merge_query_results(parts, "pk", limit, offset)
    first_shard: dict[Any, int] = {}
    for s, pks in enumerate(shards):
        for p in pks:
            first_shard.setdefault(p, s)
    want = sorted(first_shard)
    want = want[offset:] if limit is None else want[offset : offset + limit]
    if not any(shards):
        assert got == []
        return
    fields = {fd.field_name: fd for fd in got}
    values = fields["pk"].scalars.string_data.data if str_pk else fields["pk"].scalars.long_data.data
    assert list(values) == want
    assert list(fields["tag"].scalars.string_data.data) == [f"{p}@{first_shard[p]}" for p in want]


def test_merge_query_requires_pk() -> None:
    with pytest.raises(ValueError):
        merge_query_results([_query_part([1, 2], 0)], "id", None, 0)
    assert merge_query_results([[], []], "pk", 10, 0) == []


def test_sum_counts() -> None:
    def count(n: int) -> list[schema_pb2.FieldData]:
        fd = schema_pb2.FieldData(field_name="count(*)", type=DataType.INT64)
        fd.scalars.long_data.data.append(n)
        return [fd]

    (total,) = sum_counts([count(3), count(0), count(39)])
    assert total.field_name == "count(*)" and total.type == DataType.INT64
    assert list(total.scalars.long_data.data) == [42]
    (zero,) = sum_counts([])
    assert list(zero.scalars.long_data.data) == [0]
    with pytest.raises(ValueError):
        sum_counts([[schema_pb2.FieldData(field_name="pk")]])


def test_merge_is_vectorised_for_large_answers() -> None:
    rng = np.random.default_rng(1)
    nq, k, dim = 64, 100, 32
    parts = []
    for _ in range(4):
        pks = rng.choice(10**9, size=nq * k, replace=False)
        scores = np.sort(rng.random((nq, k)).astype(np.float32), axis=1)[:, ::-1].ravel()
        vec = schema_pb2.FieldData(field_name="v", type=DataType.FLOAT_VECTOR)
        vec.vectors.dim = dim
        vec.vectors.float_vector.data.extend(np.repeat(pks.astype(np.float32), dim).tolist())
        parts.append(
            schema_pb2.SearchResultData(
                num_queries=nq,
                top_k=k,
                scores=scores.tolist(),
                ids=_ids(pks.tolist(), False),
                topks=[k] * nq,
                fields_data=[vec],
            )
        )
    res = merge_search_results(parts, nq=nq, limit=k, offset=0, metric_type="IP")
    assert list(res.topks) == [k] * nq
    vecs = np.array(res.fields_data[0].vectors.float_vector.data).reshape(-1, dim)
    assert np.array_equal(vecs[:, 0], np.array(res.ids.int_id.data, dtype=np.float32))
    scores = np.array(res.scores).reshape(nq, k)
    assert np.all(np.diff(scores, axis=1) <= 0)
