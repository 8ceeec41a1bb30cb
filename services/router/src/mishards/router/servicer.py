"""The Milvus protocol servicer: a thin dispatcher over the modules that do the work."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import grpc
from google.protobuf import message as pb_message
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc

from mishards.common import errors
from mishards.common.backends import BackendPool
from mishards.common.errors import MilvusError
from mishards.common.milvus_messages import SERVICE, EncodedAnswer, carries_status, error_response, is_streaming
from mishards.router import aggregate, limits, templates, validation, wire
from mishards.router.admission import Admission
from mishards.router.aggregate import CopyState
from mishards.router.auth import RBAC_METHODS, UNIMPLEMENTED_RBAC, AuthCache, hand_rbac_to_meta, unknown_method
from mishards.router.catalog import CatalogCache, CollectionView
from mishards.router.consistency import DEADLINE, LOG_END
from mishards.router.ddl import hand_to_meta
from mishards.router.fanout import call_shards
from mishards.router.ids import IdAllocator
from mishards.router.reads import Reader, hybrid_search
from mishards.router.topology import Topology
from mishards.router.writes import WriteLog, Writer
from mishards.v1 import discovery_pb2, meta_pb2, meta_pb2_grpc

log = logging.getLogger(__name__)

VERSION = "0.1.0"

# DDL that meta owns: the router forwards these unchanged.
DDL_METHODS = (
    "CreateCollection",
    "DropCollection",
    "CreateIndex",
    "DropIndex",
    "LoadCollection",
    "ReleaseCollection",
    "CreateDatabase",
    "DropDatabase",
    "CreatePartition",
    "DropPartition",
    "LoadPartitions",
    "ReleasePartitions",
    "CreateAlias",
    "AlterAlias",
    "DropAlias",
    "RenameCollection",
    "AlterCollection",
)

OK = common_pb2.Status()


def db_of(request: Any, context: grpc.aio.ServicerContext) -> str:
    """The database of a request: its db_name field, else the `dbname` header, else default."""
    name = getattr(request, "db_name", "")
    if name:
        return str(name)
    for key, value in context.invocation_metadata() or ():
        if key == "dbname" and value:
            return str(value)
    return "default"


def guarded(
    method: str, handler: Callable[..., Awaitable[pb_message.Message]]
) -> Callable[..., Awaitable[pb_message.Message]]:
    """Turn MilvusError and surprises into the method's response with a status; never a traceback."""

    async def wrapper(self: RouterServicer, request: Any, context: grpc.aio.ServicerContext) -> pb_message.Message:
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        DEADLINE.set(deadline)
        admission = self.admission
        try:
            size = 0
            if admission.limit > 0:
                received = wire.REQUEST_BYTES.get()  # computed when the tolerant decoder is not in front
                size = request.ByteSize() if received is None else received
                await admission.enter(size, deadline)
            try:
                return await handler(self, request, context)
            finally:
                admission.leave(size)
        except MilvusError as exc:
            return error_response(method, exc.to_status())
        except grpc.aio.AbortError:
            raise
        except grpc.aio.AioRpcError as exc:
            log.warning("%s: upstream call failed: %s", method, exc.details())
            return error_response(method, errors.status(errors.SERVICE_UNAVAILABLE, f"mishards: {exc.details()}"))
        except RecursionError:  # input nested past what a parser follows: the client's fault, no traceback
            log.warning("%s: input nested too deeply", method)
            return error_response(method, limits.too_deep().to_status())
        except Exception as exc:
            log.exception("%s failed", method)
            return error_response(method, errors.status(errors.SERVICE_INTERNAL, f"mishards router: {exc}"))

    wrapper.__name__ = method
    return wrapper


