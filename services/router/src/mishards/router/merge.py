"""Merge shard answers exactly as the Milvus proxy merges its own shards.

Reference: milvus-io/milvus ``internal/proxy/search_reduce_util.go`` and the
"Merge rules" of the design brief. Every shard is asked for ``offset + limit`` hits
with offset 0; the merge orders hits by the metric, breaks score ties by the smaller
primary key, keeps a primary key once (its best hit), and only then applies offset
and limit.

Group-by search (``merge_group_by_results``) follows ``reduceSearchResultDataWithGroupBy``
of the same file; hybrid search reranking (``rerank_hybrid``) follows the RRF and weighted
functions of ``internal/util/function/rerank`` (``rrf_function.go``,
``weighted_function.go``, ``util.go``), applied to sub-search answers that were already
merged across shards.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import Message
from pymilvus.grpc_gen import schema_pb2

from mishards.common import metrics, tracing
from mishards.router import columns

__all__ = [
    "larger_is_better",
    "merge_group_by_results",
    "merge_query_results",
    "merge_search_results",
    "merge_span",
    "rerank_hybrid",
    "rerank_rrf",
    "rerank_weighted",
    "sum_counts",
]


@contextlib.contextmanager
def merge_span(kind: str, shards: int) -> Iterator[None]:
    """A span around merging the shards' answers, timed in `mishards_router_merge_duration_seconds`."""
    started = time.perf_counter()
    with tracing.start_span(f"merge {kind}", attributes={"mishards.merge": kind, "mishards.shards": shards}):
        yield
    metrics.MERGE_DURATION.labels(kind).observe(time.perf_counter() - started)


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


@dataclass
class _Hits:
    """The hits of a set of search answers, flattened in part order.

    ``used`` are the parts with hits and ``source`` their positions among the parts given;
    every row array has one entry per hit of the concatenated ``used`` parts.
    """

    used: list[schema_pb2.SearchResultData]
    source: list[int]
    query: np.ndarray  # query index of each hit
    scores: np.ndarray  # float32
    pks: np.ndarray  # int64 or str
    part: np.ndarray  # index into ``used`` of each hit
    rank: np.ndarray  # 0-based position of each hit within its part's answer for its query


def _collect(parts: Sequence[schema_pb2.SearchResultData], nq: int) -> _Hits:
    """Validate search answers against ``nq`` and flatten their hits (ValueError when inconsistent)."""
    used: list[schema_pb2.SearchResultData] = []
    source: list[int] = []
    queries: list[np.ndarray] = []
    ranks: list[np.ndarray] = []
    for index, part in enumerate(parts):
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
            source.append(index)
            queries.append(np.repeat(np.arange(nq, dtype=np.int64), topks))
            ranks.append(np.arange(hits, dtype=np.int64) - np.repeat(np.cumsum(topks) - topks, topks))
    if not used:
        empty = np.empty(0, dtype=np.int64)
        return _Hits(used, source, empty, np.empty(0, dtype=np.float32), empty, empty, empty)
    pk_arrays = [_pk_array(p.ids) for p in used]
    if len({a.dtype.kind for a in pk_arrays}) > 1:
        raise ValueError("shards disagree on the primary key type")
    return _Hits(
        used=used,
        source=source,
        query=np.concatenate(queries),
        scores=np.concatenate([np.array(p.scores, dtype=np.float32) for p in used]),
        pks=np.concatenate(pk_arrays),
        part=np.repeat(np.arange(len(used), dtype=np.int64), [columns.ids_len(p.ids) for p in used]),
        rank=np.concatenate(ranks),
    )


def _result(parts: Sequence[schema_pb2.SearchResultData], nq: int, limit: int) -> schema_pb2.SearchResultData:
    """An answer header: counts, output field names and primary field name of ``parts``."""
    out = schema_pb2.SearchResultData(num_queries=nq, top_k=limit)
    out.all_search_count = sum(p.all_search_count for p in parts)
    out.output_fields.extend(next((p.output_fields for p in parts if p.output_fields), []))
    out.primary_field_name = next((p.primary_field_name for p in parts if p.primary_field_name), "")
    return out


