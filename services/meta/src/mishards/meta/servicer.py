"""The Meta gRPC service: catalog snapshots and change feed, ids, timestamps, DDL."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.meta.ddl import DdlExecutor
from mishards.meta.moves import ShardMover
from mishards.meta.mutations import MutationLog, decode_entry
from mishards.meta.rbac import RbacExecutor
from mishards.meta.store import COPY_READY, CollectionSpec, Store
from mishards.meta.tso import TimestampOracle
from mishards.v1 import meta_pb2, meta_pb2_grpc

MAX_ID_BLOCK = 10_000_000
MAX_READ_WAIT = 600.0  # seconds a read-positions call may wait at most

# One convention for meta's RPCs: a handler refuses by raising MilvusError, never by calling
# context.abort. Every unary RPC carries `grpc_refusals`, which ends the call with the gRPC
# status of the error's code. The three that carry a Milvus request (ExecuteDdl, ExecuteRbac,
# AppendMutations) answer that request's refusal as a Milvus status inside their response, which
# the router hands to its client; only a malformed envelope reaches `grpc_refusals`.
_GRPC_CODE = {
    errors.COLLECTION_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    errors.PARAMETER_INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    errors.PARAMETER_MISSING: grpc.StatusCode.INVALID_ARGUMENT,
    errors.SERVICE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
_Response = TypeVar("_Response")


def grpc_refusals(
    handler: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[_Response]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[_Response]]:
    """A handler of meta's own RPCs: a MilvusError it raises ends the call with a gRPC status
    (NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE by its code, else FAILED_PRECONDITION) and its reason."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> _Response:
        try:
            return await handler(self, request, context)
        except MilvusError as exc:
            await context.abort(_GRPC_CODE.get(exc.code, grpc.StatusCode.FAILED_PRECONDITION), exc.reason)
            raise  # not reached: abort raises

    return wrapper


def collection_message(spec: CollectionSpec, ready_replicas: dict[tuple[int, int], list[str]]) -> meta_pb2.Collection:
    return meta_pb2.Collection(
        id=spec.id,
        db_name=spec.db_name,
        name=spec.name,
        schema=spec.schema,
        shards_num=spec.shards_num,
        consistency_level=spec.consistency_level,
        shards=[
            meta_pb2.ShardPlacement(
                index=s.index,
                physical_name=s.physical_name,
                primary=s.primary,
                replicas=ready_replicas.get((spec.id, s.index), []),
            )
            for s in spec.shards
        ],
        aliases=spec.aliases,
        partitions=spec.partitions,
        indexes=[
            meta_pb2.IndexSpec(
                field_name=f, index_name=n, params=[meta_pb2.KeyValue(key=k, value=v) for k, v in sorted(p.items())]
            )
            for f, n, p in spec.indexes
        ],
        properties=[meta_pb2.KeyValue(key=k, value=v) for k, v in spec.properties],
        created_timestamp=spec.created_ts,
        loaded=spec.loaded,
        shard_key=spec.shard_key,
    )


class CatalogFeed:
    """Tells watchers when the catalog version moves."""

    def __init__(self, version: int) -> None:
        self.version = version
        self._changed = asyncio.Condition()
        self.closed = False

    async def publish(self, version: int) -> None:
        async with self._changed:
            if version > self.version:
                self.version = version
            self._changed.notify_all()

    async def close(self) -> None:
        async with self._changed:
            self.closed = True
            self._changed.notify_all()

    async def follow(self) -> AsyncIterator[int]:
        seen = -1
        while not self.closed:
            async with self._changed:
                await self._changed.wait_for(lambda: self.version != seen or self.closed)
                if self.closed:
                    return
                seen = self.version
            yield seen


