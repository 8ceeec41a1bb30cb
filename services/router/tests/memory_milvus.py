"""An in-memory Milvus cluster for the router's offline tests: the router's back ends, not mocks of it.

As Vitess's `memorytopo` serves its topo tests, these objects stand in for what the router
talks to, behind the same narrow seams the running router uses, so that `RouterServicer`'s
handlers run unchanged:

- `MemoryMilvus`: one Milvus instance. Its async RPCs (`Insert`, `Upsert`, `Delete`, `Search`,
  `Query`, `Flush`, `GetFlushState`, `GetCollectionStatistics`, `GetVersion`) take the request
  messages and answer the response messages of `milvus_pb2` (SearchResults with a
  SearchResultData, QueryResults with FieldData columns, MutationResult, ...), errors as a
  status in the answer, as Milvus 2.3.5 words the ones modelled.
- `MemoryBackends`: what `mishards.common.backends.BackendPool` is to the router: `stub(address)`,
  `raw(address, method)` (the answer's bytes, for the pass-through) and `metadata()`.
- `MemoryWriteLog`: a `WriteLog` that applies each logged part to its shard's primary and
  replicas, in order, before it answers (as WRITE_ACK=applied does); a replica that is down
  misses the part and lags.
- `MemoryMeta`: the few meta RPCs the data path calls (GetCatalog, GetTimestamp,
  GetReadPositions, AllocateIds); each copy's applied position comes from `MemoryWriteLog`.
- `MemoryCluster`: all of them wired together, with a `CatalogCache` and a `Topology` filled
  directly (no meta or discovery process).

What Milvus behaviour is modelled: physical collections of rows per instance; inserts keep
duplicate primary keys as Milvus 2.3 does, upserts replace, deletes remove every row their
filter matches; exact top-k search (FloatVector, metrics L2 (squared), IP and COSINE) with
`offset` and `round_decimal`, ties broken by smaller key; filters of comparisons (`==`, `!=`,
`<`, `<=`, `>`, `>=`), `in [...]`, `not in [...]`, `and` / `&&`, `or` / `||`, parentheses over
scalar fields; query with `limit`/`offset` and `count(*)`; output fields (with `*`); row counts.

What it does not model: partitions, indexes, loading, segments and flush timing (a flush is
done at once), consistency levels (every write an instance applied is visible at once),
backend clocks, the catch-up of a lagging replica, deleted rows in row counts (2.3 counts
them until compaction), dynamic fields, JSON, array and sparse or binary vectors, group-by,
iterators, and Milvus's refusals of requests the router does not forward. An expression
outside the subset above is answered with Milvus's "cannot parse expression" error, so a
test cannot silently pass on a filter the fake ignores.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from google.protobuf import message as pb_message
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common.errors import MilvusError
from mishards.common.membership import MembershipWatcher
from mishards.common.milvus_messages import response_class
from mishards.common.settings import load_settings
from mishards.router.catalog import CatalogCache, CollectionView
from mishards.router.fanout import rename_status
from mishards.router.meta_client import MetaClient
from mishards.router.strategies import ConsistentHashRouter
from mishards.router.topology import Topology
from mishards.router.writes import LoggedWrite, WriteLog, method_of
from mishards.v1 import discovery_pb2, meta_pb2

VERSION = "v2.3.5"
COLLECTION_NOT_FOUND = 100  # merr codes, as Milvus 2.3.5 answers them
PARAMETER_INVALID = 1100
UNEXPECTED = 65535


def milvus_status(code: int, reason: str, legacy: int = common_pb2.UnexpectedError) -> common_pb2.Status:
    return common_pb2.Status(code=code, error_code=legacy, reason=reason)


class Refused(Exception):
    """A request this Milvus answers with an error status."""

    def __init__(self, status: common_pb2.Status) -> None:
        super().__init__(status.reason)
        self.status = status


def _not_found(name: str) -> Refused:
    reason = f"collection not found[database=default][collection={name}]"
    return Refused(milvus_status(COLLECTION_NOT_FOUND, reason, common_pb2.CollectionNotExists))


# --- filters --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:(?P<num>-?\d+\.\d*(?:[eE][-+]?\d+)?|-?\d+)|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<op>==|!=|<=|>=|<|>|&&|\|\||\(|\)|\[|\]|,)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"""
)
Row = dict[str, Any]
Predicate = Callable[[Row], bool]
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class FilterError(ValueError):
    pass


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr.rstrip()):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise FilterError(f"unexpected text at {pos}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    """`or` of `and`s of comparisons, `in` lists and parenthesised expressions."""

    def __init__(self, expr: str, fields: dict[str, schema_pb2.FieldSchema]) -> None:
        self.tokens = _tokens(expr)
        self.pos = 0
        self.fields = fields

    def parse(self) -> Predicate:
        pred = self._or()
        if self.pos != len(self.tokens):
            raise FilterError(f"unexpected {self.tokens[self.pos][1]!r}")
        return pred

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")

    def _take(self, kind: str, text: str | None = None) -> str:
        k, t = self._peek()
        if k != kind or (text is not None and t.lower() != text):
            raise FilterError(f"expected {text or kind}, got {t!r}")
        self.pos += 1
        return t

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._peek() == ("op", "||") or self._peek()[0] == "word" and self._peek()[1].lower() == "or":
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else lambda row: any(p(row) for p in parts)

    def _and(self) -> Predicate:
        parts = [self._atom()]
        while self._peek() == ("op", "&&") or self._peek()[0] == "word" and self._peek()[1].lower() == "and":
            self.pos += 1
            parts.append(self._atom())
        return parts[0] if len(parts) == 1 else lambda row: all(p(row) for p in parts)

    def _atom(self) -> Predicate:
        if self._peek() == ("op", "("):
            self.pos += 1
            inner = self._or()
            self._take("op", ")")
            return inner
        name = self._take("word")
        if name not in self.fields:
            raise FilterError(f"field {name} not exist")
        kind, text = self._peek()
        negate = kind == "word" and text.lower() == "not"
        if negate:
            self.pos += 1
            kind, text = self._peek()
        if kind == "word" and text.lower() == "in":
            self.pos += 1
            values = set(self._list())
            return lambda row: (row[name] in values) != negate
        if negate or kind != "op" or text not in _COMPARE:
            raise FilterError(f"unsupported operator {text!r}")
        self.pos += 1
        compare, value = _COMPARE[text], self._literal()
        return lambda row: compare(row[name], value)

    def _list(self) -> list[Any]:
        self._take("op", "[")
        values = []
        while self._peek() != ("op", "]"):
            values.append(self._literal())
            if self._peek() == ("op", ","):
                self.pos += 1
        self._take("op", "]")
        return values

    def _literal(self) -> Any:
        kind, text = self._peek()
        self.pos += 1
        if kind == "num":
            return float(text) if "." in text or "e" in text.lower() else int(text)
        if kind == "str":
            return text[1:-1].encode().decode("unicode_escape")
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise FilterError(f"expected a literal, got {text!r}")


def compile_filter(expr: str, fields: dict[str, schema_pb2.FieldSchema]) -> Predicate:
    """A row predicate for `expr` (empty: every row); Refused as Milvus words an expression it cannot read."""
    if not expr.strip():
        return lambda row: True
    try:
        return _Parser(expr, fields).parse()
    except FilterError as exc:
        reason = f"cannot parse expression: {expr}, error: {exc}"
        raise Refused(milvus_status(PARAMETER_INVALID, reason, common_pb2.IllegalArgument)) from None


# --- columns --------------------------------------------------------------------------------

_SCALARS = {
    schema_pb2.Bool: "bool_data",
    schema_pb2.Int8: "int_data",
    schema_pb2.Int16: "int_data",
    schema_pb2.Int32: "int_data",
    schema_pb2.Int64: "long_data",
    schema_pb2.Float: "float_data",
    schema_pb2.Double: "double_data",
    schema_pb2.VarChar: "string_data",
}


def _dim(f: schema_pb2.FieldSchema) -> int:
    return int(next(kv.value for kv in f.type_params if kv.key == "dim"))


def column_values(fd: schema_pb2.FieldData, f: schema_pb2.FieldSchema, n: int) -> list[Any]:
    """A column's values, one per row (vectors as tuples of floats)."""
    if f.data_type == schema_pb2.FloatVector:
        flat, dim = list(fd.vectors.float_vector.data), _dim(f)
        return [tuple(flat[i * dim : (i + 1) * dim]) for i in range(n)]
    if f.data_type in _SCALARS:
        return list(getattr(fd.scalars, _SCALARS[f.data_type]).data)
    raise NotImplementedError(f"memory Milvus: field type {f.data_type} is not modelled")


def column(f: schema_pb2.FieldSchema, values: list[Any]) -> schema_pb2.FieldData:
    """A FieldData of `values` as Milvus sends it (type, name, id, values)."""
    fd = schema_pb2.FieldData(type=f.data_type, field_name=f.name, field_id=f.fieldID)
    if f.data_type == schema_pb2.FloatVector:
        fd.vectors.dim = _dim(f)
        fd.vectors.float_vector.data.extend(x for v in values for x in v)
    elif f.data_type in _SCALARS:
        getattr(fd.scalars, _SCALARS[f.data_type]).data.extend(values)
    else:
        raise NotImplementedError(f"memory Milvus: field type {f.data_type} is not modelled")
    return fd


def ids_of(pk: schema_pb2.FieldSchema, keys: list[Any]) -> schema_pb2.IDs:
    ids = schema_pb2.IDs()
    if pk.data_type == schema_pb2.VarChar:
        ids.str_id.data.extend(keys)
    else:
        ids.int_id.data.extend(keys)
    return ids


# --- vectors --------------------------------------------------------------------------------


def score(metric: str, a: np.ndarray, b: np.ndarray) -> float:
    """Milvus's score of a hit: squared L2 distance, inner product or cosine similarity."""
    if metric == "L2":
        return float(np.sum((a - b) ** 2))
    if metric == "IP":
        return float(np.dot(a, b))
    if metric == "COSINE":
        return float(np.dot(a, b) / ((np.linalg.norm(a) * np.linalg.norm(b)) or 1.0))
    raise Refused(milvus_status(PARAMETER_INVALID, f"metric type not match: {metric} is not modelled"))


def query_vectors(group: bytes) -> list[np.ndarray]:
    placeholders = common_pb2.PlaceholderGroup.FromString(group)
    out: list[np.ndarray] = []
    for p in placeholders.placeholders:
        if p.type != common_pb2.PlaceholderType.FloatVector:
            raise NotImplementedError(f"memory Milvus: placeholder type {p.type} is not modelled")
        out.extend(np.frombuffer(v, dtype=np.float32) for v in p.values)
    return out


def placeholder_group(vectors: list[list[float]]) -> bytes:
    """The placeholder group pymilvus sends for float query vectors."""
    group = common_pb2.PlaceholderGroup()
    group.placeholders.add(
        tag="$0",
        type=common_pb2.PlaceholderType.FloatVector,
        values=[np.asarray(v, dtype=np.float32).tobytes() for v in vectors],
    )
    return group.SerializeToString()


# --- one instance ---------------------------------------------------------------------------


@dataclass
class PhysicalCollection:
    schema: schema_pb2.CollectionSchema
    rows: list[Row] = field(default_factory=list)  # in insertion order; duplicate keys kept

    @property
    def fields(self) -> dict[str, schema_pb2.FieldSchema]:
        return {f.name: f for f in self.schema.fields}

    @property
    def pk(self) -> schema_pb2.FieldSchema:
        return next(f for f in self.schema.fields if f.is_primary_key)


def _params(kvs: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in kvs}


class MemoryMilvus:
    """One Milvus instance: physical collections of rows, answered as Milvus answers.

    `calls` records every request as `(method, request)`; `fail(method, ...)` makes the next
    call answer an error status or raise (a copy that does not answer); `down` makes every
    call raise gRPC UNAVAILABLE, as a stopped Milvus does.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.collections: dict[str, PhysicalCollection] = {}
        self.calls: list[tuple[str, pb_message.Message]] = []
        self.down = False
        self._faults: dict[str, list[common_pb2.Status | BaseException]] = {}
        self._clock = 0

    def create_collection(self, name: str, schema: schema_pb2.CollectionSchema) -> None:
        self.collections[name] = PhysicalCollection(schema)

    def rows(self, name: str) -> list[Row]:
        return list(self.collections[name].rows)

    def fail(self, method: str, answer: common_pb2.Status | BaseException) -> None:
        """The next call of `method` answers this error status (or raises this exception)."""
        self._faults.setdefault(method, []).append(answer)

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]

    async def _serve(self, method: str, request: pb_message.Message, answer: Callable[[], pb_message.Message]) -> Any:
        self.calls.append((method, request))
        await asyncio.sleep(0)  # a call yields, as a network round trip does
        if self.down:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), f"{self.address} is down"
            )
        faults = self._faults.get(method)
        try:
            if faults:
                fault = faults.pop(0)
                if isinstance(fault, BaseException):
                    raise fault
                raise Refused(fault)
            return answer()
        except Refused as exc:
            out = response_class(method)()
            if isinstance(out, common_pb2.Status):
                out.CopyFrom(exc.status)
            else:
                out.status.CopyFrom(exc.status)  # type: ignore[attr-defined]
            return out

    def _collection(self, name: str) -> PhysicalCollection:
        if name not in self.collections:
            raise _not_found(name)
        return self.collections[name]

    def _tick(self) -> int:
        self._clock += 1
        return (int(time.time() * 1000) << 18) + self._clock

    # --- writes

    def _append(self, coll: PhysicalCollection, request: Any) -> list[Any]:
        n, by_name = request.num_rows, {fd.field_name: fd for fd in request.fields_data}
        missing = [f.name for f in coll.schema.fields if f.name not in by_name]
        if missing:
            raise Refused(
                milvus_status(UNEXPECTED, f"fieldSchema({missing[0]}) has no corresponding fieldData pass in")
            )
        values = {f.name: column_values(by_name[f.name], f, n) for f in coll.schema.fields}
        new = [{name: vals[i] for name, vals in values.items()} for i in range(n)]
        coll.rows.extend(new)
        return [row[coll.pk.name] for row in new]

    def _mutation(self, coll: PhysicalCollection, keys: list[Any], **counts: int) -> milvus_pb2.MutationResult:
        return milvus_pb2.MutationResult(
            status=common_pb2.Status(),
            IDs=ids_of(coll.pk, keys),
            succ_index=list(range(len(keys))),
            timestamp=self._tick(),
            **counts,
        )

    async def Insert(self, request: milvus_pb2.InsertRequest, **_: Any) -> milvus_pb2.MutationResult:
        def answer() -> milvus_pb2.MutationResult:
            coll = self._collection(request.collection_name)
            keys = self._append(coll, request)
            return self._mutation(coll, keys, insert_cnt=len(keys))

        return await self._serve("Insert", request, answer)

    async def Upsert(self, request: milvus_pb2.UpsertRequest, **_: Any) -> milvus_pb2.MutationResult:
        def answer() -> milvus_pb2.MutationResult:
            coll = self._collection(request.collection_name)
            pk = coll.pk
            by_name = {fd.field_name: fd for fd in request.fields_data}
            replaced = set(column_values(by_name[pk.name], pk, request.num_rows)) if pk.name in by_name else set()
            kept = [row for row in coll.rows if row[pk.name] not in replaced]
            before = coll.rows
            coll.rows = kept
            try:
                keys = self._append(coll, request)
            except Refused:
                coll.rows = before
                raise
            return self._mutation(coll, keys, upsert_cnt=len(keys))

        return await self._serve("Upsert", request, answer)

    async def Delete(self, request: milvus_pb2.DeleteRequest, **_: Any) -> milvus_pb2.MutationResult:
        def answer() -> milvus_pb2.MutationResult:
            coll = self._collection(request.collection_name)
            match = compile_filter(request.expr, coll.fields)
            gone = [row[coll.pk.name] for row in coll.rows if match(row)]
            coll.rows = [row for row in coll.rows if not match(row)]
            return self._mutation(coll, gone, delete_cnt=len(gone))

        return await self._serve("Delete", request, answer)

    async def Flush(self, request: milvus_pb2.FlushRequest, **_: Any) -> milvus_pb2.FlushResponse:
        def answer() -> milvus_pb2.FlushResponse:
            out = milvus_pb2.FlushResponse(status=common_pb2.Status(), db_name="default")
            for name in request.collection_names:
                self._collection(name)
                out.coll_segIDs[name].data.extend([])
                out.coll_flush_ts[name] = self._tick()
            return out

        return await self._serve("Flush", request, answer)

    async def GetFlushState(self, request: milvus_pb2.GetFlushStateRequest, **_: Any) -> Any:
        return await self._serve(
            "GetFlushState", request, lambda: milvus_pb2.GetFlushStateResponse(status=common_pb2.Status(), flushed=True)
        )

    # --- reads

    async def GetCollectionStatistics(self, request: milvus_pb2.GetCollectionStatisticsRequest, **_: Any) -> Any:
        def answer() -> milvus_pb2.GetCollectionStatisticsResponse:
            coll = self._collection(request.collection_name)
            out = milvus_pb2.GetCollectionStatisticsResponse(status=common_pb2.Status())
            out.stats.add(key="row_count", value=str(len(coll.rows)))
            return out

        return await self._serve("GetCollectionStatistics", request, answer)

    async def GetVersion(self, request: milvus_pb2.GetVersionRequest, **_: Any) -> milvus_pb2.GetVersionResponse:
        return await self._serve(
            "GetVersion", request, lambda: milvus_pb2.GetVersionResponse(status=common_pb2.Status(), version=VERSION)
        )

    def _outputs(self, coll: PhysicalCollection, names: list[str]) -> list[schema_pb2.FieldSchema]:
        if "*" in names:
            return list(coll.schema.fields)
        for name in names:
            if name not in coll.fields:
                raise Refused(milvus_status(UNEXPECTED, f"field {name} not exist"))
        return [f for f in coll.schema.fields if f.name in names]

    async def Query(self, request: milvus_pb2.QueryRequest, **_: Any) -> milvus_pb2.QueryResults:
        def answer() -> milvus_pb2.QueryResults:
            coll = self._collection(request.collection_name)
            match = compile_filter(request.expr, coll.fields)
            rows = [row for row in coll.rows if match(row)]
            out = milvus_pb2.QueryResults(status=common_pb2.Status(), collection_name=request.collection_name)
            if [f.strip().lower() for f in request.output_fields] == ["count(*)"]:
                count = schema_pb2.FieldData(type=schema_pb2.Int64, field_name="count(*)")
                count.scalars.long_data.data.append(len(rows))
                out.fields_data.append(count)
                out.output_fields.append("count(*)")
                return out
            params = _params(request.query_params)
            offset = int(params.get("offset", 0))
            rows = rows[offset:]
            if "limit" in params:
                rows = rows[: int(params["limit"])]
            wanted = self._outputs(coll, list(request.output_fields))
            if coll.pk not in wanted:
                wanted = [coll.pk, *wanted]
            out.fields_data.extend(column(f, [row[f.name] for row in rows]) for f in wanted)
            out.output_fields.extend(f.name for f in wanted)
            return out

        return await self._serve("Query", request, answer)

    async def Search(self, request: milvus_pb2.SearchRequest, **_: Any) -> milvus_pb2.SearchResults:
        return await self._serve("Search", request, lambda: self._search(request))

    def _search(self, request: milvus_pb2.SearchRequest) -> milvus_pb2.SearchResults:
        coll = self._collection(request.collection_name)
        params = _params(request.search_params)
        vector_fields = [f for f in coll.schema.fields if f.data_type == schema_pb2.FloatVector]
        anns = params.get("anns_field") or vector_fields[0].name
        metric = params.get("metric_type", "L2").upper()
        topk, offset = int(params["topk"]), int(params.get("offset", 0))
        decimals = int(params.get("round_decimal", -1))
        match = compile_filter(request.dsl, coll.fields)
        rows = [row for row in coll.rows if match(row)]
        pk = coll.pk
        larger_better = metric in ("IP", "COSINE")
        data = schema_pb2.SearchResultData(top_k=topk, primary_field_name=pk.name)
        hits: list[Row] = []
        for q in query_vectors(request.placeholder_group):
            scored = [(score(metric, q, np.asarray(row[anns], dtype=np.float32)), row) for row in rows]
            scored.sort(key=lambda s: (-s[0] if larger_better else s[0], s[1][pk.name]))
            window = scored[offset : offset + topk]
            data.topks.append(len(window))
            data.scores.extend(round(s, decimals) if decimals >= 0 else s for s, _ in window)
            hits.extend(row for _, row in window)
        data.num_queries = len(data.topks)
        data.ids.CopyFrom(ids_of(pk, [row[pk.name] for row in hits]))
        outputs = self._outputs(coll, list(request.output_fields))
        data.fields_data.extend(column(f, [row[f.name] for row in hits]) for f in outputs)
        data.output_fields.extend(f.name for f in outputs)
        return milvus_pb2.SearchResults(
            status=common_pb2.Status(), results=data, collection_name=request.collection_name
        )


class Unreachable:
    """The stub of an address no instance listens on: every call fails as gRPC UNAVAILABLE."""

    def __init__(self, address: str) -> None:
        self.address = address

    def __getattr__(self, method: str) -> Callable[..., Any]:
        async def call(request: Any, **_: Any) -> Any:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), f"no Milvus at {self.address}"
            )

        return call


class MemoryBackends:
    """What `BackendPool` is to the router, over `MemoryMilvus` instances by address.

    `raw_calls` records `(address, method)` of each pass-through call (answers as bytes).
    """

    def __init__(self) -> None:
        self.instances: dict[str, MemoryMilvus] = {}
        self.raw_calls: list[tuple[str, str]] = []

    def add(self, address: str) -> MemoryMilvus:
        instance = self.instances[address] = MemoryMilvus(address)
        return instance

    def stub(self, address: str) -> Any:
        return self.instances.get(address) or Unreachable(address)

    def raw(self, address: str, method: str) -> Callable[..., Any]:
        async def call(request: pb_message.Message, **kwargs: Any) -> bytes:
            self.raw_calls.append((address, method))
            answer = await getattr(self.stub(address), method)(request, **kwargs)
            return bytes(answer.SerializeToString())

        return call

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    async def close(self) -> None:
        pass


# --- meta, the write log, the cluster ---------------------------------------------------------


class MemoryMeta:
    """The meta RPCs the data path calls, answered from memory.

    A shard's read positions are its last log position and, for each copy (primary and
    replicas), the position it applied (`MemoryWriteLog` records both); copies' clocks are
    unknown (0), so positioned reads go to them as Strong.
    """

    def __init__(self, catalog: meta_pb2.Catalog) -> None:
        self.catalog = catalog
        self.seq: dict[tuple[int, int], int] = {}  # (collection id, shard) -> last log position
        self.applied: dict[tuple[int, int, str], int] = {}  # (collection id, shard, identity) -> applied position
        self._last_ts = 0
        self._next_id = 1 << 40

    def timestamp(self) -> int:
        """A fresh Mishards hybrid timestamp (ms << 18 | logical), increasing."""
        self._last_ts = max(self._last_ts + 1, int(time.time() * 1000) << 18)
        return self._last_ts

    async def GetCatalog(self, request: meta_pb2.GetCatalogRequest, **_: Any) -> meta_pb2.Catalog:
        return self.catalog

    async def GetTimestamp(self, request: meta_pb2.GetTimestampRequest, **_: Any) -> meta_pb2.GetTimestampResponse:
        return meta_pb2.GetTimestampResponse(timestamp=self.timestamp(), count=1)

    async def AllocateIds(self, request: meta_pb2.AllocateIdsRequest, **_: Any) -> Any:
        begin, self._next_id = self._next_id, self._next_id + request.count
        return meta_pb2.AllocateIdsResponse(begin=begin, count=request.count)

    async def GetReadPositions(self, request: meta_pb2.ReadPositionsRequest, **_: Any) -> Any:
        collection = next(c for c in self.catalog.collections if c.id == request.collection_id)
        out = meta_pb2.ReadPositionsResponse()
        for k in request.shards:
            placement = collection.shards[k]
            shard = out.shards.add(shard=k, seq=self.seq.get((request.collection_id, k), 0))
            for identity in [placement.primary, *placement.replicas]:
                applied = self.applied.get((request.collection_id, k, identity), 0)
                shard.copies.add(instance=identity, applied_seq=applied)
        return out


class MemoryWriteLog(WriteLog):
    """Applies each write's parts to its shards' copies, shard by shard in log order, then answers.

    A part the primary rejects raises its status (physical names replaced), as the applied
    mode of `MetaWriteLog` does; parts applied before it stay applied. A replica that does not
    answer (`down`) misses the part and stays behind: there is no catch-up.
    """

    def __init__(self, meta: MemoryMeta, topology: Topology, backends: MemoryBackends) -> None:
        self.meta = meta
        self.topology = topology
        self.backends = backends
        self.appended: list[tuple[str, dict[int, list[pb_message.Message]]]] = []

    async def append(
        self, view: CollectionView, method: str, parts: dict[int, list[pb_message.Message]]
    ) -> LoggedWrite:
        self.appended.append((method, parts))
        timestamp = self.meta.timestamp()
        positions = {}
        members = self.topology.membership.by_identity()
        for k in sorted(parts):
            shard = view.shards[k]
            address = self.topology.primary_address(shard, view.name)
            for part in parts[k]:
                answer = await getattr(self.backends.stub(address), method_of(part, method))(part)
                if answer.status.code or answer.status.error_code:
                    raise MilvusError.from_status(rename_status(answer.status, view))
                key = (view.id, k)
                positions[k] = self.meta.seq[key] = self.meta.seq.get(key, 0) + 1
                self.meta.applied[(view.id, k, shard.primary)] = positions[k]
                for replica in shard.replicas:
                    await self._apply_to_replica(members[replica].address, part, method, (view.id, k, replica))
        return LoggedWrite(timestamp=timestamp, positions=positions)

    async def _apply_to_replica(self, address: str, part: pb_message.Message, method: str, copy: Any) -> None:
        try:
            await getattr(self.backends.stub(address), method_of(part, method))(part)
        except grpc.aio.AioRpcError:
            return  # the replica lags from here on
        self.meta.applied[copy] = self.meta.seq[copy[:2]]


def physical_name(collection_id: int, shard: int) -> str:
    return f"mishards_{collection_id}_s{shard}"


@dataclass
class MemoryCluster:
    """Milvus instances, meta and discovery in memory, as the router sees them.

    `add_collection` records a collection in the catalog and creates its physical collections
    on the shards' primaries; `start()` then builds the catalog cache and the topology.
    """

    backends: MemoryBackends = field(default_factory=MemoryBackends)
    catalog_message: meta_pb2.Catalog = field(
        default_factory=lambda: meta_pb2.Catalog(version=1, databases=["default"])
    )
    identities: dict[str, str] = field(default_factory=dict)  # identity -> address
    roles: dict[str, int] = field(default_factory=dict)  # identity -> discovery role

    def add_instance(self, identity: str, role: int = discovery_pb2.WRITABLE) -> MemoryMilvus:
        address = f"memory-{identity}:19530"
        self.identities[identity] = address
        self.roles[identity] = role
        self.catalog_message.instances.add(identity=identity, version=VERSION)
        return self.backends.add(address)

    def instance(self, identity: str) -> MemoryMilvus:
        return self.backends.instances[self.identities[identity]]

    def add_collection(
        self,
        name: str,
        schema: schema_pb2.CollectionSchema,
        primaries: list[str],
        collection_id: int = 1,
        consistency_level: int = common_pb2.Strong,
        shard_key: str = "",
        replicas: Sequence[str] = (),
    ) -> meta_pb2.Collection:
        """A collection with one shard on each of `primaries` (identities), loaded; every shard also
        has a copy on each of `replicas`; `shard_key` "partition_key": sharded by its partition key's
        value (else by primary key)."""
        message = self.catalog_message.collections.add(
            id=collection_id,
            db_name="default",
            name=name,
            shards_num=len(primaries),
            schema=schema.SerializeToString(),
            consistency_level=consistency_level,
            shard_key=shard_key,
            loaded=True,
            partitions=["_default"],
        )
        for k, identity in enumerate(primaries):
            physical = physical_name(collection_id, k)
            message.shards.add(index=k, physical_name=physical, primary=identity, replicas=replicas)
            for copy in [identity, *replicas]:
                self.instance(copy).create_collection(physical, schema)
        return message

    async def start(self) -> tuple[CatalogCache, Topology, MetaClient, MemoryWriteLog]:
        """The router's catalog cache (filled from `MemoryMeta`), topology, meta client and write log.

        Call in the event loop the test runs in.
        """
        meta = MemoryMeta(self.catalog_message)
        client = MetaClient(meta)  # type: ignore[arg-type]
        catalog = CatalogCache(client)
        await catalog.refresh()
        watcher = MembershipWatcher("memory-discovery:0")
        watcher.membership = discovery_pb2.Membership(version=1, backend_ok=True)
        for identity, address in self.identities.items():
            watcher.membership.instances.add(
                identity=identity, address=address, role=self.roles[identity], health=discovery_pb2.HEALTHY
            )
        topology = Topology(watcher, ConsistentHashRouter(load_settings({}, None)))
        return catalog, topology, client, MemoryWriteLog(meta, topology, self.backends)


def brute_force_search(
    rows: list[Row], pk: str, anns: str, vectors: list[list[float]], metric: str, limit: int, offset: int = 0
) -> list[list[tuple[Any, float]]]:
    """Per query vector, the exact `(key, score)` hits of a search over `rows`, best first, ties by smaller key."""
    larger_better = metric in ("IP", "COSINE")
    out = []
    for v in vectors:
        q = np.asarray(v, dtype=np.float32)
        scored = [(row[pk], score(metric, q, np.asarray(row[anns], dtype=np.float32))) for row in rows]
        scored.sort(key=lambda s: (-s[1] if larger_better else s[1], s[0]))
        out.append(scored[offset : offset + limit])
    return out
