"""Read-only replicas: placement by consistent hashing, fill from a snapshot, catch up, rotation.

A replica of shard k lives on a read-only instance chosen by rendezvous hashing over the
instance identities (the top READ_REPLICAS scores), so an instance joining or leaving moves
only the replicas that hash to it. A new replica is created, filled from a snapshot of the
primary, indexed with the collection's index specs, loaded, caught up from the log and only
then marked ready; the router reads only ready replicas.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common import errors, metrics
from mishards.common.backends import BackendPool
from mishards.common.errors import MilvusError
from mishards.common.membership import MembershipWatcher
from mishards.common.settings import Settings
from mishards.meta.mutations import MutationLog
from mishards.meta.placement import rendezvous_score
from mishards.meta.store import COPY_FILLING, COPY_READY, COPY_STALE, CollectionSpec, CopyRecord, Store
from mishards.v1 import discovery_pb2

log = logging.getLogger(__name__)

SNAPSHOT_BATCH_BYTES = 16 << 20
# How long a drained replica's physical collection outlives its catalog entry.
DRAIN_GRACE_SECONDS = 10.0
DROP_COPY_TIMEOUT = 30.0  # seconds a DropCollection of a copy that left the catalog may take


@dataclass
class _Applied:
    """What a filling copy has been given so far."""

    partitions: set[str]
    indexes: set[str]
    loaded: bool
    properties: tuple[tuple[str, str], ...]
    partition_key: bool


def place_replicas(collection_id: int, shard: int, readonly: list[str], count: int) -> list[str]:
    """The read-only instances that hold shard `shard`'s replicas (highest rendezvous scores)."""
    ranked = sorted(set(readonly), key=lambda i: rendezvous_score(str(collection_id), shard, i), reverse=True)
    return ranked[:count]


async def drop_physical_copy(
    membership: MembershipWatcher, backends: BackendPool, instance: str, physical: str, what: str
) -> None:
    """DropCollection of `physical` on `instance` when discovery says it is healthy; a failure is
    logged, not raised (the copy has left the catalog either way)."""
    inst = membership.by_identity().get(instance)
    if inst is None or inst.health != discovery_pb2.HEALTHY:
        return
    try:
        await backends.stub(inst.address).DropCollection(
            milvus_pb2.DropCollectionRequest(collection_name=physical),
            timeout=DROP_COPY_TIMEOUT,
            metadata=backends.metadata(),
        )
    except Exception as exc:
        log.warning("could not drop the %s on %s: %s", what, instance, exc)