class MetaServicer(meta_pb2_grpc.MetaServicer):
    """Thin dispatcher over the store, the oracle, the DDL executor and the feed."""

    def __init__(
        self,
        store: Store,
        tso: TimestampOracle,
        ddl: DdlExecutor,
        feed: CatalogFeed,
        log: MutationLog,
        mover: ShardMover | None = None,
        rbac: RbacExecutor | None = None,
        fill_progress: dict[tuple[int, int, str], float] | None = None,
    ) -> None:
        self.store = store
        self.rbac = rbac
        self.tso = tso
        self.ddl = ddl
        self.feed = feed
        self.log = log
        self.mover = mover
        # (collection, shard, instance) -> fraction copied, for replicas filling (the replica manager's)
        self.fill_progress = fill_progress if fill_progress is not None else {}

    @grpc_refusals
    async def GetCatalog(
        self, request: meta_pb2.GetCatalogRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.Catalog:
        version = self.store.catalog_version()
        return meta_pb2.Catalog(
            version=version,
            databases=self.store.list_databases(),
            collections=[collection_message(c, self._ready_replicas()) for c in self.store.collections()],
            instances=[
                meta_pb2.InstanceVersion(identity=i, version=v)
                for i, v in sorted(self.store.instance_versions().items())
            ],
            auth_version=self.store.counter("auth_version"),
        )

    @grpc_refusals
    async def GetAuthState(
        self, request: meta_pb2.GetAuthStateRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.AuthState:
        assert self.rbac is not None
        return await asyncio.to_thread(self.rbac.rbac.state)

    @grpc_refusals
    async def ExecuteRbac(
        self, request: meta_pb2.ExecuteRbacRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.ExecuteRbacResponse:
        assert self.rbac is not None
        if request.method not in self.rbac.handlers:
            raise MilvusError(errors.PARAMETER_INVALID, f"{request.method} is not an RBAC method")
        response, version = await self.rbac.execute(request.method, request.request, request.db_name, request.caller)
        if version:
            await self.feed.publish(self.store.catalog_version())
        return meta_pb2.ExecuteRbacResponse(response=response, auth_version=version)

    def _ready_replicas(self) -> dict[tuple[int, int], list[str]]:
        ready: dict[tuple[int, int], list[str]] = {}
        for c in self.store.copies():
            if c.role == "replica" and c.state == COPY_READY:
                ready.setdefault((c.collection_id, c.shard), []).append(c.instance)
        return ready

    async def WatchCatalog(
        self, request: meta_pb2.WatchCatalogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[meta_pb2.CatalogVersion]:
        async for version in self.feed.follow():
            yield meta_pb2.CatalogVersion(version=version)

    @grpc_refusals
    async def AllocateIds(
        self, request: meta_pb2.AllocateIdsRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.AllocateIdsResponse:
        count = request.count
        if count < 1 or count > MAX_ID_BLOCK:
            raise MilvusError(errors.PARAMETER_INVALID, f"count must be in 1..{MAX_ID_BLOCK}")
        begin = await asyncio.to_thread(self.store.allocate_ids, count)
        return meta_pb2.AllocateIdsResponse(begin=begin, count=count)

    @grpc_refusals
    async def GetTimestamp(
        self, request: meta_pb2.GetTimestampRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.GetTimestampResponse:
        count = request.count or 1
        try:
            first = self.tso.get(count)
        except ValueError as exc:
            raise MilvusError(errors.PARAMETER_INVALID, str(exc)) from None
        return meta_pb2.GetTimestampResponse(timestamp=first, count=count)

    @grpc_refusals
    async def ExecuteDdl(
        self, request: meta_pb2.ExecuteDdlRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.ExecuteDdlResponse:
        response, version = await self.ddl.execute(request.method, request.request, request.db_name)
        return meta_pb2.ExecuteDdlResponse(response=response, catalog_version=version)

    @grpc_refusals
    async def AppendMutations(
        self, request: meta_pb2.AppendMutationsRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.AppendMutationsResponse:
        try:
            spec = self.store.ready_collection(request.collection_id)
            if spec is None:
                raise MilvusError(errors.COLLECTION_NOT_FOUND, f"collection {request.collection_id} not found")
            primaries = {s.index: s.primary for s in spec.shards}
            decoded = [self._entry(spec, e) for e in request.entries]
            entries = [(e.shard, e.method, e.request) for e in request.entries]
            if request.wait_applied:  # the client waits for the primaries: one that is down fails it now
                for shard in {e[0] for e in entries}:
                    self.ddl.check_primary_serving(spec, shard)
            ts, seqs = await self.log.append(spec.id, primaries, entries, request.wait_applied, decoded)
        except MilvusError as exc:
            return meta_pb2.AppendMutationsResponse(status=exc.to_status().SerializeToString())
        out = meta_pb2.AppendMutationsResponse(timestamp=ts)
        for shard, positions in sorted(seqs.items()):
            out.shards.add(shard=shard, seq=positions[-1])
        return out

    @staticmethod
    def _entry(spec: CollectionSpec, e: meta_pb2.MutationEntry) -> Any:
        """A log entry's request, checked: its shard exists, and its payload decodes and names that shard's copy."""
        if e.shard < 0 or e.shard >= len(spec.shards):
            raise MilvusError(errors.PARAMETER_INVALID, f"mishards: collection {spec.name} has no shard {e.shard}")
        request = decode_entry(e.method, e.request)
        physical = spec.shards[e.shard].physical_name
        if request.collection_name != physical:
            raise MilvusError(
                errors.PARAMETER_INVALID,
                f"mishards: a log entry for shard {e.shard} names {request.collection_name!r}, not {physical!r}",
            )
        return request

    @grpc_refusals
    async def GetReadPositions(
        self, request: meta_pb2.ReadPositionsRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.ReadPositionsResponse:
        # answered from memory (the appliers and the shards' timelines): it is on the read path
        wait = max(0.0, min(request.wait_seconds, MAX_READ_WAIT))
        positions = await self.log.read_positions(request.collection_id, list(request.shards), request.timestamp, wait)
        out = meta_pb2.ReadPositionsResponse()
        for p in positions:
            shard = out.shards.add(shard=p.shard, seq=p.seq)
            for instance, applied, backend_ts, ts_at_seq in p.copies:
                shard.copies.add(
                    instance=instance,
                    applied_seq=applied,
                    backend_timestamp=backend_ts,
                    backend_timestamp_at_seq=ts_at_seq,
                )
        return out

    @grpc_refusals
    async def ListCopies(
        self, request: meta_pb2.ListCopiesRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.ListCopiesResponse:
        names = {c.id: c for c in self.store.collections()}
        out = meta_pb2.ListCopiesResponse(log_entries=self.store.log_length())
        for info in self.store.copies():
            spec = names.get(info.collection_id)
            applier = self.log.applier(info.collection_id, info.shard, info.instance)
            out.copies.add(
                collection_id=info.collection_id,
                db_name=spec.db_name if spec else "",
                collection=spec.name if spec else "",
                shard=info.shard,
                instance=info.instance,
                role=info.role,
                state=info.state,
                applied_seq=max(info.applied_seq, applier.applied_seq if applier else 0),
                last_seq=info.last_seq,
                reason=info.reason,
                fill_progress=self.fill_progress.get((info.collection_id, info.shard, info.instance), 0.0),
                stuck=applier.stuck if applier else "",
                stuck_seq=applier.stuck_seq if applier else 0,
                unavailable=applier.unavailable if applier else "",
            )
            if applier is not None and applier.alert:
                out.copies[-1].reason = applier.alert
        if self.mover is not None:
            now = time.monotonic()
            for m in [*self.mover.finished, *self.mover.moves.values()]:
                out.moves.add(
                    collection_id=m.collection_id,
                    collection=m.collection,
                    shard=m.shard,
                    source=m.source,
                    target=m.target,
                    phase=m.phase,
                    progress=1.0
                    if m.phase == "done"
                    else self.fill_progress.get((m.collection_id, m.shard, m.target), 0.0),
                    seconds=m.seconds if m.phase == "done" else now - m.started,
                    switch_seconds=m.switch_seconds,
                )
            copies = self.store.copies()
            for instance in sorted(self.store.draining_instances()):
                out.draining.add(instance=instance, copies_left=self.mover.drain_left(instance, copies))
        return out

    def _shard_of(self, request: meta_pb2.ShardOperationRequest) -> CollectionSpec:
        spec = self.ddl.collection(request.db_name or "default", request.collection)
        if request.shard < 0 or request.shard >= len(spec.shards):
            raise MilvusError(errors.PARAMETER_INVALID, f"collection {spec.name} has no shard {request.shard}")
        return spec

    @grpc_refusals
    async def PromoteShard(
        self, request: meta_pb2.ShardOperationRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.OperatorResponse:
        spec = self._shard_of(request)
        assert self.mover is not None
        to = request.to or self.mover.best_replica(spec, request.shard)
        message = await self.mover.promote(spec, request.shard, to, lost=False)
        return meta_pb2.OperatorResponse(message=message)

    @grpc_refusals
    async def MoveShard(
        self, request: meta_pb2.ShardOperationRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.OperatorResponse:
        spec = self._shard_of(request)
        assert self.mover is not None
        self.mover.check_move_target(request.to)
        move = self.mover.start_move(spec, request.shard, request.to)
        return meta_pb2.OperatorResponse(
            message=f"moving shard {move.shard} of {move.collection} from {move.source} to {move.target}"
        )

    @grpc_refusals
    async def DrainInstance(
        self, request: meta_pb2.DrainInstanceRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.OperatorResponse:
        if not request.instance:
            raise MilvusError(errors.PARAMETER_INVALID, "name the instance to drain")
        assert self.mover is not None
        return meta_pb2.OperatorResponse(message=await self.mover.drain(request.instance, request.undo))

    @grpc_refusals
    async def RepairShard(
        self, request: meta_pb2.RepairShardRequest, context: grpc.aio.ServicerContext
    ) -> meta_pb2.RepairShardResponse:
        message = await self.log.repair(request.collection_id, request.shard, request.instance, request.action)
        return meta_pb2.RepairShardResponse(message=message)