class RouterServicer(milvus_pb2_grpc.MilvusServiceServicer):
    """Implements MilvusService over sharded collections."""

    admission = Admission(0, 0.0)  # MAX_INFLIGHT_BYTES; this default (0: no limit) keeps no state
    max_hybrid_requests = limits.MAX_HYBRID_REQUESTS
    passthrough = True  # READ_PASSTHROUGH: one shard's search or query answer forwarded as bytes

    def __init__(
        self,
        catalog: CatalogCache,
        meta: meta_pb2_grpc.MetaStub,
        topology: Topology,
        backends: BackendPool,
        mutation_log: WriteLog,
        ids: IdAllocator,
        timeout: float,
        retries: int = 0,
        read_wait: float = 30.0,
        staleness_ms: int = 5000,
        auth: AuthCache | None = None,
        admission: Admission | None = None,
        max_hybrid_requests: int = limits.MAX_HYBRID_REQUESTS,
        passthrough: bool = True,
    ) -> None:
        self.catalog = catalog
        self.passthrough = passthrough
        self.auth = auth if auth is not None else AuthCache(meta)
        if admission is not None:
            self.admission = admission
        self.max_hybrid_requests = max_hybrid_requests
        self.meta = meta
        self.topology = topology
        self.backends = backends
        self.reader = Reader(topology, partial(call_shards, backends), timeout, retries, meta, read_wait, staleness_ms)
        self.writer = Writer(mutation_log, ids, self.reader.keys_matching, self._timestamp)
        self.copies = CopyState(topology, backends, timeout)
        self._flushed: dict[int, int] = {}  # collection id -> Mishards timestamp of its last completed flush

    async def _timestamp(self) -> int:
        request = meta_pb2.GetTimestampRequest(count=1)
        return (await self.meta.GetTimestamp(request, timeout=30, wait_for_ready=True)).timestamp

    # --- handshake -------------------------------------------------------------------------

    async def Connect(
        self, request: milvus_pb2.ConnectRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.ConnectResponse:
        info = common_pb2.ServerInfo(
            build_tags=f"mishards-{VERSION}", deploy_mode="mishards", reserved={"proxy": "mishards-router"}
        )
        return milvus_pb2.ConnectResponse(status=OK, server_info=info, identifier=random.randint(1, 2**62))

    async def GetVersion(
        self, request: milvus_pb2.GetVersionRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.GetVersionResponse:
        for inst in self.topology.membership.instances():
            try:
                resp = await self.backends.stub(inst.address).GetVersion(
                    request, timeout=5, metadata=self.backends.metadata()
                )
                if not errors.is_error(resp.status):
                    return resp
            except grpc.aio.AioRpcError:
                continue
        return milvus_pb2.GetVersionResponse(status=OK, version="v2.3.5")

    async def CheckHealth(
        self, request: milvus_pb2.CheckHealthRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.CheckHealthResponse:
        down = [
            i.identity
            for i in self.topology.membership.instances(discovery_pb2.WRITABLE, healthy_only=False)
            if i.health != discovery_pb2.HEALTHY
        ]
        if down:
            return milvus_pb2.CheckHealthResponse(
                status=OK, isHealthy=False, reasons=[f"instance {d} is down" for d in down]
            )
        return milvus_pb2.CheckHealthResponse(status=OK, isHealthy=True)

    async def AllocTimestamp(
        self, request: milvus_pb2.AllocTimestampRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.AllocTimestampResponse:
        return milvus_pb2.AllocTimestampResponse(status=OK, timestamp=await self._timestamp())

    # --- catalog answers -------------------------------------------------------------------------

    async def DescribeCollection(
        self, request: milvus_pb2.DescribeCollectionRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.DescribeCollectionResponse:
        view = self.catalog.resolve(db_of(request, context), request.collection_name, "DescribeCollection")
        return aggregate.describe_collection(view)

    async def HasCollection(
        self, request: milvus_pb2.HasCollectionRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.BoolResponse:
        found = self.catalog.find(db_of(request, context), request.collection_name)
        return milvus_pb2.BoolResponse(status=OK, value=found is not None)

    async def ShowCollections(
        self, request: milvus_pb2.ShowCollectionsRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.ShowCollectionsResponse:
        views = self.catalog.collections(db_of(request, context))
        return aggregate.show_collections(views, list(request.collection_names))

    async def HasPartition(
        self, request: milvus_pb2.HasPartitionRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.BoolResponse:
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        return milvus_pb2.BoolResponse(status=OK, value=request.partition_name in view.message.partitions)

    async def ShowPartitions(
        self, request: milvus_pb2.ShowPartitionsRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.ShowPartitionsResponse:
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        return aggregate.show_partitions(view, list(request.partition_names))

    async def GetPartitionStatistics(
        self, request: milvus_pb2.GetPartitionStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.GetPartitionStatisticsResponse:
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        return await self.copies.partition_statistics(view, request.partition_name)

    async def DescribeAlias(
        self, request: milvus_pb2.DescribeAliasRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.DescribeAliasResponse:
        db_name = db_of(request, context)
        view = self.catalog.alias_target(db_name, request.alias)
        if view is None:
            raise errors.alias_not_found(request.alias, db_name)
        # Milvus 2.3.5 leaves db_name empty here; so do we.
        return milvus_pb2.DescribeAliasResponse(status=OK, alias=request.alias, collection=view.name)

    async def ListAliases(
        self, request: milvus_pb2.ListAliasesRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.ListAliasesResponse:
        db_name = db_of(request, context)
        if request.collection_name:
            views = [self.catalog.resolve(db_name, request.collection_name, "ListAliases")]
        else:
            views = self.catalog.collections(db_name)
        aliases = sorted(a for v in views for a in v.message.aliases)
        return milvus_pb2.ListAliasesResponse(
            status=OK, db_name=db_name, collection_name=request.collection_name, aliases=aliases
        )

    async def ListDatabases(
        self, request: milvus_pb2.ListDatabasesRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.ListDatabasesResponse:
        return milvus_pb2.ListDatabasesResponse(status=OK, db_names=self.catalog.databases)

    async def DescribeIndex(
        self, request: milvus_pb2.DescribeIndexRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.DescribeIndexResponse:
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        return await self.copies.describe_index(view, request)

    async def GetIndexStatistics(
        self, request: milvus_pb2.GetIndexStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.GetIndexStatisticsResponse:
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        return await self.copies.describe_index(view, request, "GetIndexStatistics")

    async def DescribeDatabase(
        self, request: milvus_pb2.DescribeDatabaseRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.DescribeDatabaseResponse:
        db_name = db_of(request, context)
        if db_name not in self.catalog.databases:
            raise errors.database_not_found(db_name)
        # As milvus-lite answers (the reference: 2.3.5 has no DescribeDatabase): the name alone, no id or time.
        return milvus_pb2.DescribeDatabaseResponse(status=OK, db_name=db_name)

    async def GetLoadingProgress(
        self, request: milvus_pb2.GetLoadingProgressRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.GetLoadingProgressResponse:
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        return await self.copies.loading_progress(view, request)

    async def GetLoadState(
        self, request: milvus_pb2.GetLoadStateRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.GetLoadStateResponse:
        view = self.catalog.find(db_of(request, context), request.collection_name)
        if view is None:  # Milvus 2.3.5 answers success with state NotExist here
            return milvus_pb2.GetLoadStateResponse(status=OK, state=common_pb2.LoadStateNotExist)
        return await self.copies.load_state(view, request)

    async def GetCollectionStatistics(
        self, request: milvus_pb2.GetCollectionStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.GetCollectionStatisticsResponse:
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        return await self.copies.collection_statistics(view)

    # --- writes -------------------------------------------------------------------------------

    def _write_target(self, request: Any, context: grpc.aio.ServicerContext, method: str) -> tuple[CollectionView, str]:
        """The collection a write names and the dialect of its backend (whose words an unknown
        collection gets)."""
        db_name = db_of(request, context)
        view = self.catalog.find(db_name, request.collection_name)
        if view is None:
            dialect = validation.dialect_of(self.catalog.cluster_version())
            raise validation.collection_not_found(request.collection_name, db_name, method, dialect)
        return view, validation.dialect_of(self.catalog.backend_version(view))

    async def Insert(
        self, request: milvus_pb2.InsertRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.MutationResult:
        view, dialect = self._write_target(request, context, "Insert")
        return await self.writer.write_rows(view, request, "Insert", dialect)

    async def Upsert(
        self, request: milvus_pb2.UpsertRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.MutationResult:
        view, dialect = self._write_target(request, context, "Upsert")
        return await self.writer.write_rows(view, request, "Upsert", dialect)

    async def Delete(
        self, request: milvus_pb2.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.MutationResult:
        view, dialect = self._write_target(request, context, "Delete")
        templates.expand_request(request, "expr")
        return await self.writer.delete(view, request, dialect)

    async def Flush(
        self, request: milvus_pb2.FlushRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.FlushResponse:
        """Wait until every shard's primary has applied the log as it stands, then flush every copy."""
        db_name = db_of(request, context)
        views = [self.catalog.resolve(db_name, name) for name in request.collection_names]
        ts = await self._timestamp()
        for view in views:
            await self._primaries_reach(view, ts, self.reader.read_wait, "flush")
            await self.copies.flush(view)
            self._flushed[view.id] = max(self._flushed.get(view.id, 0), ts)
        resp = milvus_pb2.FlushResponse(status=OK, db_name=db_name)
        for view in views:
            resp.coll_segIDs[view.name].data.extend([])
            resp.flush_coll_segIDs[view.name].data.extend([])
            resp.coll_seal_times[view.name] = ts >> 18
            resp.coll_flush_ts[view.name] = ts
        return resp

    async def _primaries_reach(
        self, view: CollectionView, ts: int, wait: float, what: str
    ) -> dict[int, meta_pb2.ShardReadPosition]:
        """Meta's positions of `ts` once every shard's primary has applied it; SERVICE_UNAVAILABLE if not in time."""
        positions = await self.reader.positions(view, [s.index for s in view.shards], ts, wait)
        for s in view.shards:
            p = positions[s.index]
            primary = next((c for c in p.copies if c.instance == s.primary), None)
            if wait and (primary is None or primary.applied_seq < p.seq):
                raise MilvusError(
                    errors.SERVICE_UNAVAILABLE,
                    f"mishards: {what} of collection {view.name}: shard {s.index}'s primary {s.primary} has not "
                    f"applied the log up to position {p.seq} within {wait:g}s",
                )
        return positions

    async def GetFlushState(
        self, request: milvus_pb2.GetFlushStateRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.GetFlushStateResponse:
        """Flushed when every shard's primary has applied the writes up to `flush_ts` and its Milvus flushed them.

        `Flush` answers once its flush is complete, so a timestamp it gave is flushed at once;
        for another timestamp each primary's Milvus is asked about its own clock of that position.
        """
        if not request.collection_name:  # segment ids alone: Mishards hands none out
            return milvus_pb2.GetFlushStateResponse(status=OK, flushed=True)
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        if 0 < request.flush_ts <= self._flushed.get(view.id, 0):  # a flush this router completed covers it
            return milvus_pb2.GetFlushStateResponse(status=OK, flushed=True)
        flushed = await self.copies.flushed(view, await self._primaries_reach(view, request.flush_ts or LOG_END, 0, ""))
        return milvus_pb2.GetFlushStateResponse(status=OK, flushed=flushed)

    # --- reads ---------------------------------------------------------------------------------

    async def Search(
        self, request: milvus_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.SearchResults | EncodedAnswer:
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        return await self.reader.search(view, request, raw=self.passthrough)

    async def HybridSearch(
        self, request: milvus_pb2.HybridSearchRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.SearchResults:
        limits.check_hybrid_requests(len(request.requests), self.max_hybrid_requests)
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        return await hybrid_search(self.reader, view, request)

    async def ManualCompaction(
        self, request: milvus_pb2.ManualCompactionRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.ManualCompactionResponse:
        view = self._view_by_name_or_id(request, context)
        return await self.copies.compact(view, await self._timestamp())

    async def GetCompactionState(
        self, request: milvus_pb2.GetCompactionStateRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.GetCompactionStateResponse:
        return await self.copies.compaction_state(request.compactionID)

    async def GetCompactionStateWithPlans(
        self, request: milvus_pb2.GetCompactionPlansRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.GetCompactionPlansResponse:
        # The state of every copy's compaction; no merge infos: segment ids are per backend.
        state = await self.copies.compaction_state(request.compactionID)
        return milvus_pb2.GetCompactionPlansResponse(status=OK, state=state.state)

    def _view_by_name_or_id(self, request: Any, context: grpc.aio.ServicerContext) -> CollectionView:
        if request.collection_name:
            return self.catalog.resolve(db_of(request, context), request.collection_name)
        for view in self.catalog.collections(db_of(request, context)):
            if view.id == request.collectionID:
                return view
        raise errors.collection_not_found(str(request.collectionID), db_of(request, context))

    async def Query(
        self, request: milvus_pb2.QueryRequest, context: grpc.aio.ServicerContext
    ) -> milvus_pb2.QueryResults | EncodedAnswer:
        view = self.catalog.resolve(db_of(request, context), request.collection_name)
        return await self.reader.query(view, request, raw=self.passthrough)


def _ddl_handler(method: str) -> Callable[..., Awaitable[pb_message.Message]]:
    async def handler(self: RouterServicer, request: Any, context: grpc.aio.ServicerContext) -> pb_message.Message:
        limits.check_ddl(method, request)  # meta checks again: it can be called directly
        return await hand_to_meta(self.meta, self.catalog, method, request, db_of(request, context))

    return handler


def _rbac_handler(method: str) -> Callable[..., Awaitable[pb_message.Message]]:
    async def handler(self: RouterServicer, request: Any, context: grpc.aio.ServicerContext) -> pb_message.Message:
        return await hand_rbac_to_meta(self.meta, self.auth, method, request, db_of(request, context))

    return handler


def _unknown_handler(method: str) -> Callable[..., Any]:
    """A method Milvus 2.3.5 does not have: gRPC's UNIMPLEMENTED, as a 2.3.5 answers it."""

    async def handler(self: RouterServicer, request: Any, context: grpc.aio.ServicerContext) -> pb_message.Message:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, unknown_method(method))
        raise AssertionError("abort returned")

    return handler


def _unsupported_handler(method: str) -> Callable[..., Any]:
    async def handler(self: RouterServicer, request: Any, context: grpc.aio.ServicerContext) -> pb_message.Message:
        if not carries_status(method):  # the response has no status to carry the answer
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, errors.unsupported(method).reason)
        raise errors.unsupported(method)

    async def streaming(self: RouterServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if not carries_status(method):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, errors.unsupported(method).reason)
        yield error_response(method, errors.unsupported(method).to_status())

    return streaming if is_streaming(method) else handler


_OWN_METHODS = frozenset(m.name for m in SERVICE.methods if m.name in RouterServicer.__dict__)


def implemented_methods() -> list[str]:
    """MilvusService methods the router implements (the rest answer 'not supported by Mishards')."""
    return sorted(_OWN_METHODS | set(DDL_METHODS) | set(RBAC_METHODS))


def _install_handlers() -> None:
    for m in SERVICE.methods:
        if m.name in UNIMPLEMENTED_RBAC:
            setattr(RouterServicer, m.name, _unknown_handler(m.name))
            continue
        if m.name in DDL_METHODS:
            handler = _ddl_handler(m.name)
        elif m.name in RBAC_METHODS:
            handler = _rbac_handler(m.name)
        elif m.name in _OWN_METHODS:
            handler = RouterServicer.__dict__[m.name]
        else:
            handler = _unsupported_handler(m.name)
            if is_streaming(m.name) or not carries_status(m.name):
                setattr(RouterServicer, m.name, handler)  # a stream or a status-less answer; nothing to guard
                continue
        setattr(RouterServicer, m.name, guarded(m.name, handler))


_install_handlers()