class ReplicaManager:
    """Drives every shard's replica set towards its placement and keeps rotation states true."""

    def __init__(
        self,
        store: Store,
        membership: MembershipWatcher,
        backends: BackendPool,
        mutation_log: MutationLog,
        settings: Settings,
        on_change: Callable[[int], Awaitable[None]],
        interval: float = 1.0,
        ddl_lock: asyncio.Lock | None = None,
    ) -> None:
        self.store = store
        self.membership = membership
        self.backends = backends
        self.log = mutation_log
        self.settings = settings
        self.on_change = on_change
        self.interval = interval
        # the DDL executor's lock: a copy enters rotation between two DDLs, never during one
        self.ddl_lock = ddl_lock or asyncio.Lock()
        self.progress: dict[tuple[int, int, str], float] = {}  # filling copies: fraction of rows copied
        self._fills: dict[tuple[int, int, str], asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._drops: set[asyncio.Task[None]] = set()
        self._lost: dict[tuple[int, int, str], str] = {}  # replicas that could not follow their primary
        self.fill_slots = asyncio.Semaphore(settings.FILL_CONCURRENCY)  # replicas and shard moves alike
        self.wake = asyncio.Event()

    def refill(self, collection_id: int, shard: int, instance: str, reason: str) -> None:
        """A replica failed on an entry its primary applied (or the log moved past it): refill it from a snapshot."""
        self._lost[(collection_id, shard, instance)] = reason
        self.wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="replica-manager")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._fills.values(), *self._drops] if t]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("replica reconcile failed")
            try:
                await asyncio.wait_for(self.wake.wait(), self.interval)
            except TimeoutError:
                pass
            self.wake.clear()

    async def reconcile(self) -> None:
        """One pass: place, drain, fill, and move replicas in and out of rotation."""
        members = self.membership.membership
        if not members.instances:
            return  # no membership yet (or discovery down with nothing known): change nothing
        healthy = {i.identity for i in members.instances if i.health == discovery_pb2.HEALTHY}
        draining = await asyncio.to_thread(self.store.draining_instances)
        readonly = sorted(
            i.identity for i in members.instances if i.role == discovery_pb2.READONLY and i.identity not in draining
        )
        collections = {c.id: c for c in self.store.collections()}
        copies = await asyncio.to_thread(self.store.copies)
        _export_log_metrics(copies, collections)
        replicas = {(c.collection_id, c.shard, c.instance): c for c in copies if c.role == "replica"}
        # a copy in another role (primary, a move's incoming copy, a retired or fenced one) holds its place
        occupied = {(c.collection_id, c.shard, c.instance) for c in copies if c.role != "replica"}
        changed = False
        for key, reason in list(self._lost.items()):
            del self._lost[key]
            if key in replicas and key[0] in collections and key not in self._fills:
                cid, k, instance = key
                await asyncio.to_thread(self.store.set_copy_state, cid, k, instance, COPY_FILLING, reason)
                replicas[key].state = COPY_FILLING
                self._start_fill(collections[cid], k, instance)
                changed = True
        for spec in collections.values():
            for shard in spec.shards:
                # never on the shard's primary's instance (a promoted replica may be on a read-only one)
                eligible = [i for i in readonly if i != shard.primary]
                wanted = place_replicas(spec.id, shard.index, eligible, self.settings.read_replicas(len(eligible)))
                for instance in wanted:
                    key = (spec.id, shard.index, instance)
                    if key in occupied:
                        continue  # e.g. a retired copy not dropped yet: placed at a later pass
                    if key not in replicas:
                        await asyncio.to_thread(
                            self.store.add_copy, spec.id, shard.index, instance, "replica", COPY_FILLING
                        )
                        self._start_fill(spec, shard.index, instance)
                    elif replicas[key].state == COPY_FILLING and key not in self._fills and instance in healthy:
                        self._start_fill(spec, shard.index, instance)  # meta restarted mid-fill
                if self._unwanted_may_go(spec.id, shard.index, wanted, replicas, healthy):
                    for cid, k, instance in list(replicas):
                        if cid == spec.id and k == shard.index and instance not in wanted:
                            await self._drain(spec, k, instance)
                            changed = True
        for cid, k, instance in list(replicas):
            if cid not in collections:
                self.log.remove_copy(cid, k, instance)
        # rotation: out while the instance does not answer or lags, back once caught up
        for key, info in replicas.items():
            cid, k, instance = key
            if cid not in collections or key in self._fills:
                continue
            applier = self.log.applier(cid, k, instance)
            lag = info.last_seq - info.applied_seq
            if info.state == COPY_READY and (instance not in healthy or (applier and applier.unavailable)):
                await asyncio.to_thread(
                    self.store.set_copy_state, cid, k, instance, COPY_STALE, "instance not answering"
                )
                changed = True
            elif info.state == COPY_READY and lag > self.settings.REPLICA_MAX_LAG:
                log.info("replica %s of %d/%d is %d entries behind: refilling", instance, cid, k, lag)
                await asyncio.to_thread(self.store.set_copy_state, cid, k, instance, COPY_FILLING, f"lag {lag}")
                self._start_fill(collections[cid], k, instance)
                changed = True
            elif info.state == COPY_STALE and instance in healthy:
                if lag > self.settings.REPLICA_MAX_LAG:
                    await asyncio.to_thread(self.store.set_copy_state, cid, k, instance, COPY_FILLING, f"lag {lag}")
                    self._start_fill(collections[cid], k, instance)
                elif applier is None:
                    self.log.ensure_copy(cid, k, instance, info.applied_seq, info.last_seq)
                elif self.log.caught_up(cid, k, instance) and not applier.unavailable:
                    await asyncio.to_thread(self.store.set_copy_state, cid, k, instance, COPY_READY, "")
                    changed = True
        if changed:
            await self.on_change(await asyncio.to_thread(self.store.bump_catalog_version))

    @staticmethod
    def _unwanted_may_go(
        collection_id: int,
        shard: int,
        wanted: list[str],
        replicas: dict[tuple[int, int, str], CopyRecord],
        healthy: set[str],
    ) -> bool:
        """Make before break: a replica placed elsewhere leaves once every wanted one is ready.

        One whose instance is not healthy leaves at once (it serves nothing meanwhile).
        """
        mine = {i: c for (cid, k, i), c in replicas.items() if cid == collection_id and k == shard}
        unwanted = [i for i in mine if i not in wanted]
        if not unwanted:
            return False
        if all(i not in healthy for i in unwanted):
            return True
        return all(w in mine and mine[w].state == COPY_READY for w in wanted)

    def _start_fill(self, spec: CollectionSpec, shard: int, instance: str) -> None:
        key = (spec.id, shard, instance)
        if key in self._fills:
            return
        self.log.remove_copy(spec.id, shard, instance)
        task = asyncio.create_task(self._fill_guarded(spec, shard, instance), name=f"fill-{key}")
        self._fills[key] = task

    async def _fill_guarded(self, spec: CollectionSpec, shard: int, instance: str) -> None:
        key = (spec.id, shard, instance)
        try:
            await self.fill(spec, shard, instance)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("filling replica %s of %s/%d failed: %s; will retry", instance, spec.name, shard, exc)
            await asyncio.sleep(2)
        finally:
            self._fills.pop(key, None)
            self.progress.pop(key, None)

    async def _drain(self, spec: CollectionSpec, shard: int, instance: str) -> None:
        log.info("draining replica %s of %s/%d", instance, spec.name, shard)
        fill = self._fills.pop((spec.id, shard, instance), None)
        if fill:
            fill.cancel()
        self.log.remove_copy(spec.id, shard, instance)
        await asyncio.to_thread(self.store.remove_copy, spec.id, shard, instance)
        await self.on_change(await asyncio.to_thread(self.store.bump_catalog_version))
        # Routers drop the copy from rotation when they see the new catalog; the physical
        # collection goes only after that, so no read in flight finds it missing.
        task = asyncio.create_task(self._drop_later(spec.id, shard, spec.shards[shard].physical_name, instance))
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

    async def _drop_later(self, collection_id: int, shard: int, physical: str, instance: str) -> None:
        await asyncio.sleep(DRAIN_GRACE_SECONDS)
        if await asyncio.to_thread(self.store.copy_info, collection_id, shard, instance) is not None:
            # a new copy was placed there meanwhile (it shares the physical name): never drop that one
            log.warning("not dropping drained replica of shard %d of collection %d on %s: it holds a copy again",
                        shard, collection_id, instance)  # fmt: skip
            return
        await drop_physical_copy(self.membership, self.backends, instance, physical, "drained replica")

    # --- filling ------------------------------------------------------------------------------------

    def _address(self, identity: str) -> str:
        inst = self.membership.by_identity().get(identity)
        if inst is None or inst.health != discovery_pb2.HEALTHY:
            raise MilvusError(errors.SERVICE_UNAVAILABLE, f"instance {identity} is not serving")
        return inst.address

    async def _call(self, address: str, method: str, request: Any) -> Any:
        response = await getattr(self.backends.stub(address), method)(
            request, timeout=self.settings.BACKEND_TIMEOUT, metadata=self.backends.metadata()
        )
        st = response if isinstance(response, common_pb2.Status) else response.status
        if errors.is_error(st):
            raise MilvusError.from_status(st)
        return response

    async def fill(self, spec: CollectionSpec, shard: int, instance: str, role: str = "replica") -> None:
        """Create, fill from a snapshot, index, load, catch up, then mark the copy ready.

        A replica, or a shard move's incoming copy (`role`); at most FILL_CONCURRENCY at once.
        """
        async with self.fill_slots:
            await self._fill(spec, shard, instance, role)

    async def _fill(self, spec: CollectionSpec, shard: int, instance: str, role: str) -> None:
        key = (spec.id, shard, instance)
        self.progress[key] = 0.0
        physical = spec.shards[shard].physical_name
        source = self._address(spec.shards[shard].primary)
        target = self._address(instance)
        described = await self._call(
            source, "DescribeCollection", milvus_pb2.DescribeCollectionRequest(collection_name=physical)
        )
        schema: schema_pb2.CollectionSchema = described.schema
        # 1. a fresh physical collection (a leftover of an earlier fill is dropped)
        await self._call(target, "DropCollection", milvus_pb2.DropCollectionRequest(collection_name=physical))
        partition_key = any(f.is_partition_key for f in schema.fields)
        create = milvus_pb2.CreateCollectionRequest(
            collection_name=physical,
            schema=schema.SerializeToString(),
            shards_num=1,
            consistency_level=spec.consistency_level,
            num_partitions=len(spec.partitions) if partition_key else 0,
        )
        for k, v in spec.properties:
            create.properties.add(key=k, value=v)
        await self._call(target, "CreateCollection", create)
        if not partition_key:
            for partition in spec.partitions:
                if partition != "_default":
                    await self._call(
                        target,
                        "CreatePartition",
                        milvus_pb2.CreatePartitionRequest(collection_name=physical, partition_name=partition),
                    )
        # 2. the snapshot starts at what the primary has applied; later entries are replayed
        primary = self.log.applier(spec.id, shard, spec.shards[shard].primary)
        start = (
            primary.applied_seq
            if primary
            else max(
                (
                    c.applied_seq
                    for c in self.store.copies()
                    if c.collection_id == spec.id and c.shard == shard and c.role == "primary"
                ),
                default=0,
            )
        )
        await asyncio.to_thread(self.store.set_copy_position, spec.id, shard, instance, start)
        await self._copy_rows(spec, shard, schema, source, target, physical, partition_key, key)
        await self._flush(target, physical)  # sealed segments get built indexes; growing ones are brute force
        # 3. indexes, then load, as the catalog stands now: DDL skips filling copies, so any
        #    the collection took since the fill started is applied here
        applied = _Applied(set(spec.partitions), set(), False, tuple(spec.properties), partition_key)
        if not await self._converge(spec.id, target, physical, applied):
            return  # the collection was dropped meanwhile
        # 4. catch up from the log (inserts replayed as upserts), then into rotation
        last = max(
            (c.last_seq for c in self.store.copies() if c.collection_id == spec.id and c.shard == shard), default=0
        )
        applier = self.log.ensure_copy(spec.id, shard, instance, start, replay_upto=last, role=role)
        reach = self.log.primary_position(spec.id, shard)
        while applier.applied_seq < reach:  # where the primary was: it may have moved on meanwhile
            if await asyncio.to_thread(self.store.copy_info, spec.id, shard, instance) is None:
                return  # drained meanwhile
            if self.log.applier(spec.id, shard, instance) is not applier:
                raise MilvusError(errors.SERVICE_INTERNAL, "the copy could not follow its primary")
            await asyncio.sleep(0.2)
        # 5. into rotation under the DDL lock: a DDL either ran before (and is converged to
        #    here) or runs after and sees this copy ready, so none is missed
        async with self.ddl_lock:
            if not await self._converge(spec.id, target, physical, applied):
                return
            await asyncio.to_thread(self.store.set_copy_state, spec.id, shard, instance, COPY_READY, "")
        self.progress.pop(key, None)
        log.info("replica %s of %s/%d is ready", instance, spec.name, shard)
        await self.on_change(await asyncio.to_thread(self.store.bump_catalog_version))

    async def _converge(self, collection_id: int, target: str, physical: str, applied: _Applied) -> bool:
        """Bring a filling copy to the collection's current partitions, indexes and load state.

        Additions are applied; a removal or a property change since the fill began restarts
        the fill (rare, and a fresh snapshot is the simple way to be right). False when the
        collection is gone.
        """
        spec = await asyncio.to_thread(self.store.collection_by_id, collection_id)
        if spec is None:
            return False
        names = {index_name for _, index_name, _ in spec.indexes}
        removed = [
            *([] if applied.partition_key else sorted(applied.partitions - set(spec.partitions))),
            *sorted(applied.indexes - names),
            *(["load state"] if applied.loaded and not spec.loaded else []),
            *(["properties"] if applied.properties != tuple(spec.properties) else []),
        ]
        if removed:
            raise MilvusError(errors.SERVICE_INTERNAL, f"the collection changed during the fill ({removed}): refilling")
        if not applied.partition_key:
            for partition in spec.partitions:
                if partition not in applied.partitions:
                    await self._call(
                        target,
                        "CreatePartition",
                        milvus_pb2.CreatePartitionRequest(collection_name=physical, partition_name=partition),
                    )
                    applied.partitions.add(partition)
        for field_name, index_name, params in spec.indexes:
            if index_name in applied.indexes:
                continue
            request = milvus_pb2.CreateIndexRequest(
                collection_name=physical, field_name=field_name, index_name=index_name
            )
            for k, v in params.items():
                request.extra_params.add(key=k, value=v)
            await self._call(target, "CreateIndex", request)
            await self._index_built(target, physical, index_name)
            applied.indexes.add(index_name)
        if spec.loaded and not applied.loaded:
            await self._call(target, "LoadCollection", milvus_pb2.LoadCollectionRequest(collection_name=physical))
            while True:
                progress = await self._call(
                    target, "GetLoadingProgress", milvus_pb2.GetLoadingProgressRequest(collection_name=physical)
                )
                if progress.progress >= 100:
                    break
                await asyncio.sleep(0.3)
            applied.loaded = True
        return True

    async def _flush(self, target: str, physical: str) -> None:
        """Flush the copied rows and wait until their segments are sealed and persisted."""
        flushed = await self._call(target, "Flush", milvus_pb2.FlushRequest(collection_names=[physical]))
        segments = list(flushed.coll_segIDs[physical].data) if physical in flushed.coll_segIDs else []
        request = milvus_pb2.GetFlushStateRequest(
            segmentIDs=segments, flush_ts=flushed.coll_flush_ts.get(physical, 0), collection_name=physical
        )
        while not (await self._call(target, "GetFlushState", request)).flushed:
            await asyncio.sleep(0.3)

    async def _index_built(self, target: str, physical: str, index_name: str) -> None:
        """Wait until the copy's index covers its rows, so that a ready copy searches as fast as its primary."""
        request = milvus_pb2.DescribeIndexRequest(collection_name=physical, index_name=index_name)
        while True:
            described = await self._call(target, "DescribeIndex", request)
            states = [d for d in described.index_descriptions if d.index_name == index_name]
            if any(d.state == common_pb2.IndexState.Failed for d in states):
                raise MilvusError(
                    errors.SERVICE_INTERNAL, f"index {index_name} failed: {states[0].index_state_fail_reason}"
                )
            if states and all(d.state == common_pb2.IndexState.Finished for d in states):
                return
            await asyncio.sleep(0.3)

    async def _copy_rows(
        self,
        spec: CollectionSpec,
        shard: int,
        schema: schema_pb2.CollectionSchema,
        source: str,
        target: str,
        physical: str,
        partition_key: bool,
        key: tuple[int, int, str],
    ) -> None:
        pk = next(f for f in schema.fields if f.is_primary_key)
        fields = [f.name for f in schema.fields] + (["$meta"] if schema.enable_dynamic_field else [])
        row_bytes = 64 + sum(_field_bytes(f) for f in schema.fields)
        batch = max(100, min(16384, SNAPSHOT_BATCH_BYTES // row_bytes))
        stats = await self._call(
            source, "GetCollectionStatistics", milvus_pb2.GetCollectionStatisticsRequest(collection_name=physical)
        )
        total = max(1, sum(int(kv.value) for kv in stats.stats if kv.key == "row_count"))
        copied = 0
        int_pk = pk.data_type == schema_pb2.Int64
        for partition in [""] if partition_key else spec.partitions:
            # Batches in primary-key order. Milvus cannot parse the int64 minimum as a literal,
            # so the row that may hold it is fetched alone first.
            exprs = [f"not ({pk.name} >= -9223372036854775807)"] if int_pk else []
            start = f"{pk.name} >= -9223372036854775807" if int_pk else f'{pk.name} >= ""'
            last: Any = None
            while True:
                if exprs:
                    expr, paged = exprs.pop(), False
                elif last is None:
                    expr, paged = start, True
                else:
                    expr, paged = (f"{pk.name} > {last}" if int_pk else f'{pk.name} > "{_quote(last)}"'), True
                query = milvus_pb2.QueryRequest(
                    collection_name=physical,
                    expr=expr,
                    output_fields=fields,
                    partition_names=[partition] if partition else [],
                    consistency_level=common_pb2.Strong,
                )
                query.query_params.add(key="limit", value=str(batch))
                answer = await self._call(source, "Query", query)
                columns = list(answer.fields_data)
                pk_column = next((c for c in columns if c.field_name == pk.name), None)
                keys: list[Any] = []
                if pk_column is not None:
                    keys = (
                        list(pk_column.scalars.long_data.data) if int_pk else list(pk_column.scalars.string_data.data)
                    )
                if keys:
                    insert = milvus_pb2.InsertRequest(
                        collection_name=physical, partition_name=partition, num_rows=len(keys)
                    )
                    insert.fields_data.extend(columns)
                    await self._call(target, "Insert", insert)
                    copied += len(keys)
                    self.progress[key] = min(1.0, copied / total)
                if not paged:
                    continue
                if len(keys) < batch:
                    break
                last = max(keys)


def _export_log_metrics(copies: list[CopyRecord], collections: dict[int, CollectionSpec]) -> None:
    """Log length per shard and replica lag per copy, for /metrics."""
    held: dict[tuple[str, str], int] = {}
    metrics.REPLICA_LAG.clear()
    for c in copies:
        name = collections[c.collection_id].name if c.collection_id in collections else str(c.collection_id)
        key = (name, str(c.shard))
        held[key] = max(held.get(key, 0), c.last_seq - c.applied_seq)
        if c.role == "replica":
            metrics.REPLICA_LAG.labels(name, str(c.shard), c.instance).set(c.last_seq - c.applied_seq)
    metrics.META_LOG_LENGTH.clear()
    for (name, shard), entries in held.items():
        metrics.META_LOG_LENGTH.labels(name, shard).set(entries)


def _field_bytes(field: schema_pb2.FieldSchema) -> int:
    dim = next((int(kv.value) for kv in field.type_params if kv.key == "dim"), 0)
    if field.data_type == schema_pb2.FloatVector:
        return 4 * dim
    if field.data_type in (schema_pb2.Float16Vector, schema_pb2.BFloat16Vector):
        return 2 * dim
    if field.data_type == schema_pb2.BinaryVector:
        return dim // 8
    max_length = next((int(kv.value) for kv in field.type_params if kv.key == "max_length"), 0)
    return max(8, max_length // 4) if max_length else 64


def _quote(key: str) -> str:
    return key.replace("\\", "\\\\").replace('"', '\\"')
