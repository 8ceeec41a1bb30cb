"""Group-by merge, hybrid rerank and range-search merge against plain-Python references.

The references follow the Milvus sources the merge functions cite: the proxy's
``reduceSearchResultDataWithGroupBy`` (groups by best hit, offset/limit over groups,
at most ``group_size`` hits each) and ``internal/util/function/rerank`` (RRF and
weighted scores in float32, ties by the smaller primary key).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymilvus import DataType
from pymilvus.grpc_gen import schema_pb2

from mishards.router.merge import (
    larger_is_better,
    merge_group_by_results,
    merge_search_results,
    rerank_hybrid,
    rerank_rrf,
    rerank_weighted,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
F32 = np.float32
Hit = tuple[Any, float, int]  # (pk, score, source: shard or sub-search index)


# building answers ---------------------------------------------------------------------


def _group_value(pk: Any, kind: str) -> Any:
    """The group of an entity, a function of its pk (an entity is in one group on every shard)."""
    n = int(pk[1:]) if isinstance(pk, str) else pk
    if kind == "nullable" and n % 5 == 0:
        return None
    if kind == "varchar":
        return f"g{n % 4}"
    return n % 4


def _group_column(values: list[Any], kind: str) -> schema_pb2.FieldData:
    if kind == "varchar":
        fd = schema_pb2.FieldData(field_name="grp", type=DataType.VARCHAR)
        fd.scalars.string_data.data.extend(values)
        return fd
    fd = schema_pb2.FieldData(field_name="grp", type=DataType.INT64)
    fd.scalars.long_data.data.extend([0 if v is None else v for v in values])  # padded like Milvus
    if kind == "nullable":
        fd.valid_data.extend([v is not None for v in values])
    return fd


def _answer(per_query: list[list[Hit]], str_pk: bool, group_kind: str | None = None) -> schema_pb2.SearchResultData:
    """A search answer whose ``tag`` column says which pk and which source each hit came from."""
    flat = [h for q in per_query for h in q]
    pks = [h[0] for h in flat]
    res = schema_pb2.SearchResultData(
        num_queries=len(per_query),
        top_k=max((len(q) for q in per_query), default=0),
        scores=[h[1] for h in flat],
        topks=[len(q) for q in per_query],
        output_fields=["tag"],
        all_search_count=len(flat),
        primary_field_name="pk",
    )
    if str_pk:
        res.ids.str_id.data.extend(pks)
    else:
        res.ids.int_id.data.extend(pks)
    tag = schema_pb2.FieldData(field_name="tag", type=DataType.VARCHAR)
    tag.scalars.string_data.data.extend([f"{h[0]}@{h[2]}" for h in flat])
    res.fields_data.append(tag)
    if group_kind is not None:
        res.group_by_field_value.CopyFrom(_group_column([_group_value(p, group_kind) for p in pks], group_kind))
    return res


def _pks(res: schema_pb2.SearchResultData) -> list[Any]:
    return list(res.ids.str_id.data) if res.ids.WhichOneof("id_field") == "str_id" else list(res.ids.int_id.data)


def _tags(res: schema_pb2.SearchResultData) -> list[str]:
    (tag,) = [fd for fd in res.fields_data if fd.field_name == "tag"]
    return list(tag.scalars.string_data.data)


def _split(values: list[Any], topks: list[int]) -> list[list[Any]]:
    out, start = [], 0
    for k in topks:
        out.append(values[start : start + k])
        start += k
    assert start == len(values)
    return out


def _hits_of(res: schema_pb2.SearchResultData) -> list[list[Hit]]:
    """Per query (pk, score, source) read back from an answer; the source comes from the tag."""
    pks, tags = _pks(res), _tags(res)
    assert [t.rsplit("@", 1)[0] for t in tags] == [str(p) for p in pks]  # fields travel with their hit
    flat = [(p, s, int(t.rsplit("@", 1)[1])) for p, s, t in zip(pks, res.scores, tags)]
    return _split(flat, list(res.topks))


@st.composite
def _ranked(
    draw: st.DrawFn, source: int, nq: int, str_pk: bool, ip: bool, max_hits: int, scores: st.SearchStrategy[float]
) -> list[list[Hit]]:
    """One source's answer: per query unique pks in score order."""
    pk = st.integers(0, 24).map(lambda x: f"k{x:02d}" if str_pk else x)
    per_query = []
    for _ in range(nq):
        hits = [(p, draw(scores), source) for p in draw(st.lists(pk, unique=True, max_size=max_hits))]
        hits.sort(key=lambda h: (-h[1] if ip else h[1], h[0]))
        per_query.append(hits)
    return per_query