def _no_hits(
    out: schema_pb2.SearchResultData, parts: Sequence[schema_pb2.SearchResultData], nq: int
) -> schema_pb2.SearchResultData:
    """Complete ``out`` as an answer without hits (zero topks, empty ids and columns)."""
    out.topks.extend([0] * nq)
    kinds = [p.ids.WhichOneof("id_field") for p in parts]
    if "str_id" in kinds:
        out.ids.str_id.SetInParent()
    else:
        out.ids.int_id.SetInParent()
    out.fields_data.extend(columns.concat([p.fields_data for p in parts]))
    return out


def _take_hits(out: schema_pb2.SearchResultData, hits: _Hits, rows: np.ndarray, nq: int) -> None:
    """Append the hits ``rows`` (in that order, grouped by query) with everything that travels with them."""
    used = hits.used
    out.topks.extend(np.bincount(hits.query[rows], minlength=nq).tolist())
    out.scores.extend(hits.scores[rows].tolist())
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


def _best_first(hits: _Hits, metric_type: str) -> np.ndarray:
    """Row order: query, then score (metric direction), then smaller pk; each (query, pk) once."""
    key = -hits.scores if larger_is_better(metric_type) else hits.scores
    order = np.lexsort((hits.pks, key, hits.query))
    return np.asarray(order[_first_per_key(hits.query, hits.pks, order)], dtype=np.int64)


