"""The nq 1 fast path of merge_search_results against the general (numpy) merge, on random inputs.

Every answer of the fast path must serialise to the same bytes as the general path's: order
(metric direction, smaller primary key on ties, part order after that), primary keys seen on
several shards kept once at their best hit, offset and limit, output fields and distances.
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

from mishards.router import merge
from mishards.router.merge import _merge_general, _merge_one_query, merge_search_results

METRICS = ("L2", "IP", "COSINE", "HAMMING", "BM25", "JACCARD")
# few distinct values, so that score ties and duplicate keys across shards are common
SCORES = (-1.5, -0.0, 0.0, 0.25, 0.5, 0.5000001, 1.0, 3.0, math.inf, -math.inf)
STR_KEYS = ("a", "b", "B", "ab", "a b", "é", "z", "10", "9", "", "日本")


def _part(
    scores: list[float], pks: list[Any], str_pk: bool, distances: bool, fields: bool
) -> schema_pb2.SearchResultData:
    ids = (
        schema_pb2.IDs(str_id=schema_pb2.StringArray(data=pks))
        if str_pk
        else schema_pb2.IDs(int_id=schema_pb2.LongArray(data=pks))
    )
    res = schema_pb2.SearchResultData(
        num_queries=1,
        top_k=len(scores),
        scores=scores,
        ids=ids,
        topks=[len(scores)],
        all_search_count=len(scores) + 3,
        primary_field_name="pk",
    )
    if distances:
        res.distances.extend(scores)
    if fields:
        res.output_fields.extend(["label", "vec"])
        label = schema_pb2.FieldData(field_name="label", type=DataType.VARCHAR)
        label.scalars.string_data.data.extend([f"{pk}@{s}" for pk, s in zip(pks, scores)])
        vec = schema_pb2.FieldData(field_name="vec", type=DataType.FLOAT_VECTOR)
        vec.vectors.dim = 2
        vec.vectors.float_vector.data.extend([x for s in scores for x in (s, 1.0)])
        res.fields_data.extend([label, vec])
    return res


@st.composite
def _inputs(draw: Any) -> tuple[list[schema_pb2.SearchResultData], int, int, str]:
    str_pk = draw(st.booleans())
    distances = draw(st.booleans())
    fields = draw(st.booleans())
    key = st.sampled_from(STR_KEYS) if str_pk else st.integers(-3, 12) | st.integers(-(2**63), 2**63 - 1)
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        n = draw(st.integers(0, 12))
        scores = draw(st.lists(st.sampled_from(SCORES) | st.floats(-10, 10, width=32), min_size=n, max_size=n))
        pks = draw(st.lists(key, min_size=n, max_size=n))
        if n == 0 and draw(st.booleans()):  # an empty shard answers without topks
            parts.append(schema_pb2.SearchResultData(num_queries=1, top_k=0))
        else:
            parts.append(_part(scores, pks, str_pk, distances, fields))
    return parts, draw(st.integers(0, 15)), draw(st.integers(0, 8)), draw(st.sampled_from(METRICS))


def _bytes(msg: schema_pb2.SearchResultData) -> bytes:
    return msg.SerializeToString(deterministic=True)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_inputs())
def test_fast_path_answers_as_the_general_merge(case: Any) -> None:
    parts, limit, offset, metric = case
    general = _merge_general(parts, 1, limit, offset, metric)
    fast = _merge_one_query(parts, limit, offset, metric)
    if fast is not None:
        assert _bytes(fast) == _bytes(general)
    assert _bytes(merge_search_results(parts, 1, limit, offset, metric)) == _bytes(general)


def test_fast_path_on_many_random_shard_answers() -> None:
    """Sorted shard answers as Milvus sends them, 1 to 4 shards, topk up to 100, every metric."""
    rng = np.random.default_rng(18)
    taken = 0
    for case in range(3000):
        shards, str_pk = int(rng.integers(1, 5)), bool(case % 2)
        limit, offset = int(rng.integers(1, 101)), int(rng.integers(0, 5))
        metric = METRICS[case % len(METRICS)]
        parts = []
        for _ in range(shards):
            k = int(rng.integers(0, limit + offset + 1))
            scores = np.round(rng.standard_normal(k), int(rng.integers(1, 4))).astype(np.float32)
            scores = np.sort(scores)[:: -1 if merge.larger_is_better(metric) else 1]
            keys = rng.integers(0, 3 * (limit + offset), k)  # duplicates across shards
            pks: list[Any] = [f"k{x}" for x in keys] if str_pk else keys.tolist()
            parts.append(_part(scores.tolist(), pks, str_pk, bool(case % 3), case % 5 == 0))
        general = _merge_general(parts, 1, limit, offset, metric)
        fast = _merge_one_query(parts, limit, offset, metric)
        if fast is not None:
            taken += 1
            assert _bytes(fast) == _bytes(general), case
    assert taken > 2500  # the fast path really answered most of them


def _simple(scores: list[float], pks: list[Any]) -> schema_pb2.SearchResultData:
    return _part(scores, pks, isinstance(pks[0], str), False, False)


def test_fast_path_keeps_ties_duplicates_and_direction() -> None:
    parts = [_simple([0.9, 0.5, 0.5], [7, 3, 9]), _simple([0.9, 0.7, 0.5], [2, 3, 1])]
    fast = _merge_one_query(parts, 4, 1, "IP")
    assert fast is not None
    assert list(fast.ids.int_id.data) == [7, 3, 1, 9]  # 2 skipped; 3 once at 0.7; 0.5 ties by pk
    assert list(fast.topks) == [4] and fast.all_search_count == 12
    l2 = _merge_one_query(parts, 3, 0, "L2")
    assert l2 is not None and list(l2.ids.int_id.data) == [1, 3, 9]  # 3's best L2 hit is 0.5


@pytest.mark.parametrize(
    "parts, why",
    [
        ([_simple([1.0], [1]), _simple([float("nan")], [2])], "NaN score"),
        ([_simple([1.0], ["a"]), _simple([0.5], ["a\x00"])], "varchar key ending in NUL"),
        ([_simple([1.0], [1]), _simple([0.5], ["a"])], "int and varchar keys"),
        ([_simple([1.0] * 1025, list(range(1025)))] * 2, "more hits than FAST_MAX_HITS"),
        ([_simple([1.0], [i]) for i in range(merge.FAST_MAX_PARTS + 1)], "more parts than FAST_MAX_PARTS"),
    ],
)
def test_fast_path_declines_what_numpy_decides_differently(parts: Any, why: str) -> None:
    assert 2 * 1025 > merge.FAST_MAX_HITS
    assert _merge_one_query(parts, 10, 0, "IP") is None, why


def test_fast_path_declines_group_by_and_inconsistent_answers() -> None:
    grouped = _simple([1.0, 0.5], [1, 2])
    grouped.group_by_field_value.CopyFrom(schema_pb2.FieldData(field_name="g", type=DataType.INT64))
    grouped.group_by_field_value.scalars.long_data.data.extend([1, 2])
    assert _merge_one_query([grouped, _simple([0.7], [3])], 10, 0, "IP") is None
    broken = _simple([1.0, 0.5], [1, 2])
    del broken.topks[:]
    broken.topks.append(1)
    assert _merge_one_query([broken], 10, 0, "IP") is None
    with pytest.raises(ValueError, match="inconsistent shard answer"):
        merge_search_results([broken], 1, 10, 0, "IP")