@st.composite
def _sources(
    draw: st.DrawFn, nq: int, str_pk: bool, ip: bool, max_hits: int, scores: st.SearchStrategy[float]
) -> list[list[list[Hit]]]:
    """Answers of 1-4 sources (shards or sub-searches)."""
    return [draw(_ranked(s, nq, str_pk, ip, max_hits, scores)) for s in range(draw(st.integers(1, 4)))]


FEW_SCORES = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.5])  # few values: many ties


# group-by -----------------------------------------------------------------------------


def _group_reference(
    shards: list[list[list[Hit]]],
    nq: int,
    limit: int,
    offset: int,
    ip: bool,
    group_size: int,
    kind: str,
    strict: bool = False,
) -> list[list[Hit]]:
    out = []
    for q in range(nq):
        union = [h for shard in shards for h in shard[q]]
        union.sort(key=lambda h: (-h[1] if ip else h[1], h[0]))  # stable: shard order on ties
        seen: set[Any] = set()
        groups: dict[Any, list[Hit]] = {}  # insertion order = order of each group's best hit
        for h in union:
            if h[0] in seen:
                continue
            seen.add(h[0])
            members = groups.setdefault(_group_value(h[0], kind), [])
            if len(members) < group_size:
                members.append(h)
        full = [m for m in groups.values() if not strict or len(m) >= group_size]
        kept = full[offset : offset + limit]
        out.append([h for members in kept for h in members])
    return out


@SETTINGS
@given(
    data=st.data(),
    nq=st.integers(1, 3),
    str_pk=st.booleans(),
    metric=st.sampled_from(["IP", "L2", "COSINE", "HAMMING"]),
    limit=st.integers(0, 4),
    offset=st.integers(0, 3),
    group_size=st.integers(1, 3),
    kind=st.sampled_from(["int64", "varchar", "nullable"]),
    strict=st.booleans(),
)
def test_group_by_merge_equals_reference(
    data: st.DataObject,
    nq: int,
    str_pk: bool,
    metric: str,
    limit: int,
    offset: int,
    group_size: int,
    kind: str,
    strict: bool,
) -> None:
    ip = larger_is_better(metric)
    shards = data.draw(_sources(nq, str_pk, ip, (offset + limit) * group_size, FEW_SCORES))
    parts = [_answer(s, str_pk, kind) for s in shards]
    res = merge_group_by_results(parts, nq, limit, offset, metric, group_size=group_size, strict_group_size=strict)
    want = _group_reference(shards, nq, limit, offset, ip, group_size, kind, strict)
    assert _hits_of(res) == want
    assert list(res.topks) == [len(w) for w in want]
    assert (res.num_queries, res.top_k) == (nq, limit)
    assert res.all_search_count == sum(p.all_search_count for p in parts)
    assert res.ids.WhichOneof("id_field") == ("str_id" if str_pk else "int_id")
    # group values travel with their hit, in the column's own layout
    gb = res.group_by_field_value
    values = list(gb.scalars.string_data.data if kind == "varchar" else gb.scalars.long_data.data)
    if kind == "nullable":
        values = [v if ok else None for v, ok in zip(values, gb.valid_data)]
    assert values == [_group_value(h[0], kind) for q in want for h in q]
    # each query: at most `limit` groups, at most `group_size` hits each, a group's hits together
    for hits in want:
        runs = [_group_value(h[0], kind) for h in hits]
        distinct = list(dict.fromkeys(runs))
        assert len(distinct) <= limit
        assert all(runs.count(g) <= group_size for g in distinct)
        assert runs == [g for g in distinct for _ in range(runs.count(g))]