def _check_window(nq: int, limit: int, offset: int) -> None:
    if nq < 0 or limit < 0 or offset < 0:
        raise ValueError("nq, limit and offset must not be negative")


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

    One query over a few shards' answers (the common search) is merged in plain Python
    (``_merge_one_query``), which gives the same answer without numpy's fixed cost per call.
    """
    _check_window(nq, limit, offset)
    if nq == 1 and len(parts) <= FAST_MAX_PARTS:
        fast = _merge_one_query(parts, limit, offset, metric_type)
        if fast is not None:
            return fast
    return _merge_general(parts, nq, limit, offset, metric_type)


def _merge_general(
    parts: Sequence[schema_pb2.SearchResultData],
    nq: int,
    limit: int,
    offset: int,
    metric_type: str,
) -> schema_pb2.SearchResultData:
    """``merge_search_results`` vectorised with numpy over the flattened hits: any nq, any part count."""
    _check_window(nq, limit, offset)
    hits = _collect(parts, nq)
    out = _result(parts, nq, limit)
    if not hits.used:
        return _no_hits(out, parts, nq)
    order = _best_first(hits, metric_type)
    rows = order[_window(hits.query[order], nq, offset, limit)]
    _take_hits(out, hits, rows, nq)
    return out


# The one-query fast path pays off up to these sizes (``python -m benchmarks.merge_timing``;
# docs/performance.md): beyond them numpy's per-call cost is amortised and the general path wins.
FAST_MAX_PARTS = 64
FAST_MAX_HITS = 2048


def _merge_one_query(
    parts: Sequence[schema_pb2.SearchResultData],
    limit: int,
    offset: int,
    metric_type: str,
    max_parts: int = FAST_MAX_PARTS,
    max_hits: int = FAST_MAX_HITS,
) -> schema_pb2.SearchResultData | None:
    """``_merge_general`` for nq 1 in plain Python, or None when the general path must answer.

    Same order (score in the metric's direction, then smaller primary key, then part order),
    same dedupe (a primary key's first hit in that order) and the same window. It declines
    whatever it does not carry or where Python and numpy could disagree: inconsistent answers
    (the general path raises their error), more than ``max_parts`` answers with hits or
    ``max_hits`` hits, an empty window, NaN scores (numpy sorts them last), varchar keys
    ending in NUL (numpy's str arrays drop trailing NULs), group-by values, element indices
    and highlights.
    """
    found = _fast_parts(parts, max_parts)
    if found is None or limit == 0:
        return None
    kind, used = found
    scores: list[float] = []
    pks: list[Any] = []
    for part in used:
        scores.extend(part.scores)
        pks.extend(getattr(part.ids, kind).data)
    if len(scores) > max_hits or any(s != s for s in scores):
        return None
    if kind == "str_id" and any(pk.endswith("\x00") for pk in pks):
        return None
    rows = _window_rows([-s for s in scores] if larger_is_better(metric_type) else scores, pks, offset, limit)
    if not rows:
        return None
    out = _result(parts, 1, limit)
    out.topks.append(len(rows))
    out.scores.extend([scores[i] for i in rows])
    getattr(out.ids, kind).data.extend([pks[i] for i in rows])
    if all(len(p.distances) == len(p.scores) for p in used) and any(len(p.distances) for p in used):
        distances = [d for p in used for d in p.distances]
        out.distances.extend([distances[i] for i in rows])
    if any(len(p.fields_data) for p in used):
        out.fields_data.extend(columns.concat_take([p.fields_data for p in used], rows))
    return out


def _fast_parts(
    parts: Sequence[schema_pb2.SearchResultData], max_parts: int
) -> tuple[str, list[schema_pb2.SearchResultData]] | None:
    """The id kind and the answers with hits, when every answer is one query the fast path carries."""
    used: list[schema_pb2.SearchResultData] = []
    kind = None
    for part in parts:
        which = part.ids.WhichOneof("id_field")
        hits = len(getattr(part.ids, which).data) if which else 0
        if part.num_queries == 0 and hits == 0:
            continue
        if part.num_queries != 1:
            return None
        topks = part.topks
        if len(topks) == 0 and hits == 0:
            continue
        if len(topks) != 1 or topks[0] != hits or len(part.scores) != hits:
            return None
        if hits:
            if kind is not None and which != kind:
                return None
            kind = which
            used.append(part)
    if kind is None or not used or len(used) > max_parts:
        return None
    for part in used:
        if (
            part.HasField("group_by_field_value")
            or len(part.group_by_field_values)
            or part.HasField("element_indices")
            or len(part.highlight_results)
        ):
            return None
    return kind, used


def _window_rows(keys: Sequence[float], pks: Sequence[Any], offset: int, limit: int) -> list[int]:
    """Rows of the window: sorted by (key, primary key, row), a key's first hit only, past `offset`."""
    seen: set[Any] = set()
    rows: list[int] = []
    skip = offset
    for _, pk, row in sorted(zip(keys, pks, range(len(keys)))):
        if pk in seen:
            continue
        seen.add(pk)
        if skip:
            skip -= 1
            continue
        rows.append(row)
        if len(rows) == limit:
            break
    return rows


# group-by search ----------------------------------------------------------------------


def _column_keys(fd: schema_pb2.FieldData, n: int) -> list[Hashable]:
    """One hashable value per row of a scalar group-by column (None for a null row)."""
    if fd.WhichOneof("field") != "scalars":
        raise ValueError(f"group-by values of {fd.field_name!r} are not a scalar column")
    attr = fd.scalars.WhichOneof("data")
    data: list[Any] = list(getattr(fd.scalars, attr).data) if attr else []
    data = [v.SerializeToString(deterministic=True) if isinstance(v, Message) else v for v in data]
    valid = list(fd.valid_data)
    if not valid:
        if len(data) != n:
            raise ValueError(f"group-by column {fd.field_name!r} has {len(data)} values for {n} hits")
        return data
    if len(valid) != n:
        raise ValueError(f"group-by column {fd.field_name!r} has {len(valid)} rows for {n} hits")
    if len(data) == n:  # padded: one entry per row
        return [v if ok else None for v, ok in zip(data, valid)]
    if len(data) == sum(valid):  # compact: entries for valid rows only
        values = iter(data)
        return [next(values) if ok else None for ok in valid]
    raise ValueError(f"group-by column {fd.field_name!r}: {len(data)} values for {n} rows")


def _group_codes(used: Sequence[schema_pb2.SearchResultData]) -> np.ndarray:
    """An integer code per hit of the ``used`` parts, equal for equal group-by values."""
    codes: dict[Hashable, int] = {}
    out: list[int] = []
    for part in used:
        n = columns.ids_len(part.ids)
        if len(part.group_by_field_values):
            keys: list[Hashable] = list(zip(*[_column_keys(fd, n) for fd in part.group_by_field_values]))
        elif part.HasField("group_by_field_value"):
            keys = _column_keys(part.group_by_field_value, n)
        else:
            raise ValueError("a shard answered a group-by search without group-by values")
        out.extend(codes.setdefault(key, len(codes)) for key in keys)
    return np.array(out, dtype=np.int64)


def merge_group_by_results(
    parts: Sequence[schema_pb2.SearchResultData],
    nq: int,
    limit: int,
    offset: int,
    metric_type: str,
    group_size: int = 1,
    strict_group_size: bool = False,
) -> schema_pb2.SearchResultData:
    """Merge per-shard group-by search answers; ``limit`` and ``offset`` count groups.

    Each shard was asked for ``offset + limit`` groups of at most ``group_size`` hits.
    Per query (as ``reduceSearchResultDataWithGroupBy`` in the Milvus proxy, with the
    primary-key dedupe of segcore's ``GroupReduceHelper``): hits ordered by score (metric
    direction), ties by smaller primary key, each primary key kept once at its best hit;
    groups (equal ``group_by_field_value``, or equal tuples of ``group_by_field_values``;
    a null value is a group of its own) ordered by their best hit; the first ``offset``
    groups skipped, the next ``limit`` kept with at most ``group_size`` hits each. The
    answer lists a group's hits together, best first, groups in order; ``topks[i]`` is the
    number of hits of query i. Output fields and group-by values travel with their hit.

    With ``strict_group_size`` groups that hold fewer than ``group_size`` hits are left
    out before ``offset`` and ``limit`` apply, as a single milvus-lite answers (the
    router first fills the winning groups exactly; see ``Reader._group_by``).
    """
    _check_window(nq, limit, offset)
    if group_size < 1:
        raise ValueError("group_size must be at least 1")
    hits = _collect(parts, nq)
    out = _result(parts, nq, limit)
    if not hits.used:
        return _no_hits(out, parts, nq)
    order = _best_first(hits, metric_type)
    query, code = hits.query[order], _group_codes(hits.used)[order]
    n = len(order)
    position = np.arange(n, dtype=np.int64)
    # runs of (query, group) in score order
    by_group = np.lexsort((position, code, query))
    starts = np.ones(n, dtype=np.bool_)
    starts[1:] = (query[by_group][1:] != query[by_group][:-1]) | (code[by_group][1:] != code[by_group][:-1])
    run = np.cumsum(starts) - 1
    run_start = np.flatnonzero(starts)
    within = position - run_start[run]  # rank of a hit within its group
    # rank of each group within its query, by the position of its best hit
    best = by_group[run_start]
    eligible = np.arange(len(best))
    if strict_group_size:  # only groups that reached group_size compete
        eligible = np.flatnonzero(np.diff(np.append(run_start, n)) >= group_size)
    by_best = eligible[np.argsort(best[eligible], kind="stable")]
    group_query = query[best]
    per_query = np.bincount(group_query[eligible], minlength=nq)
    group_rank = np.full(len(best), -1, dtype=np.int64)  # -1: not a candidate
    group_rank[by_best] = np.arange(len(by_best)) - (np.cumsum(per_query) - per_query)[group_query[by_best]]
    hit_rank = group_rank[run]
    keep = (within < group_size) & (hit_rank >= offset) & (hit_rank < offset + limit)
    kept = by_group[keep]
    layout = np.lexsort((kept, hit_rank[keep], query[kept]))
    _take_hits(out, hits, order[kept[layout]], nq)
    return out


# hybrid search rerank -----------------------------------------------------------------

RRF = "rrf"
WEIGHTED = "weighted"
DEFAULT_RRF_K = 60.0
_MAX_RRF_K = 16384.0
# the metrics the rerank functions treat as "larger is more similar" (util.go classifyMetricsOrder)
_RERANK_LARGER = frozenset({"COSINE", "IP", "BM25"})
_PI32 = np.float32(math.pi)


def _round_scores(scores: np.ndarray, round_decimal: int) -> np.ndarray:
    """Milvus's rounding: float32(floor(score * 10^d + 0.5) / 10^d) in float64; -1 keeps scores."""
    if round_decimal == -1:
        return scores
    multiplier = math.pow(10.0, float(round_decimal))
    return np.asarray(np.floor(scores.astype(np.float64) * multiplier + 0.5) / multiplier, dtype=np.float32)


def _normalizer(metric_type: str, norm_score: bool, to_greater: bool) -> Any:
    """The score transform of util.go ``getNormalizeFunc``, in float32 as Milvus computes it."""
    metric = metric_type.upper()

    def atan32(d: np.ndarray) -> np.ndarray:
        return np.arctan(d.astype(np.float64)).astype(np.float32)

    def identity(d: np.ndarray) -> np.ndarray:
        return d

    def to_similarity(d: np.ndarray) -> np.ndarray:  # distances: 1 - 2*atan(d)/pi
        return np.float32(1.0) - np.float32(2.0) * atan32(d) / _PI32

    if not norm_score:
        if not to_greater or metric in _RERANK_LARGER:
            return identity
        return to_similarity
    if metric == "COSINE":
        return lambda d: (np.float32(1.0) + d) * np.float32(0.5)
    if metric == "IP":
        return lambda d: np.float32(0.5) + atan32(d) / _PI32
    if metric == "BM25":
        return lambda d: np.float32(2.0) * atan32(d) / _PI32
    return to_similarity


def _fuse(
    subresults: Sequence[schema_pb2.SearchResultData],
    nq: int,
    limit: int,
    offset: int,
    contribution: Any,
    descending: bool,
    round_decimal: int,
) -> schema_pb2.SearchResultData:
    """Sum per-hit contributions by (query, pk) over the sub-searches, sort, slice, assemble.

    ``contribution(hits)`` gives the float32 addend of every hit. Sums run in sub-search
    order in float32, as the Go code does. Ties go to the smaller primary key; a hit's
    fields come from the first sub-search that returned it.
    """
    _check_window(nq, limit, offset)
    hits = _collect(subresults, nq)
    out = _result(subresults, nq, limit)
    if not hits.used:
        return _no_hits(out, subresults, nq)
    n = len(hits.pks)
    entries = np.arange(n, dtype=np.int64)
    by_key = np.lexsort((entries, hits.pks, hits.query))
    first = np.ones(n, dtype=np.bool_)
    first[1:] = (hits.query[by_key][1:] != hits.query[by_key][:-1]) | (hits.pks[by_key][1:] != hits.pks[by_key][:-1])
    key_of = np.empty(n, dtype=np.int64)
    key_of[by_key] = np.cumsum(first) - 1
    location = by_key[first]  # first entry (first sub-search, in part order) of each (query, pk)
    totals = np.zeros(len(location), dtype=np.float32)
    np.add.at(totals, key_of, np.asarray(contribution(hits), dtype=np.float32))  # in entry order
    query, pks = hits.query[location], hits.pks[location]
    order = np.lexsort((pks, -totals if descending else totals, query))
    keep = order[_window(query[order], nq, offset, limit)]
    rows = location[keep]
    out.topks.extend(np.bincount(query[keep], minlength=nq).tolist())
    out.scores.extend(_round_scores(totals[keep], round_decimal).tolist())
    out.ids.CopyFrom(columns.ids_take(columns.ids_concat([p.ids for p in hits.used]), rows))
    with_fields = [bool(len(p.fields_data)) for p in hits.used]
    if all(with_fields):
        out.fields_data.extend(columns.concat_take([p.fields_data for p in hits.used], rows))
    elif any(with_fields):
        raise ValueError("sub-search answers disagree on carrying output fields")
    return out


def rerank_rrf(
    subresults: Sequence[schema_pb2.SearchResultData],
    nq: int,
    k: float,
    limit: int,
    offset: int,
    round_decimal: int = -1,
) -> schema_pb2.SearchResultData:
    """Reciprocal rank fusion of sub-search answers already merged across shards.

    Per query a hit scores ``sum over the sub-searches that returned it of 1 / (k + rank)``
    with ``rank`` its 1-based position in that sub-search's answer (float32, as
    ``rrf_function.go``); best score first, ties by smaller primary key, then ``offset``
    skipped and ``limit`` kept. ``k`` must lie in (0, 16384).
    """
    if not 0 < k < _MAX_RRF_K:
        raise ValueError(f"The rank params k should be in range (0, {int(_MAX_RRF_K)})")
    k32 = np.float32(k)

    def contribution(hits: _Hits) -> np.ndarray:
        return np.float32(1.0) / (k32 + (hits.rank + 1).astype(np.float32))

    return _fuse(subresults, nq, limit, offset, contribution, True, round_decimal)


def rerank_weighted(
    subresults: Sequence[schema_pb2.SearchResultData],
    nq: int,
    weights: Sequence[float],
    metric_types: Sequence[str],
    limit: int,
    offset: int,
    norm_score: bool = True,
    round_decimal: int = -1,
) -> schema_pb2.SearchResultData:
    """Weighted fusion of sub-search answers already merged across shards.

    Per query a hit scores ``sum over the sub-searches i that returned it of
    weights[i] * f_i(score_i)`` (float32, as ``weighted_function.go``). With
    ``norm_score`` f is COSINE ``(1 + s) / 2``, IP ``0.5 + atan(s) / pi``, BM25
    ``2 * atan(s) / pi`` and any other metric ``1 - 2 * atan(s) / pi``, and the best score
    is the largest. Without it f is the identity, except that when the sub-searches mix
    larger-is-better metrics (COSINE, IP, BM25) with others, the others use
    ``1 - 2 * atan(s) / pi``; the order is descending unless every metric is a distance.
    Ties go to the smaller primary key. Weights must lie in [0, 1], one per sub-search.
    """
    if len(weights) != len(subresults):
        raise ValueError(
            f"the length of weights param mismatch with ann search requests: {len(weights)} != {len(subresults)}"
        )
    if len(metric_types) != len(subresults):
        raise ValueError(f"{len(metric_types)} metric types for {len(subresults)} sub-searches")
    if any(not 0 <= w <= 1 for w in weights):
        raise ValueError("rank param weight should be in range [0, 1]")
    larger = [m.upper() in _RERANK_LARGER for m in metric_types]
    mixed = any(larger) and not all(larger)
    descending = norm_score or mixed or all(larger)
    transforms = [_normalizer(m, norm_score, mixed) for m in metric_types]
    weights32 = np.array(weights, dtype=np.float32)

    def contribution(hits: _Hits) -> np.ndarray:
        values = np.empty(len(hits.scores), dtype=np.float32)
        for i, sub in enumerate(hits.source):
            mask = hits.part == i
            values[mask] = weights32[sub] * transforms[sub](hits.scores[mask])
        return values

    return _fuse(subresults, nq, limit, offset, contribution, descending, round_decimal)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "t"):
            return True
        if lowered in ("false", "0", "f"):
            return False
        raise ValueError(f"norm_score params must be true/false, but got {value}")
    return bool(value)


def rerank_hybrid(
    subresults: Sequence[schema_pb2.SearchResultData],
    nq: int,
    strategy: str,
    params: Mapping[str, Any],
    metric_types: Sequence[str],
    limit: int,
    offset: int,
    round_decimal: int = -1,
) -> schema_pb2.SearchResultData:
    """Rerank a hybrid search from its sub-search answers (each already merged across shards).

    ``strategy`` and ``params`` are what pymilvus's rankers send in ``rank_params``
    (``strategy``: ``"rrf"`` with ``{"k": 60}``, or ``"weighted"`` with
    ``{"weights": [...], "norm_score": bool}``), decoded from JSON. An empty strategy means
    RRF with k=60 and a missing ``norm_score`` means false, as in Milvus. ValueError on an
    unknown strategy or bad parameters.
    """
    name = (strategy or RRF).strip().lower()
    if name == RRF:
        k = params.get("k", DEFAULT_RRF_K)
        if isinstance(k, bool) or not isinstance(k, int | float | str):
            raise ValueError("The type of rank param k should be float")
        try:
            k_value = float(k)
        except ValueError as err:
            raise ValueError(f"Param k:{k} is not a number") from err
        return rerank_rrf(subresults, nq, k_value, limit, offset, round_decimal)
    if name == WEIGHTED:
        weights = params.get("weights")
        if not isinstance(weights, list | tuple) or not weights:
            raise ValueError("weights not found in rank_params or not an array")
        if any(isinstance(w, bool) or not isinstance(w, int | float) for w in weights):
            raise ValueError("The type of rank param weight should be float")
        norm = _as_bool(params.get("norm_score", False))
        return rerank_weighted(subresults, nq, weights, metric_types, limit, offset, norm, round_decimal)
    raise ValueError(f"unsupported rank type {strategy}")


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


def group_values(result: schema_pb2.SearchResultData) -> list[Any]:
    """The group-by value of every hit of a (merged) answer; [] when it carries none or several columns."""
    if len(result.group_by_field_values) or not result.HasField("group_by_field_value"):
        return []
    n = sum(result.topks)
    return [v.decode() if isinstance(v, bytes) else v for v in _column_keys(result.group_by_field_value, n)]
