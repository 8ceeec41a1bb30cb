"""Merge shard answers exactly as the Milvus proxy merges its own shards.

Reference: milvus-io/milvus ``internal/proxy/search_reduce_util.go`` and the
"Merge rules" of the design brief. Every shard is asked for ``offset + limit`` hits
with offset 0; the merge orders hits by the metric, breaks score ties by the smaller
primary key, keeps a primary key once (its best hit), and only then applies offset
and limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymilvus.grpc_gen import schema_pb2

from mishards.router import columns

__all__ = [
    "larger_is_better",
    "merge_query_results",
    "merge_search_results",
    "sum_counts",
]

# metric.PositivelyRelated in milvus pkg/util/metric: larger score = more similar
_POSITIVE_METRICS = frozenset({"IP", "COSINE", "BM25", "MHJACCARD", "MAX_SIM", "MAX_SIM_IP", "MAX_SIM_COSINE"})
COUNT_FIELD = "count(*)"


def larger_is_better(metric_type: str) -> bool:
    """True when a larger score means a better hit for ``metric_type`` (case-insensitive)."""
    return metric_type.upper() in _POSITIVE_METRICS


def _pk_array(ids: schema_pb2.IDs) -> np.ndarray:
    values = columns.ids_values(ids)
    return values if isinstance(values, np.ndarray) else np.array(values, dtype=np.str_)


def _first_per_key(group: np.ndarray, keys: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Mask over ``order`` keeping the first position of each (group, key) pair."""
    n = len(order)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    by_key = np.lexsort((rank, keys, group))
    g, k = group[by_key], keys[by_key]
    first = np.ones(n, dtype=np.bool_)
    first[1:] = (g[1:] != g[:-1]) | (k[1:] != k[:-1])
    keep = np.empty(n, dtype=np.bool_)
    keep[by_key] = first
    return np.asarray(keep[order], dtype=np.bool_)


def _window(group: np.ndarray, ngroups: int, offset: int, limit: int | None) -> np.ndarray:
    """Mask keeping positions ``offset .. offset+limit`` of each run of a sorted group array."""
    counts = np.bincount(group, minlength=ngroups)
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(group)) - starts[group]
    keep = pos >= offset
    if limit is not None:
        keep &= pos < offset + limit
    return np.asarray(keep, dtype=np.bool_)


def merge_search_results(
    parts: Sequence[schema_pb2.SearchResultData],
    nq: int,
    limit: int,
    offset: int,
    metric_type: str,
) -> schema_pb2.SearchResultData:
    """Merge per-shard search answers (each asked for ``offset + limit`` hits) into one.

    Per query: hits ordered by score (metric direction), ties by smaller primary key,
    each primary key kept once at its best hit, then ``offset`` skipped and ``limit`` kept.
    Output fields, group-by values, distances, element indices and highlights travel
    with their hit. Raises ValueError on parts inconsistent with ``nq``.
    """
    if nq < 0 or limit < 0 or offset < 0:
        raise ValueError("nq, limit and offset must not be negative")
    used: list[schema_pb2.SearchResultData] = []
    queries: list[np.ndarray] = []
    for part in parts:
        hits = columns.ids_len(part.ids)
        if part.num_queries == 0 and hits == 0:
            continue
        if part.num_queries != nq:
            raise ValueError(f"a shard answered {part.num_queries} queries, expected {nq}")
        topks = np.array(part.topks, dtype=np.int64)
        if len(topks) == 0 and hits == 0:
            continue
        if len(topks) != nq or int(topks.sum()) != hits or len(part.scores) != hits:
            raise ValueError(
                f"inconsistent shard answer: {len(topks)} topks summing to {int(topks.sum())}, "
                f"{hits} ids, {len(part.scores)} scores for nq={nq}"
            )
        if hits:
            used.append(part)
            queries.append(np.repeat(np.arange(nq, dtype=np.int64), topks))

    out = schema_pb2.SearchResultData(num_queries=nq, top_k=limit)
    out.all_search_count = sum(p.all_search_count for p in parts)
    out.output_fields.extend(next((p.output_fields for p in parts if p.output_fields), []))
    out.primary_field_name = next((p.primary_field_name for p in parts if p.primary_field_name), "")

    if not used:
        out.topks.extend([0] * nq)
        kinds = [p.ids.WhichOneof("id_field") for p in parts]
        if "str_id" in kinds:
            out.ids.str_id.SetInParent()
        else:
            out.ids.int_id.SetInParent()
        out.fields_data.extend(columns.concat([p.fields_data for p in parts]))
        return out

    query = np.concatenate(queries)
    scores = np.concatenate([np.array(p.scores, dtype=np.float32) for p in used])
    pk_arrays = [_pk_array(p.ids) for p in used]
    if len({a.dtype.kind for a in pk_arrays}) > 1:
        raise ValueError("shards disagree on the primary key type")
    pks = np.concatenate(pk_arrays)

    key = -scores if larger_is_better(metric_type) else scores
    order = np.lexsort((pks, key, query))  # query, then score, then smaller pk
    order = order[_first_per_key(query, pks, order)]
    rows = order[_window(query[order], nq, offset, limit)]

    out.topks.extend(np.bincount(query[rows], minlength=nq).tolist())
    out.scores.extend(scores[rows].tolist())
    out.ids.CopyFrom(columns.ids_take(columns.ids_concat([p.ids for p in used]), rows))
    if all(len(p.distances) == columns.ids_len(p.ids) for p in used) and any(len(p.distances) for p in used):
        distances = np.concatenate([np.array(p.distances, dtype=np.float32) for p in used])
        out.distances.extend(distances[rows].tolist())
    out.fields_data.extend(columns.concat_take([p.fields_data for p in used], rows))
    if any(p.HasField("group_by_field_value") for p in used):
        (group_by,) = columns.concat_take([[p.group_by_field_value] for p in used], rows)
        out.group_by_field_value.CopyFrom(group_by)
    if any(len(p.group_by_field_values) for p in used):
        out.group_by_field_values.extend(columns.concat_take([p.group_by_field_values for p in used], rows))
    if any(p.HasField("element_indices") for p in used) and all(
        len(p.element_indices.data) == columns.ids_len(p.ids) for p in used
    ):
        indices = np.concatenate([np.array(p.element_indices.data, dtype=np.int64) for p in used])
        out.element_indices.data.extend(indices[rows].tolist())
    _merge_highlights(used, rows, out)
    return out