@SETTINGS
@given(
    data=st.data(),
    nq=st.integers(1, 3),
    limit=st.integers(1, 4),
    offset=st.integers(0, 3),
    group_size=st.integers(1, 3),
)
def test_group_offset_and_limit_slice_the_group_list(
    data: st.DataObject, nq: int, limit: int, offset: int, group_size: int
) -> None:
    """Groups of (offset, limit) are the groups offset.. of the answer with offset 0 and a larger limit."""
    shards = data.draw(_sources(nq, False, True, (offset + limit) * group_size, FEW_SCORES))
    parts = [_answer(s, False, "int64") for s in shards]
    page = merge_group_by_results(parts, nq, limit, offset, "IP", group_size=group_size)
    whole = merge_group_by_results(parts, nq, offset + limit, 0, "IP", group_size=group_size)
    for got, every in zip(_hits_of(page), _hits_of(whole)):
        groups: dict[Any, list[Hit]] = {}
        for h in every:
            groups.setdefault(_group_value(h[0], "int64"), []).append(h)
        assert got == [h for members in list(groups.values())[offset : offset + limit] for h in members]


def test_group_by_example_with_duplicates_offset_and_two_queries() -> None:
    # query 0, IP: groups by best hit: g1 (0.9: pk 1), g2 (0.8: pk 2), g3 (0.5: pk 3), g0 (0.4: pk 4)
    a = _answer([[(1, 0.9, 0), (5, 0.7, 0), (3, 0.5, 0)], [(6, 1.0, 0)]], False, "int64")
    b = _answer([[(2, 0.8, 1), (9, 0.75, 1), (5, 0.6, 1), (4, 0.4, 1)], []], False, "int64")
    res = merge_group_by_results([a, b], nq=2, limit=2, offset=1, metric_type="IP", group_size=2)
    # pk 5 comes twice (0.7 and 0.6): kept once at 0.7; g1 = {1, 5, 9} keeps 1 and 5 and is skipped (offset 1)
    assert _hits_of(res) == [[(2, pytest.approx(0.8), 1), (3, 0.5, 0)], []]
    assert list(res.group_by_field_value.scalars.long_data.data) == [2, 3]
    res = merge_group_by_results([a, b], nq=2, limit=1, offset=0, metric_type="IP", group_size=3)
    assert _hits_of(res) == [[(1, pytest.approx(0.9), 0), (9, 0.75, 1), (5, pytest.approx(0.7), 0)], [(6, 1.0, 0)]]
    assert list(res.topks) == [3, 1]


def test_group_by_l2_orders_by_smallest_distance() -> None:
    a = _answer([[(4, 0.1, 0), (8, 0.2, 0), (1, 3.0, 0)]], False, "int64")  # groups 0, 0, 1
    b = _answer([[(2, 0.15, 1), (6, 0.3, 1)]], False, "int64")  # groups 2, 2
    res = merge_group_by_results([a, b], nq=1, limit=2, offset=0, metric_type="L2", group_size=1)
    assert _pks(res) == [4, 2] and list(res.scores) == pytest.approx([0.1, 0.15])


def test_group_by_multiple_fields_and_errors() -> None:
    def part(pks: list[int], scores: list[float], colors: list[str], sizes: list[int]) -> schema_pb2.SearchResultData:
        res = schema_pb2.SearchResultData(num_queries=1, top_k=len(pks), scores=scores, topks=[len(pks)])
        res.ids.int_id.data.extend(pks)
        color = res.group_by_field_values.add(field_name="color", type=DataType.VARCHAR)
        color.scalars.string_data.data.extend(colors)
        size = res.group_by_field_values.add(field_name="size", type=DataType.INT64)
        size.scalars.long_data.data.extend(sizes)
        return res

    a = part([1, 2, 3], [0.9, 0.8, 0.7], ["red", "red", "blue"], [1, 2, 1])
    b = part([4, 5], [0.85, 0.6], ["red", "blue"], [1, 1])
    res = merge_group_by_results([a, b], nq=1, limit=2, offset=0, metric_type="COSINE", group_size=2)
    # groups (red, 1) = {1, 4}, (red, 2) = {2}; (blue, 1) is the third group
    assert _pks(res) == [1, 4, 2]
    assert [list(fd.scalars.string_data.data or fd.scalars.long_data.data) for fd in res.group_by_field_values] == [
        ["red", "red", "red"],
        [1, 1, 2],
    ]

    plain = schema_pb2.SearchResultData(num_queries=1, top_k=1, scores=[0.5], topks=[1])
    plain.ids.int_id.data.append(7)
    with pytest.raises(ValueError, match="group-by values"):
        merge_group_by_results([plain], nq=1, limit=1, offset=0, metric_type="IP")
    with pytest.raises(ValueError):
        merge_group_by_results([a], nq=1, limit=1, offset=0, metric_type="IP", group_size=0)
    empty = merge_group_by_results([schema_pb2.SearchResultData()], nq=2, limit=3, offset=0, metric_type="IP")
    assert list(empty.topks) == [0, 0] and _pks(empty) == []


