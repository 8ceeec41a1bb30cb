"""The Milvus protocol servicer: a thin dispatcher over the modules that do the work."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message as pb_message
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from mishards.common import errors
from mishards.common.backends import BackendPool
from mishards.common.errors import OK, MilvusError
from mishards.common.milvus_messages import (
    DDL_METHODS,
    RBAC_METHODS,
    SERVICE,
    EncodedAnswer,
    carries_status,
    error_response,
    is_streaming,
)
from mishards.router import aggregate, limits, templates, validation, wire
from mishards.router.admission import Admission
from mishards.router.aggregate import CopyState
from mishards.router.auth import UNIMPLEMENTED_RBAC, AuthCache, hand_rbac_to_meta
from mishards.router.catalog import CatalogCache, CollectionView
from mishards.router.consistency import DEADLINE, LOG_END
from mishards.router.ddl import hand_to_meta
from mishards.router.meta_client import MetaClient
from mishards.router.reads import Reader, hybrid_search
from mishards.router.topology import Topology
from mishards.router.writes import Writer
from mishards.v1 import discovery_pb2, meta_pb2

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# GetVersion asks each instance in turn for its version; one that does not answer in this time is skipped.
VERSION_TIMEOUT = 5.0


def db_of(request: Any, context: grpc.aio.ServicerContext) -> str:
    """The database of a request: its db_name field, else the `dbname` header, else default."""
    name = getattr(request, "db_name", "")
    if name:
        return str(name)
    for key, value in context.invocation_metadata() or ():
        if key == "dbname" and value:
            return str(value)
    return "default"


# What serves one method: (request, context) -> its response, or an async iterator of responses (a stream).
Handler = Callable[[Any, grpc.aio.ServicerContext], Any]


def guarded(method: str, handler: Handler, admission: Admission) -> Handler:
    """The one place a handler's exception becomes the method's response with a status; never a traceback.

    It also sets the call's deadline for the layers below and admits the request by size.
    """

    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> pb_message.Message:
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        DEADLINE.set(deadline)
        try:
            size = 0
            if admission.limit > 0:
                received = wire.REQUEST_BYTES.get()  # computed when the tolerant decoder is not in front
                size = request.ByteSize() if received is None else received
                await admission.enter(size, deadline)
            try:
                return await handler(request, context)
            finally:
                admission.leave(size)
        except MilvusError as exc:
            return error_response(method, exc.to_status())
        except grpc.aio.AbortError:
            raise
        except grpc.aio.AioRpcError as exc:
            log.warning("%s: upstream call failed: %s", method, exc.details())
            return error_response(method, errors.upstream_failed(exc.details()).to_status())
        except RecursionError:  # input nested past what a parser follows: the client's fault, no traceback
            log.warning("%s: input nested too deeply", method)
            return error_response(method, limits.too_deep().to_status())
        except Exception as exc:
            log.exception("%s failed", method)
            return error_response(method, errors.internal("router", exc).to_status())

    wrapper.__name__ = method
    return wrapper


class RouterServicer:
    """Implements MilvusService over sharded collections.

    Its methods named as MilvusService's are the router's own answers; `handlers()` is the
    table the server registers: those methods, DDL and RBAC handed to meta, and the answers
    for methods Mishards does not support, each behind `guarded`.
    """

    admission = Admission(0, 0.0)  # MAX_INFLIGHT_BYTES; this default (0: no limit) keeps no state
    max_hybrid_requests = limits.MAX_HYBRID_REQUESTS
    passthrough = True  # READ_PASSTHROUGH: one shard's search or query answer forwarded as bytes

    def __init__(
        self,
        catalog: CatalogCache,
        meta: MetaClient,
        topology: Topology,
        backends: BackendPool,
        reader: Reader,
        writer: Writer,
        copies: CopyState,
        auth: AuthCache,
        admission: Admission | None = None,
        max_hybrid_requests: int = limits.MAX_HYBRID_REQUESTS,
        passthrough: bool = True,
    ) -> None:
        self.catalog = catalog
        self.meta = meta
        self.topology = topology
        self.backends = backends
        self.reader = reader
        self.writer = writer
        self.copies = copies
        self.auth = auth
        if admission is not None:
            self.admission = admission
        self.max_hybrid_requests = max_hybrid_requests
        self.passthrough = passthrough
        self._flushed: dict[int, int] = {}  # collection id -> Mishards timestamp of its last completed flush

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
                    request, timeout=VERSION_TIMEOUT, metadata=self.backends.metadata()
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
        return milvus_pb2.AllocTimestampResponse(status=OK, timestamp=await self.meta.timestamp())

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
        ts = await self.meta.timestamp()
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
                raise errors.primary_behind(what, view.name, s.index, s.primary, p.seq, wait)
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
        return await self.copies.compact(view, await self.meta.timestamp())

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

    # --- the table of every MilvusService method ---------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """Every MilvusService method -> what serves it (`wire.add_milvus_service` registers these)."""
        return {m.name: self._handler(m.name) for m in SERVICE.methods}

    def _handler(self, method: str) -> Handler:
        if method in UNIMPLEMENTED_RBAC:  # before any guard or interceptor, as on 2.3.5
            return _unknown_handler(method)
        if method in DDL_METHODS:
            return guarded(method, self._ddl_handler(method), self.admission)
        if method in RBAC_METHODS:
            return guarded(method, self._rbac_handler(method), self.admission)
        if method in OWN_METHODS:
            return guarded(method, getattr(self, method), self.admission)
        if is_streaming(method) or not carries_status(method):  # a stream or a status-less answer: nothing to guard
            return _unsupported_handler(method)
        return guarded(method, _unsupported_handler(method), self.admission)

    def _ddl_handler(self, method: str) -> Handler:
        async def handler(request: Any, context: grpc.aio.ServicerContext) -> pb_message.Message:
            limits.check_ddl(method, request)  # meta checks again: it can be called directly
            return await hand_to_meta(self.meta, self.catalog, method, request, db_of(request, context))

        return handler

    def _rbac_handler(self, method: str) -> Handler:
        async def handler(request: Any, context: grpc.aio.ServicerContext) -> pb_message.Message:
            return await hand_rbac_to_meta(self.meta, self.auth, method, request, db_of(request, context))

        return handler


def _unknown_handler(method: str) -> Handler:
    """A method Milvus 2.3.5 does not have: gRPC's UNIMPLEMENTED, as a 2.3.5 answers it."""

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> pb_message.Message:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, errors.unknown_method(method))
        raise AssertionError("abort returned")

    return handler


def _unsupported_handler(method: str) -> Handler:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> pb_message.Message:
        if not carries_status(method):  # the response has no status to carry the answer
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, errors.unsupported(method).reason)
        raise errors.unsupported(method)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if not carries_status(method):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, errors.unsupported(method).reason)
        yield error_response(method, errors.unsupported(method).to_status())

    return streaming if is_streaming(method) else handler


# The MilvusService methods RouterServicer answers itself: those it defines.
OWN_METHODS = frozenset(m.name for m in SERVICE.methods if m.name in RouterServicer.__dict__)


def implemented_methods() -> list[str]:
    """MilvusService methods the router implements (the rest answer 'not supported by Mishards')."""
    return sorted(OWN_METHODS | set(DDL_METHODS) | set(RBAC_METHODS))
