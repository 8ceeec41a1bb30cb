"""Reads: fan a search or query out to one copy of every shard, then merge exactly."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from pymilvus.grpc_gen import common_pb2, milvus_pb2

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.common.milvus_messages import EncodedAnswer
from mishards.router import merge, passthrough, pins, templates
from mishards.router.catalog import CollectionView
from mishards.router.consistency import LOG_END, Consistency
from mishards.router.fanout import Failover, ShardCaller
from mishards.router.limits import check_search_request, params_of, query_window, search_window
from mishards.router.meta_client import MetaClient
from mishards.router.topology import Topology
from mishards.v1 import meta_pb2

log = logging.getLogger(__name__)

# Search parameters about the client's own session with one Milvus: never forwarded. The
# collection id is Mishards' logical id; search-iterator v2 state is per backend (pymilvus
# falls back to its v1 iterator when no v2 token comes back).
BACKEND_ONLY_KEYS = {
    "collection_id",
    "search_iter_v2",
    "search_iter_batch_size",
    "search_iter_last_bound",
    "search_iter_id",
}


def _set_params(target: Any, params: dict[str, str]) -> None:
    del target[:]
    for key, value in params.items():
        target.add(key=key, value=value)


def for_shard(req: Any, physical: str, params_field: str, params: dict[str, str] | None, copy: bool) -> Any:
    """The request one shard is sent: `req` itself when it goes to one shard only (`copy` False), else a copy.

    The shard's request is changed in place for each copy it is tried on (`at_backend_ts`), one try
    at a time; only requests that go to several shards at once need a copy each. `params` None:
    the client's parameters go unchanged.
    """
    out = req
    if copy:
        out = type(req)()
        out.CopyFrom(req)
    out.db_name = ""
    out.collection_name = physical
    if params is not None:
        _set_params(getattr(out, params_field), params)
    return out


def _per_shard(req: Any, params_field: str, shard_params: dict[str, str], single: bool) -> Callable[[str], Any]:
    """`build(physical_name)` for a read: `req` sent to that shard with `shard_params` (`for_shard`)."""
    # the client's parameters go as sent when nothing was taken out (nor a repeated key collapsed)
    changed = None if single and len(shard_params) == len(getattr(req, params_field)) else shard_params
    return lambda physical: for_shard(req, physical, params_field, changed, copy=not single)


def search_for_shard(
    req: milvus_pb2.SearchRequest, params: dict[str, str], window: int, single: bool
) -> Callable[[str], milvus_pb2.SearchRequest]:
    """What each shard's search is: the client's, or (merged) every shard asked for the whole window, offset 0."""
    shard_params = {k: v for k, v in params.items() if k not in BACKEND_ONLY_KEYS}
    if not single:  # one shard is one Milvus: its answer needs no merge
        shard_params["topk"] = str(window)
        shard_params["offset"] = "0"
    return _per_shard(req, "search_params", shard_params, single)


def query_for_shard(
    req: milvus_pb2.QueryRequest, params: dict[str, str], window: int | None, single: bool
) -> Callable[[str], milvus_pb2.QueryRequest]:
    """What each shard's query is: the client's, or (merged) every shard asked for the whole window (None: no limit)."""
    shard_params = {k: v for k, v in params.items() if k not in BACKEND_ONLY_KEYS}
    if window is not None and not single:
        shard_params["limit"] = str(window)
        shard_params.pop("offset", None)
        # a shard that stops at its first drained segment (as pymilvus's query iterator
        # asks) returns a shorter prefix, and its next rows would be skipped by a merge
        # that fills the page from the other shards: each shard returns its full prefix
        shard_params.pop("reduce_stop_for_best", None)
    return _per_shard(req, "query_params", shard_params, single)


def merged_query(
    view: CollectionView, responses: list[Any], is_count: bool, limit: int | None, offset: int
) -> milvus_pb2.QueryResults:
    """The shards' query answers as one: rows merged by primary key and paged, or counts summed."""
    parts = [list(r.fields_data) for r in responses]
    with merge.merge_span("count" if is_count else "query", len(parts)):
        if is_count:
            fields = merge.sum_counts(parts)
        else:
            fields = merge.merge_query_results(parts, view.pk_field.name, limit, offset)
    first = responses[0]
    out = milvus_pb2.QueryResults(status=common_pb2.Status(), collection_name=view.name)
    out.fields_data.extend(fields)
    out.output_fields.extend(first.output_fields)
    if hasattr(first, "primary_field_name"):
        out.primary_field_name = first.primary_field_name
    return out


