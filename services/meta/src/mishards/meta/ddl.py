"""DDL: record the desired state, apply it to every copy, answer when all have applied it.

Only meta sends DDL to Milvus. When a backend rejects a change, the desired-state change is
removed (and copies that had applied it are rolled back) and the backend's status is
returned unchanged except that physical names are replaced by the client's names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import message as pb_message
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common import errors
from mishards.common.backends import BackendPool
from mishards.common.errors import OK, MilvusError
from mishards.common.membership import MembershipWatcher
from mishards.common.milvus_messages import DDL_METHODS, error_response, request_class, snake_case
from mishards.common.settings import Settings
from mishards.meta import placement
from mishards.meta.store import (
    COPY_FILLING,
    COPY_READY,
    COPY_STALE,
    CREATING,
    DROPPING,
    READY,
    SHARD_BY_PARTITION_KEY,
    SHARD_BY_PRIMARY,
    CollectionSpec,
    NotFound,
    Store,
)
from mishards.meta.tso import TimestampOracle
from mishards.v1 import discovery_pb2

log = logging.getLogger(__name__)


def _db(request: Any, header_db: str) -> str:
    return getattr(request, "db_name", "") or header_db or "default"


class DdlExecutor:
    """Executes the Milvus DDL methods meta owns; each returns (response, catalog version)."""

    def __init__(
        self,
        store: Store,
        tso: TimestampOracle,
        membership: MembershipWatcher,
        backends: BackendPool,
        settings: Settings,
        on_change: Callable[[int], Awaitable[None]],
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.tso = tso
        self.membership = membership
        self.backends = backends
        self.settings = settings
        self.on_change = on_change
        self.on_drop = on_drop  # told the id of every collection dropped (the log forgets it)
        # Meta is a singleton; DDL runs one at a time so that desired state stays simple.
        self.lock = asyncio.Lock()
        # Each method of the one DDL list (DDL_METHODS, shared with the router) runs as its snake_case method here.
        self._handlers: dict[str, Callable[[Any, str], Awaitable[pb_message.Message]]] = {
            method: getattr(self, snake_case(method)) for method in DDL_METHODS
        }

    def methods(self) -> list[str]:
        return sorted(self._handlers)

    async def execute(self, method: str, payload: bytes, header_db: str) -> tuple[bytes, int]:
        handler = self._handlers.get(method)
        if handler is None:
            return error_response(method, errors.unsupported(method).to_status()).SerializeToString(), 0
        request = request_class(method).FromString(payload)
        async with self.lock:
            try:
                response = await handler(request, header_db)
            except MilvusError as exc:
                response = error_response(method, exc.to_status())
            except Exception as exc:  # never a traceback to the client
                log.exception("%s failed", method)
                response = error_response(method, errors.internal("meta", exc).to_status())
            version = self.store.catalog_version()
        await self.on_change(version)
        return response.SerializeToString(), version

    # --- helpers -------------------------------------------------------------------------------

    def address_of(self, identity: str) -> str:
        return self.membership.address_of(identity)

    def check_primary_serving(self, spec: CollectionSpec, shard: int) -> None:
        """Fail fast, naming the shard, when the shard's writable instance is not serving."""
        identity = spec.shards[shard].primary
        inst = self.membership.by_identity().get(identity)
        if inst is None or inst.health == discovery_pb2.DOWN:
            why = f": {inst.reason}" if inst is not None and inst.reason else ""
            raise MilvusError(
                errors.SERVICE_UNAVAILABLE,
                f"mishards: shard {shard} of collection {spec.name} is unavailable (writable instance {identity} is down{why})",
            )

    def collection(self, db_name: str, name: str) -> CollectionSpec:
        """The ready collection named `name` (or aliased `name`); Milvus's not-found error otherwise."""
        return self._collection(db_name, name)

    def _collection(self, db_name: str, name: str) -> CollectionSpec:
        try:
            spec = self.store.get_collection(db_name, name)
        except NotFound:
            raise errors.collection_not_found(name, db_name) from None
        if spec.state != READY:
            raise errors.collection_not_found(name, db_name)
        return spec

    async def _on_copies(
        self,
        spec: CollectionSpec,
        call: Callable[[Any, str], Awaitable[common_pb2.Status]],
        tolerate: Callable[[common_pb2.Status], bool] = lambda st: False,
    ) -> list[tuple[int, common_pb2.Status]]:
        """Run `call(stub, physical_name)` on every copy; returns failures (shard, status).

        A shard whose primary is lost fails it at once, naming the shard: the change waits for the
        primary's return or a replica's promotion (PRIMARY_FAILOVER_AFTER).
        """
        members = self.membership.by_identity()
        for s in spec.shards:
            inst = members.get(s.primary)
            if inst is None or inst.health == discovery_pb2.DOWN:
                why = f"down: {inst.reason}" if inst is not None and inst.reason else "not in the membership"
                return [
                    (
                        s.index,
                        errors.status(
                            errors.SERVICE_UNAVAILABLE,
                            f"mishards: shard {s.index} of collection {spec.name} has lost its primary {s.primary} "
                            f"({why}); changes to the collection wait until it is back or a replica is promoted",
                        ),
                    )
                ]

        async def one(shard: int, identity: str, physical: str) -> tuple[int, common_pb2.Status]:
            try:
                stub = self.backends.stub(self.address_of(identity))
                st = await call(stub, physical)
            except MilvusError as exc:
                st = exc.to_status()
            except Exception as exc:  # grpc errors: the instance did not answer
                st = errors.status(errors.SERVICE_UNAVAILABLE, f"mishards: instance {identity} did not answer: {exc}")
            if errors.is_error(st) and not tolerate(st):
                return shard, _rename(st, physical, spec.name)
            return shard, OK

        results = await asyncio.gather(*(one(s.index, s.primary, s.physical_name) for s in spec.shards))
        failures = [(k, st) for k, st in results if errors.is_error(st)]
        if not failures:
            await self._on_replicas(spec, call, tolerate)
        return failures

    async def _on_replicas(
        self,
        spec: CollectionSpec,
        call: Callable[[Any, str], Awaitable[common_pb2.Status]],
        tolerate: Callable[[common_pb2.Status], bool],
    ) -> None:
        """Apply a change the primaries took to every replica; a replica that misses it is refilled."""
        physical = {s.index: s.physical_name for s in spec.shards}
        replicas = [
            c for c in self.store.copies()
            if c.collection_id == spec.id and c.role == "replica" and c.state in (COPY_READY, COPY_STALE)
            and c.shard in physical
        ]  # fmt: skip

        async def one(shard: int, instance: str) -> None:
            try:
                st = await call(self.backends.stub(self.address_of(instance)), physical[shard])
            except Exception as exc:
                st = errors.status(errors.SERVICE_UNAVAILABLE, str(exc))
            if errors.is_error(st) and not tolerate(st):
                log.warning("replica %s of %s/%d missed a DDL (%s): refilling", instance, spec.name, shard, st.reason)
                self.store.set_copy_state(spec.id, shard, instance, COPY_FILLING, f"missed a DDL: {st.reason}")

        await asyncio.gather(*(one(c.shard, c.instance) for c in replicas))

    def _md(self) -> tuple[tuple[str, str], ...]:
        return self.backends.metadata()

    def _alter_unknown(self, db_name: str, name: str) -> MilvusError:
        """AlterCollection of an unknown collection, worded as the cluster's backend words it:
        2.3.5's root coordinator names the database by id (the default one is 1)."""
        if any(v.startswith("milvus_lite") for v in self.store.instance_versions().values()):
            return MilvusError(errors.COLLECTION_NOT_FOUND, f"collection '{name}' does not exist")
        return MilvusError(
            errors.COLLECTION_NOT_FOUND,
            f"timestamp = {self.tso.get()}: collection not found[database={self.database_id(db_name)}][collection={name}]",
        )

    def database_id(self, db_name: str) -> int:
        """A database's id: 1 for `default`, as in Milvus; its creation timestamp for the others."""
        if db_name == "default":
            return 1
        return self.store.database_created_ts(db_name)

    def _runs_lite(self, spec: CollectionSpec) -> bool:
        """The collection's first primary runs milvus-lite, whose answers differ from 2.3.5's."""
        version = self.store.instance_versions().get(spec.shards[0].primary, "") if spec.shards else ""
        return version.startswith("milvus_lite")

    # --- collections ---------------------------------------------------------------------------

    async def create_collection(self, req: milvus_pb2.CreateCollectionRequest, header_db: str) -> common_pb2.Status:
        db_name = _db(req, header_db)
        if db_name not in self.store.list_databases():
            raise errors.database_not_found(db_name)
        schema = schema_pb2.CollectionSchema.FromString(req.schema)
        # As Milvus 2.3.5: more than 16 shards is refused, 0 or less means the default.
        if req.shards_num > errors.MAX_SHARDS_NUM:
            raise errors.shards_num_exceeded()
        if schema.name and schema.name != req.collection_name:
            raise MilvusError(errors.PARAMETER_INVALID, "collection name in schema and request differ")
        try:
            existing = self.store.get_collection(db_name, req.collection_name)
        except NotFound:
            existing = None
        if existing is not None and existing.state == READY:
            if existing.name != req.collection_name:  # an alias has this name
                raise MilvusError(
                    errors.UNEXPECTED,
                    f"collection name [{req.collection_name}] conflicts with an existing alias",
                )
            if _same_schema(existing, schema):
                if self._runs_lite(existing):  # milvus-lite refuses it; 2.3.5 accepts it
                    raise MilvusError(errors.SERVICE_NOT_READY, f"collection '{req.collection_name}' already exists")
                return OK  # creating an existing collection with the same schema succeeds, as in Milvus 2.3.5
            raise MilvusError(
                errors.UNEXPECTED,
                f"create duplicate collection with different parameters, collection: {req.collection_name}",
            )
        shards_num = req.shards_num if req.shards_num > 0 else self.settings.DEFAULT_SHARDS_NUM
        writable = sorted(i.identity for i in self.membership.instances(discovery_pb2.WRITABLE))
        if not writable:
            raise MilvusError(errors.SERVICE_UNAVAILABLE, "mishards: no healthy writable Milvus instance")
        # off the event loop: placement grows with S × W, and meta serves every router meanwhile
        primaries = await asyncio.to_thread(
            placement.place_primaries, f"{db_name}/{req.collection_name}", shards_num, writable
        )
        spec = self.store.add_collection(
            db_name,
            req.collection_name,
            req.schema,
            shards_num,
            req.consistency_level,
            [(kv.key, kv.value) for kv in req.properties],
            self.tso.get(),
            primaries,
            SHARD_BY_PARTITION_KEY if any(f.is_partition_key for f in schema.fields) else SHARD_BY_PRIMARY,
        )
        await self.on_change(self.store.catalog_version())

        def physical_request(physical: str) -> milvus_pb2.CreateCollectionRequest:
            phys_schema = schema_pb2.CollectionSchema()
            phys_schema.CopyFrom(schema)
            phys_schema.name = physical
            phys_schema.autoID = False
            for f in phys_schema.fields:
                if f.is_primary_key:
                    f.autoID = False
            out = self._copy_request(req, physical)
            out.schema = phys_schema.SerializeToString()
            out.shards_num = 1
            return out

        async def create(stub: Any, physical: str) -> common_pb2.Status:
            return await stub.CreateCollection(physical_request(physical), metadata=self._md())

        # The first copy validates the schema, so a bad schema touches one backend only.
        first = CollectionSpec(**{**spec.__dict__, "shards": spec.shards[:1]})
        failures = await self._on_copies(first, create)
        if not failures:
            rest = CollectionSpec(**{**spec.__dict__, "shards": spec.shards[1:]})
            failures = await self._on_copies(rest, create)
        if failures:
            await self._drop_copies(spec)
            self.store.remove_collection(spec.id)
            return failures[0][1]
        described = await self._describe_first_copy(spec)
        if described is not None:
            for f in described.fields:
                if f.is_primary_key:
                    f.autoID = any(sf.autoID for sf in schema.fields if sf.is_primary_key) or schema.autoID
            described.name = req.collection_name
            described.autoID = schema.autoID
        stored = described.SerializeToString() if described is not None else req.schema
        partitions = await self._partitions_of_first_copy(spec)
        if partitions:
            self.store.set_partitions(spec.id, partitions)
        self.store.set_state(spec.id, READY, schema=stored)
        return OK

    async def _partitions_of_first_copy(self, spec: CollectionSpec) -> list[str]:
        """Partitions Milvus made for the collection (one, or num_partitions with a partition key)."""
        shard = spec.shards[0]
        stub = self.backends.stub(self.address_of(shard.primary))
        resp = await stub.ShowPartitions(
            milvus_pb2.ShowPartitionsRequest(collection_name=shard.physical_name), metadata=self._md()
        )
        if errors.is_error(resp.status):
            return []
        return list(resp.partition_names)

    async def _describe_first_copy(self, spec: CollectionSpec) -> schema_pb2.CollectionSchema | None:
        shard = spec.shards[0]
        stub = self.backends.stub(self.address_of(shard.primary))
        resp = await stub.DescribeCollection(
            milvus_pb2.DescribeCollectionRequest(collection_name=shard.physical_name), metadata=self._md()
        )
        if errors.is_error(resp.status):
            log.warning("describe of %s failed: %s", shard.physical_name, resp.status.reason)
            return None
        return resp.schema

    async def _drop_copies(self, spec: CollectionSpec) -> list[tuple[int, common_pb2.Status]]:
        async def drop(stub: Any, physical: str) -> common_pb2.Status:
            return await stub.DropCollection(
                milvus_pb2.DropCollectionRequest(collection_name=physical), metadata=self._md()
            )

        return await self._on_copies(spec, drop, tolerate=_not_found)

    async def drop_collection(self, req: milvus_pb2.DropCollectionRequest, header_db: str) -> common_pb2.Status:
        db_name = _db(req, header_db)
        try:
            spec = self.store.get_collection(db_name, req.collection_name)
        except NotFound:
            return OK  # Milvus 2.3 answers success for a collection that does not exist
        if spec.name != req.collection_name:
            raise MilvusError(errors.UNEXPECTED, f"cannot drop the collection via alias = {req.collection_name}")
        self.store.set_state(spec.id, DROPPING)
        if self.on_drop is not None:
            self.on_drop(spec.id)
        failures = await self._drop_copies(spec)
        if failures:
            return failures[0][1]  # stays DROPPING; the reconciler finishes it
        self.store.remove_collection(spec.id)
        return OK

    async def reconcile(self) -> None:
        """Finish or roll back DDL cut short by a crash: CREATING is rolled back, DROPPING finished."""
        for spec in self.store.iter_all():
            if spec.state in (CREATING, DROPPING):
                log.info("reconciling collection %s (%s)", spec.name, spec.state)
                try:
                    failures = await self._drop_copies(spec)
                except MilvusError as exc:
                    log.warning("cannot reconcile %s yet: %s", spec.name, exc.reason)
                    continue
                if not failures:
                    self.store.remove_collection(spec.id)

    # --- indexes -----------------------------------------------------------------------------

    async def create_index(self, req: milvus_pb2.CreateIndexRequest, header_db: str) -> common_pb2.Status:
        spec = self._collection(_db(req, header_db), req.collection_name)

        # the first shard alone first: invalid params fail there, before other copies change
        first = CollectionSpec(**{**spec.__dict__, "shards": spec.shards[:1]})
        failures = await self._apply("CreateIndex", first, req)
        if not failures:
            rest = CollectionSpec(**{**spec.__dict__, "shards": spec.shards[1:]})
            failures = await self._apply("CreateIndex", rest, req)
        if failures:
            if not any(k == 0 for k, _ in failures):
                await self._drop_index_copies(spec, req.field_name, req.index_name)
            return failures[0][1]
        params = {kv.key: kv.value for kv in req.extra_params}
        self.store.put_index(spec.id, req.field_name, req.index_name or req.field_name, params)
        return OK

    async def _drop_index_copies(
        self, spec: CollectionSpec, field_name: str, index_name: str
    ) -> list[tuple[int, common_pb2.Status]]:
        async def drop(stub: Any, physical: str) -> common_pb2.Status:
            return await stub.DropIndex(
                milvus_pb2.DropIndexRequest(collection_name=physical, field_name=field_name, index_name=index_name),
                metadata=self._md(),
            )

        return await self._on_copies(spec, drop)

    async def drop_index(self, req: milvus_pb2.DropIndexRequest, header_db: str) -> common_pb2.Status:
        spec = self._collection(_db(req, header_db), req.collection_name)
        failures = await self._drop_index_copies(spec, req.field_name, req.index_name)
        if failures:
            return failures[0][1]
        for field_name, index_name, _ in spec.indexes:
            if index_name == req.index_name or (not req.index_name and field_name == req.field_name):
                self.store.remove_index(spec.id, index_name)
        return OK

    # --- load / release ----------------------------------------------------------------------------

    async def load_collection(self, req: milvus_pb2.LoadCollectionRequest, header_db: str) -> common_pb2.Status:
        spec = self._collection(_db(req, header_db), req.collection_name)
        req.replica_number = 0  # replicas are Mishards copies, not Milvus in-memory replicas
        failures = await self._apply("LoadCollection", spec, req)
        if failures:
            return failures[0][1]
        self.store.set_loaded(spec.id, True)
        return OK

    async def release_collection(self, req: milvus_pb2.ReleaseCollectionRequest, header_db: str) -> common_pb2.Status:
        spec = self._collection(_db(req, header_db), req.collection_name)

        async def release(stub: Any, physical: str) -> common_pb2.Status:
            return await stub.ReleaseCollection(
                milvus_pb2.ReleaseCollectionRequest(collection_name=physical), metadata=self._md()
            )

        failures = await self._on_copies(spec, release)
        if failures:
            return failures[0][1]
        self.store.set_loaded(spec.id, False)
        return OK

    # --- partitions ---------------------------------------------------------------------------------

    def _copy_request(self, req: Any, physical: str) -> Any:
        out = type(req)()
        out.CopyFrom(req)
        if hasattr(out, "db_name"):
            out.db_name = ""
        out.collection_name = physical
        return out

    async def _apply(
        self,
        method: str,
        spec: CollectionSpec,
        req: Any,
        tolerate: Callable[[common_pb2.Status], bool] = lambda st: False,
    ) -> list[tuple[int, common_pb2.Status]]:
        async def call(stub: Any, physical: str) -> common_pb2.Status:
            return await getattr(stub, method)(self._copy_request(req, physical), metadata=self._md())

        return await self._on_copies(spec, call, tolerate)

    async def create_partition(self, req: milvus_pb2.CreatePartitionRequest, header_db: str) -> common_pb2.Status:
        spec = self._collection(_db(req, header_db), req.collection_name)
        failures = await self._apply("CreatePartition", spec, req)
        if failures:
            if req.partition_name not in spec.partitions:  # undo the copies that did create it
                drop = milvus_pb2.DropPartitionRequest(partition_name=req.partition_name)
                await self._apply("DropPartition", spec, drop, tolerate=lambda st: True)
            return failures[0][1]
        self.store.add_partition(spec.id, req.partition_name)
        return OK

    async def drop_partition(self, req: milvus_pb2.DropPartitionRequest, header_db: str) -> common_pb2.Status:
        spec = self._collection(_db(req, header_db), req.collection_name)
        failures = await self._apply("DropPartition", spec, req)
        if failures:
            return failures[0][1]
        self.store.remove_partition(spec.id, req.partition_name)
        return OK

    async def load_partitions(self, req: milvus_pb2.LoadPartitionsRequest, header_db: str) -> common_pb2.Status:
        spec = self._collection(_db(req, header_db), req.collection_name)
        req.replica_number = 0  # replicas are Mishards copies, not Milvus in-memory replicas
        failures = await self._apply("LoadPartitions", spec, req)
        return failures[0][1] if failures else OK

    async def release_partitions(self, req: milvus_pb2.ReleasePartitionsRequest, header_db: str) -> common_pb2.Status:
        spec = self._collection(_db(req, header_db), req.collection_name)
        failures = await self._apply("ReleasePartitions", spec, req)
        return failures[0][1] if failures else OK

    # --- aliases and renames (meta only: physical names never change) ------------------------------

    async def create_alias(self, req: milvus_pb2.CreateAliasRequest, header_db: str) -> common_pb2.Status:
        db_name = _db(req, header_db)
        target = self.store.collection_named(db_name, req.collection_name)
        if target is None or target.state != READY:
            raise MilvusError(
                errors.COLLECTION_NOT_FOUND,
                f"collection not found[database={db_name}][collection={req.collection_name}]",
            )
        if self.store.collection_named(db_name, req.alias) is not None:
            raise MilvusError(
                errors.ALIAS_NAME_CONFLICT, f"alias and collection name conflict[database={db_name}][alias={req.alias}]"
            )
        current = self.store.alias_target(db_name, req.alias)
        if current is not None and current.id != target.id:
            raise MilvusError(
                errors.ALIAS_ALREADY_EXISTS,
                f"{req.alias} is alias to another collection: {current.name}: alias already exist[database={db_name}][alias={req.alias}]",
            )
        self.store.put_alias(db_name, req.alias, target.id)
        return OK

    async def alter_alias(self, req: milvus_pb2.AlterAliasRequest, header_db: str) -> common_pb2.Status:
        db_name = _db(req, header_db)
        if self.store.alias_target(db_name, req.alias) is None:
            raise errors.alias_not_found(req.alias, db_name)
        target = self.store.collection_named(db_name, req.collection_name)
        if target is None or target.state != READY:
            raise MilvusError(
                errors.COLLECTION_NOT_FOUND,
                f"collection not found[database={db_name}][collection={req.collection_name}]",
            )
        self.store.put_alias(db_name, req.alias, target.id)
        return OK

    async def drop_alias(self, req: milvus_pb2.DropAliasRequest, header_db: str) -> common_pb2.Status:
        self.store.remove_alias(_db(req, header_db), req.alias)
        return OK

    async def rename_collection(self, req: milvus_pb2.RenameCollectionRequest, header_db: str) -> common_pb2.Status:
        db_name = _db(req, header_db)
        new_db = req.newDBName or db_name
        spec = self.store.collection_named(db_name, req.oldName)
        if spec is None or spec.state != READY:
            raise MilvusError(errors.COLLECTION_NOT_FOUND, f"{req.oldName}: collection not found[collection={db_name}]")
        if new_db not in self.store.list_databases():
            raise errors.database_not_found(new_db)
        if self.store.collection_named(new_db, req.newName) is not None or self.store.alias_target(new_db, req.newName):
            raise MilvusError(
                errors.UNEXPECTED,
                f"duplicated new collection name {new_db}:{req.newName} with other collection name or alias",
            )
        self.store.rename_collection(spec.id, new_db, req.newName)
        return OK

    async def alter_collection(self, req: milvus_pb2.AlterCollectionRequest, header_db: str) -> common_pb2.Status:
        """Set (properties) or remove (delete_keys) collection properties on every copy, then record them."""
        db_name = _db(req, header_db)
        try:
            spec = self._collection(db_name, req.collection_name)
        except MilvusError as exc:
            if exc.code != errors.COLLECTION_NOT_FOUND:
                raise
            raise self._alter_unknown(db_name, req.collection_name) from None

        req.collectionID = 0  # the logical id means nothing to a backend
        failures = await self._apply("AlterCollection", spec, req)
        if failures:
            return failures[0][1]
        properties = dict(spec.properties)
        properties.update((kv.key, kv.value) for kv in req.properties)
        for key in req.delete_keys:
            properties.pop(key, None)
        self.store.set_properties(spec.id, sorted(properties.items()))
        return OK

    # --- databases -------------------------------------------------------------------------------

    async def create_database(self, req: milvus_pb2.CreateDatabaseRequest, header_db: str) -> common_pb2.Status:
        if req.db_name in self.store.list_databases():
            raise MilvusError(errors.PARAMETER_INVALID, f"database already exist: {req.db_name}")
        self.store.create_database(req.db_name, self.tso.get())
        return OK

    async def drop_database(self, req: milvus_pb2.DropDatabaseRequest, header_db: str) -> common_pb2.Status:
        if req.db_name == "default":
            raise MilvusError(errors.PARAMETER_INVALID, "can not drop default database")
        if any(c.db_name == req.db_name for c in self.store.collections()):
            raise MilvusError(
                errors.PARAMETER_INVALID,
                f"database:{req.db_name} not empty, must drop all collections before drop database",
            )
        self.store.drop_database(req.db_name)
        return OK


def _same_schema(existing: CollectionSpec, requested: schema_pb2.CollectionSchema) -> bool:
    stored = schema_pb2.CollectionSchema.FromString(existing.schema)

    def shape(s: schema_pb2.CollectionSchema) -> list[tuple[str, int, bool, bool, tuple[tuple[str, str], ...]]]:
        return [
            (f.name, f.data_type, f.is_primary_key, f.autoID, tuple(sorted((kv.key, kv.value) for kv in f.type_params)))
            for f in s.fields
        ]

    return shape(stored) == shape(requested)


def _not_found(st: common_pb2.Status) -> bool:
    return st.code == errors.COLLECTION_NOT_FOUND or st.error_code == common_pb2.CollectionNotExists


def _rename(st: common_pb2.Status, physical: str, logical: str) -> common_pb2.Status:
    out = common_pb2.Status()
    out.CopyFrom(st)
    out.reason = st.reason.replace(physical, logical)
    return out