# hybrid rerank ------------------------------------------------------------------------


def _rrf_reference(subs: list[list[list[Hit]]], nq: int, k: float, limit: int, offset: int) -> list[list[Hit]]:
    out = []
    for q in range(nq):
        total: dict[Any, np.float32] = {}
        first: dict[Any, int] = {}
        for sub in subs:
            for rank, (pk, _, source) in enumerate(sub[q], start=1):
                add = F32(1) / (F32(k) + F32(rank))
                total[pk] = total[pk] + add if pk in total else add
                first.setdefault(pk, source)
        ranked = sorted(total, key=lambda p: (-total[p], p))[offset : offset + limit]
        out.append([(p, float(total[p]), first[p]) for p in ranked])
    return out


def _atan32(x: np.float32) -> np.float32:
    return F32(math.atan(float(x)))


def _normalized(metric: str, score: float, norm: bool, mixed: bool) -> np.float32:
    s = F32(score)
    larger = metric in ("COSINE", "IP", "BM25")
    if not norm:
        return s if larger or not mixed else F32(1) - F32(2) * _atan32(s) / F32(math.pi)
    if metric == "COSINE":
        return (F32(1) + s) * F32(0.5)
    if metric == "IP":
        return F32(0.5) + _atan32(s) / F32(math.pi)
    if metric == "BM25":
        return F32(2) * _atan32(s) / F32(math.pi)
    return F32(1) - F32(2) * _atan32(s) / F32(math.pi)


def _weighted_reference(
    subs: list[list[list[Hit]]],
    nq: int,
    weights: list[float],
    metrics: list[str],
    norm: bool,
    limit: int,
    offset: int,
) -> list[list[Hit]]:
    larger = [m in ("COSINE", "IP", "BM25") for m in metrics]
    mixed = any(larger) and not all(larger)
    descending = norm or mixed or all(larger)
    out = []
    for q in range(nq):
        total: dict[Any, np.float32] = {}
        first: dict[Any, int] = {}
        for i, sub in enumerate(subs):
            for pk, score, source in sub[q]:
                add = F32(weights[i]) * _normalized(metrics[i], score, norm, mixed)
                total[pk] = total[pk] + add if pk in total else add
                first.setdefault(pk, source)
        ranked = sorted(total, key=lambda p: (-total[p] if descending else total[p], p))[offset : offset + limit]
        out.append([(p, float(total[p]), first[p]) for p in ranked])
    return out


def _check_hybrid(res: schema_pb2.SearchResultData, want: list[list[Hit]], nq: int, limit: int) -> None:
    assert _hits_of(res) == want
    assert list(res.topks) == [len(w) for w in want]
    assert (res.num_queries, res.top_k) == (nq, limit)


@SETTINGS
@given(
    data=st.data(),
    nq=st.integers(1, 3),
    str_pk=st.booleans(),
    k=st.sampled_from([1.0, 2.5, 60.0, 16383.0]),
    limit=st.integers(0, 6),
    offset=st.integers(0, 4),
)
def test_rrf_equals_reference(data: st.DataObject, nq: int, str_pk: bool, k: float, limit: int, offset: int) -> None:
    subs = data.draw(_sources(nq, str_pk, True, 6, FEW_SCORES))
    answers = [_answer(s, str_pk) for s in subs]
    want = _rrf_reference(subs, nq, k, limit, offset)
    _check_hybrid(rerank_rrf(answers, nq, k, limit, offset), want, nq, limit)
    via_entry = rerank_hybrid(answers, nq, "rrf", {"k": k}, ["IP"] * len(subs), limit, offset)
    assert via_entry == rerank_rrf(answers, nq, k, limit, offset)