class Reader:
    """Search and query across shards."""

    def __init__(
        self,
        topology: Topology,
        call_shards: ShardCaller,
        timeout: float,
        retries: int = 0,
        meta: MetaClient | None = None,
        read_wait: float = 30.0,
        staleness_ms: int = 5000,
    ) -> None:
        self.topology = topology
        self.call_shards = call_shards  # `fanout.call_shards` on the router's backends
        self.consistency = Consistency(topology, meta, read_wait, staleness_ms)
        self.timeout = timeout
        self.failover = Failover(
            retries=retries,
            on_failure=topology.suspect,
            started=topology.started,
            finished=topology.finished,
        )

    @property
    def read_wait(self) -> float:
        """READ_WAIT_TIMEOUT: how long a positioned read (and the servicer's flush) waits for the copies."""
        return self.consistency.read_wait

    async def positions(
        self, view: CollectionView, shards: list[int], ts: int, wait: float = 0.0
    ) -> dict[int, meta_pb2.ShardReadPosition]:
        """Meta's read positions for `ts` (`Consistency.positions`): the servicer's flush waits on them too."""
        return await self.consistency.positions(view, shards, ts, wait)

    async def _fan_out(
        self, view: CollectionView, method: str, request: Any, build: Any, raw: bool = False
    ) -> list[Any]:
        """Send `build(physical_name)` to one copy of every shard (as `Consistency.plan` places it); raise the first error.

        With `raw` the answers are `passthrough.RawAnswer`s (bytes left undecoded).
        """
        calls = await self.consistency.plan(view, request, build)
        return await self.call_shards(view, method, calls, self.timeout, self.failover, raw=raw)

    async def keys_matching(self, view: CollectionView, expr: str, partitions: list[str]) -> dict[int, list[Any]]:
        """Per shard, the primary keys of the rows `expr` matches: a Strong query at the log's end.

        What Milvus 2.3.5's proxy does for a delete by expression (`complexDelete`): the
        matching keys are read with every acknowledged write visible, then deleted by key.
        Only the shards the expression pins are asked (`pins.route`).
        """
        pk = view.pk_field.name
        view = pins.route(view, expr)

        def build(physical: str) -> milvus_pb2.QueryRequest:
            return milvus_pb2.QueryRequest(
                collection_name=physical,
                expr=expr,
                output_fields=[pk],
                partition_names=partitions,
                consistency_level=common_pb2.Strong,
            )

        calls = await self.consistency.positioned_calls(view, LOG_END, common_pb2.Strong, build)
        responses = await self.call_shards(view, "Query", calls, self.timeout, self.failover)
        out: dict[int, list[Any]] = {}
        for shard, answer in zip((call.shard for call in calls), responses):
            column = next((fd for fd in answer.fields_data if fd.field_name == pk), None)
            if column is None:
                out[shard.index] = []
            elif column.scalars.HasField("long_data"):
                out[shard.index] = list(column.scalars.long_data.data)
            else:
                out[shard.index] = list(column.scalars.string_data.data)
        return out

    def metric_of(self, view: CollectionView, params: dict[str, str]) -> str:
        metric = params.get("metric_type", "")
        if metric:
            return metric
        anns = params.get("anns_field", "")
        for spec in view.message.indexes:
            if not anns or spec.field_name == anns:
                for kv in spec.params:
                    if kv.key == "metric_type":
                        return kv.value
                    if kv.key == "params":
                        try:
                            inner = json.loads(kv.value)
                        except ValueError:
                            continue
                        if isinstance(inner, dict) and "metric_type" in inner:
                            return str(inner["metric_type"])
        return "L2"

    async def search(
        self, view: CollectionView, req: milvus_pb2.SearchRequest, raw: bool = False
    ) -> milvus_pb2.SearchResults | EncodedAnswer:
        """The client's search answer; with `raw`, a one-shard answer is the backend's bytes, rewritten
        (`passthrough.search_results`) instead of decoded and encoded again."""
        templates.expand_request(req, "dsl")
        logical = view
        view = pins.route(view, req.dsl)  # the shards the filter pins: one of them needs no merge
        params = params_of(req.search_params)
        check_search_request(req)
        limit, offset = search_window(params)
        single = len(view.message.shards) == 1 and not params.get("group_by_field")
        build = search_for_shard(req, params, limit + offset, single)
        if single and raw:
            shard = (await self._fan_out(view, "Search", req, build, raw=True))[0]
            return passthrough.search_results(shard.data, logical.name)
        responses = await self._fan_out(view, "Search", req, build)
        parts = [r.results for r in responses]
        metric = "" if single else self.metric_of(view, params)  # only merges need the metric's direction
        if single:
            merged = parts[0]
            merged.ClearField("search_iterator_v2_results")  # one backend's iterator state
        elif params.get("group_by_field"):
            merged = await self._group_by(view, req, params, parts, limit, offset, metric, build)
        else:
            with merge.merge_span("search", len(responses)):
                merged = merge.merge_search_results(parts, req.nq, limit, offset, metric)
        return milvus_pb2.SearchResults(status=common_pb2.Status(), results=merged, collection_name=logical.name)

    async def _group_by(
        self,
        view: CollectionView,
        req: milvus_pb2.SearchRequest,
        params: dict[str, str],
        parts: list[Any],
        limit: int,
        offset: int,
        metric: str,
        build: Any,
    ) -> Any:
        """Group-by search, exact across shards.

        Each shard returns its own best groups; the groups that win overall are right, but
        a shard may hold hits of a winning group that is not among its own best. With
        group_size > 1 a second round asks every shard for hits of the winning groups only.
        """
        if not any(p.HasField("group_by_field_value") or len(p.group_by_field_values) for p in parts):
            # the backends ignored group_by_field (Milvus 2.3 has no group-by): answer as they do
            with merge.merge_span("search", len(parts)):
                return merge.merge_search_results(parts, req.nq, limit, offset, metric)
        group_size = int(params.get("group_size", "1") or 1)
        strict = params.get("strict_group_size", "false").lower() == "true"
        with merge.merge_span("group_by", len(parts)):
            merged = merge.merge_group_by_results(parts, req.nq, limit + offset, 0, metric, group_size, False)
        values = merge.group_values(merged)
        field = params["group_by_field"]
        if group_size > 1 and values and None not in values and field in view.fields_by_name:
            # the winning groups, filled from every shard
            restrict = f"{field} in [{', '.join(templates.literal(v) for v in sorted(set(values), key=repr))}]"
            expr = f"({req.dsl}) and ({restrict})" if req.dsl else restrict
            second = dict(params)
            second["topk"] = str(len(set(values)))
            second["offset"] = "0"

            def build_second(physical: str) -> milvus_pb2.SearchRequest:
                out = build(physical)
                out.dsl = expr
                out.dsl_type = common_pb2.BoolExprV1
                _set_params(out.search_params, {k: v for k, v in second.items() if k not in BACKEND_ONLY_KEYS})
                return out

            responses = await self._fan_out(view, "Search", req, build_second)
            parts = [r.results for r in responses]
        with merge.merge_span("group_by", len(parts)):
            return merge.merge_group_by_results(parts, req.nq, limit, offset, metric, group_size, strict)

    async def query(
        self, view: CollectionView, req: milvus_pb2.QueryRequest, raw: bool = False
    ) -> milvus_pb2.QueryResults | EncodedAnswer:
        """The client's query answer; with `raw`, a one-shard answer is the backend's bytes, rewritten
        (`passthrough.query_results`) instead of decoded and encoded again."""
        templates.expand_request(req, "expr")
        view = pins.route(view, req.expr)  # the shards the filter pins: one of them needs no merge
        params = params_of(req.query_params)
        is_count = any(f.strip().lower() == "count(*)" for f in req.output_fields)
        limit, offset = query_window(params)
        if is_count and limit is not None:
            raise errors.count_with_pagination()
        single = len(view.message.shards) == 1  # one shard is one Milvus: its answer needs no merge
        build = query_for_shard(req, params, None if limit is None else limit + offset, single)
        if single and raw:
            shard = (await self._fan_out(view, "Query", req, build, raw=True))[0]
            return passthrough.query_results(shard.data, view.name, shard.status)
        responses = await self._fan_out(view, "Query", req, build)
        if single:
            answer: milvus_pb2.QueryResults = responses[0]
            answer.collection_name = view.name
            answer.ClearField("session_ts")  # the backend's clock never reaches a client
            return answer
        return merged_query(view, responses, is_count, limit, offset)