def _merge_highlights(
    used: Sequence[schema_pb2.SearchResultData],
    rows: np.ndarray,
    out: schema_pb2.SearchResultData,
) -> None:
    """Carry per-hit highlight fragments (one HighlightData per hit and field) with the hits."""
    names = [h.field_name for h in used[0].highlight_results]
    for name in names:
        datas = []
        for p in used:
            match = [h for h in p.highlight_results if h.field_name == name]
            if not match or len(match[0].datas) != columns.ids_len(p.ids):
                return
            datas.extend(match[0].datas)
        result = out.highlight_results.add(field_name=name)
        result.datas.extend([datas[i] for i in rows.tolist()])


def merge_query_results(
    parts: Sequence[Sequence[schema_pb2.FieldData]],
    pk_field: str,
    limit: int | None,
    offset: int,
) -> list[schema_pb2.FieldData]:
    """Concatenate shard query answers, order by primary key, skip ``offset``, keep ``limit``.

    A primary key returned by two shards is kept once (the first shard's row). The primary
    key must be among the columns (ValueError otherwise); ``limit=None`` keeps all rows.
    """
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError("limit and offset must not be negative")
    merged = columns.concat(parts)
    if not merged:
        return merged
    pk_col = next((fd for fd in merged if fd.field_name == pk_field), None)
    if pk_col is None:
        raise ValueError(f"primary key field {pk_field!r} is not among the query columns")
    n = columns.num_rows(merged)
    if pk_col.scalars.WhichOneof("data") == "string_data":
        pks = np.array(pk_col.scalars.string_data.data, dtype=np.str_)
    else:
        pks = np.array(pk_col.scalars.long_data.data, dtype=np.int64)
    if len(pks) != n:
        raise ValueError(f"primary key column has {len(pks)} values for {n} rows")
    order = np.argsort(pks, kind="stable")
    sorted_pks = pks[order]
    first = np.ones(n, dtype=np.bool_)
    first[1:] = sorted_pks[1:] != sorted_pks[:-1]
    order = order[first]
    order = order[offset:] if limit is None else order[offset : offset + limit]
    return columns.take_rows(merged, order)


def sum_counts(
    parts: Sequence[Sequence[schema_pb2.FieldData]],
) -> list[schema_pb2.FieldData]:
    """Sum per-shard ``count(*)`` answers (one Int64 field with one value each)."""
    total = 0
    template: schema_pb2.FieldData | None = None
    for part in parts:
        for fd in part:
            if fd.field_name != COUNT_FIELD:
                raise ValueError(f"unexpected field {fd.field_name!r} in a count(*) answer")
            template = template or fd
            total += sum(fd.scalars.long_data.data)
    out = schema_pb2.FieldData(field_name=COUNT_FIELD, type=schema_pb2.DataType.Int64)
    if template is not None:
        out.field_id = template.field_id
        out.type = template.type
    out.scalars.long_data.data.append(total)
    return [out]