@SETTINGS
@given(
    data=st.data(),
    nq=st.integers(1, 3),
    str_pk=st.booleans(),
    norm=st.booleans(),
    limit=st.integers(0, 6),
    offset=st.integers(0, 4),
)
def test_weighted_equals_reference(
    data: st.DataObject, nq: int, str_pk: bool, norm: bool, limit: int, offset: int
) -> None:
    nsubs = data.draw(st.integers(1, 3))
    metrics = data.draw(
        st.lists(st.sampled_from(["IP", "COSINE", "L2", "BM25", "HAMMING"]), min_size=nsubs, max_size=nsubs)
    )
    weights = data.draw(st.lists(st.sampled_from([0.0, 0.2, 0.5, 0.7, 1.0]), min_size=nsubs, max_size=nsubs))
    score_sets = {"COSINE": [-1.0, -0.5, 0.0, 0.5, 1.0], "IP": [-2.0, -0.5, 0.0, 0.5, 1.0, 4.0]}
    subs = [
        data.draw(
            _ranked(
                i,
                nq,
                str_pk,
                m in ("IP", "COSINE", "BM25"),
                6,
                st.sampled_from(score_sets.get(m, [0.0, 0.25, 0.5, 1.0, 2.0, 3.5])),
            )
        )
        for i, m in enumerate(metrics)
    ]
    answers = [_answer(s, str_pk) for s in subs]
    want = _weighted_reference(subs, nq, weights, metrics, norm, limit, offset)
    _check_hybrid(rerank_weighted(answers, nq, weights, metrics, limit, offset, norm_score=norm), want, nq, limit)
    params = {"weights": weights, "norm_score": norm}
    assert rerank_hybrid(answers, nq, "Weighted", params, metrics, limit, offset) == rerank_weighted(
        answers, nq, weights, metrics, limit, offset, norm_score=norm
    )


def test_rrf_example_fields_from_first_sub_search() -> None:
    dense = _answer([[(1, 0.9, 0), (2, 0.8, 0), (3, 0.1, 0)]], False)
    sparse = _answer([[(3, 9.0, 1), (1, 5.0, 1), (4, 1.0, 1)]], False)
    res = rerank_rrf([dense, sparse], nq=1, k=60, limit=3, offset=0)
    # 1: 1/61 + 1/62; 3: 1/63 + 1/61; 2: 1/62; 4: 1/63
    assert _pks(res) == [1, 3, 2]
    assert list(res.scores) == pytest.approx([1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62])
    assert _tags(res) == ["1@0", "3@0", "2@0"]  # from the first sub-search that returned the hit
    page = rerank_rrf([dense, sparse], nq=1, k=60, limit=5, offset=2)
    assert _pks(page) == [2, 4] and _tags(page) == ["2@0", "4@1"]


def test_weighted_formulas_and_order() -> None:
    ip = _answer([[(1, 0.0, 0), (2, -1.0, 0)]], False)
    cos = _answer([[(2, 1.0, 1), (1, -1.0, 1)]], False)
    l2 = _answer([[(1, 0.0, 2), (3, 1.0, 2)]], False)
    res = rerank_weighted([ip, cos, l2], 1, [1.0, 0.5, 0.25], ["IP", "COSINE", "L2"], limit=10, offset=0)
    # normalized: IP 0.5 + atan(s)/pi, COSINE (1 + s)/2, L2 1 - 2*atan(s)/pi
    want = {
        1: 1.0 * 0.5 + 0.5 * 0.0 + 0.25 * 1.0,
        2: 1.0 * (0.5 - 0.25) + 0.5 * 1.0,
        3: 0.25 * (1 - 2 * math.atan(1.0) / math.pi),
    }
    assert _pks(res) == [1, 2, 3]
    assert list(res.scores) == pytest.approx([want[1], want[2], want[3]], rel=1e-6)
    # BM25 normalizes to 2*atan(s)/pi
    bm25 = _answer([[(5, 1.0, 0)]], False)
    res = rerank_weighted([bm25], 1, [1.0], ["BM25"], limit=1, offset=0)
    assert list(res.scores) == pytest.approx([0.5])
    # without normalization, distances alone sort ascending (smaller weighted sum first)
    a = _answer([[(1, 0.5, 0), (2, 2.0, 0)]], False)
    b = _answer([[(2, 0.1, 1), (3, 3.0, 1)]], False)
    res = rerank_weighted([a, b], 1, [1.0, 1.0], ["L2", "L2"], limit=3, offset=0, norm_score=False)
    assert _pks(res) == [1, 2, 3] and list(res.scores) == pytest.approx([0.5, 2.1, 3.0])
    # ... and with normalization the best is the largest
    res = rerank_weighted([a, b], 1, [1.0, 1.0], ["L2", "L2"], limit=3, offset=0, norm_score=True)
    assert _pks(res)[0] == 2