def _rank_param(rank: dict[str, str], key: str, default: Any) -> Any:
    if key not in rank:
        return default
    try:
        return json.loads(rank[key])
    except ValueError:
        return rank[key]


async def hybrid_search(
    reader: Reader, view: CollectionView, req: milvus_pb2.HybridSearchRequest
) -> milvus_pb2.SearchResults:
    """Each sub-search is merged across shards first, then the merged lists are reranked."""
    if req.HasField("function_score") or len(req.function_chains):
        raise errors.unsupported("HybridSearch with a function reranker")
    rank = params_of(req.rank_params)
    if "group_by_field" in rank:
        raise errors.unsupported("HybridSearch with group_by_field")
    limit = int(_rank_param(rank, "limit", 10))
    offset = int(_rank_param(rank, "offset", 0))
    round_decimal = int(_rank_param(rank, "round_decimal", -1))
    strategy = str(_rank_param(rank, "strategy", "rrf"))
    rank_args = _rank_param(rank, "params", {}) or {}
    if not req.requests:
        raise MilvusError(errors.PARAMETER_INVALID, "hybrid search needs at least one sub-search")
    subs = []
    for sub_req in req.requests:
        sub = milvus_pb2.SearchRequest()
        sub.CopyFrom(sub_req)
        sub.collection_name = req.collection_name
        if req.partition_names:
            del sub.partition_names[:]
            sub.partition_names.extend(req.partition_names)
        del sub.output_fields[:]
        sub.output_fields.extend(req.output_fields)
        sub.consistency_level = req.consistency_level
        sub.use_default_consistency = req.use_default_consistency
        sub.guarantee_timestamp = req.guarantee_timestamp
        subs.append(sub)
    metrics = [reader.metric_of(view, params_of(sub.search_params)) for sub in subs]
    nq = subs[0].nq
    answers = await asyncio.gather(*(reader.search(view, sub) for sub in subs))  # decoded: raw is off
    parts = [a.results for a in answers if isinstance(a, milvus_pb2.SearchResults)]
    nq = nq or parts[0].num_queries
    with merge.merge_span("hybrid", len(parts)):
        merged = merge.rerank_hybrid(parts, nq, strategy, rank_args, metrics, limit, offset, round_decimal)
    return milvus_pb2.SearchResults(status=common_pb2.Status(), results=merged, collection_name=view.name)