def test_rerank_hybrid_params_and_errors() -> None:
    a = _answer([[(1, 0.9, 0), (2, 0.8, 0)], [(3, 0.5, 0)]], False)
    b = _answer([[(2, 0.7, 1)], []], False)
    default = rerank_hybrid([a, b], 2, "", {}, ["IP", "IP"], limit=5, offset=0)
    assert default == rerank_rrf([a, b], 2, 60, 5, 0)
    assert list(default.topks) == [2, 1] and _pks(default) == [2, 1, 3]
    as_text = rerank_hybrid([a, b], 2, "weighted", {"weights": [0.5, 1], "norm_score": "true"}, ["IP", "IP"], 5, 0)
    assert as_text == rerank_weighted([a, b], 2, [0.5, 1], ["IP", "IP"], 5, 0, norm_score=True)
    no_norm = rerank_hybrid([a, b], 2, "weighted", {"weights": [0.5, 1]}, ["IP", "IP"], 5, 0)
    assert no_norm == rerank_weighted([a, b], 2, [0.5, 1], ["IP", "IP"], 5, 0, norm_score=False)
    rounded = rerank_hybrid([a, b], 2, "rrf", {"k": 60}, ["IP", "IP"], 5, 0, round_decimal=2)
    assert list(rounded.scores) == pytest.approx([0.03, 0.02, 0.02])
    for strategy, params in [
        ("rrf", {"k": 0}),
        ("rrf", {"k": 16384}),
        ("rrf", {"k": "x"}),
        ("weighted", {}),
        ("weighted", {"weights": [0.5]}),
        ("weighted", {"weights": [0.5, 1.5]}),
        ("weighted", {"weights": [0.5, 1], "norm_score": "maybe"}),
        ("expr", {}),
    ]:
        with pytest.raises(ValueError):
            rerank_hybrid([a, b], 2, strategy, params, ["IP", "IP"], 5, 0)
    with pytest.raises(ValueError):
        rerank_weighted([a, b], 2, [0.5, 0.5], ["IP"], 5, 0)
    nothing = rerank_hybrid([schema_pb2.SearchResultData(), _answer([[], []], False)], 2, "rrf", {}, [], 5, 0)
    assert list(nothing.topks) == [0, 0] and _pks(nothing) == []


# range search -------------------------------------------------------------------------


def _in_range(score: float, radius: float, range_filter: float, ip: bool) -> bool:
    """Milvus range search: IP/COSINE keep radius < s <= range_filter, distances range_filter <= s < radius."""
    return radius < score <= range_filter if ip else range_filter <= score < radius


@SETTINGS
@given(
    data=st.data(),
    nq=st.integers(1, 3),
    metric=st.sampled_from(["IP", "COSINE", "L2"]),
    limit=st.integers(0, 6),
    offset=st.integers(0, 4),
)
def test_range_search_merge_keeps_order_and_limit(
    data: st.DataObject, nq: int, metric: str, limit: int, offset: int
) -> None:
    ip = larger_is_better(metric)
    radius, range_filter = (0.2, 0.9) if ip else (0.9, 0.25)
    # values exact in float32, so that scores read back compare equal
    in_range = st.sampled_from([0.25, 0.375, 0.5, 0.5, 0.75, 0.875] if ip else [0.25, 0.375, 0.5, 0.75])
    shards = data.draw(_sources(nq, False, ip, offset + limit, in_range))
    res = merge_search_results([_answer(s, False) for s in shards], nq, limit, offset, metric)
    got = _hits_of(res)
    for q, hits in enumerate(got):
        union = sorted((h for s in shards for h in s[q]), key=lambda h: (-h[1] if ip else h[1], h[0]))
        unique: dict[Any, Hit] = {}
        for h in union:
            unique.setdefault(h[0], h)  # the best hit of each pk
        assert hits == list(unique.values())[offset : offset + limit]
        assert all(_in_range(h[1], radius, range_filter, ip) for h in hits)
        keys: list[tuple[float, Any]] = [(-h[1] if ip else h[1], h[0]) for h in hits]
        assert keys == sorted(keys)
