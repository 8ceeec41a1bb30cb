"""The router's cache of meta's catalog, refreshed by the change feed: no meta round trip on reads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from pymilvus.grpc_gen import schema_pb2

from mishards.common import errors
from mishards.router.meta_client import MetaClient
from mishards.v1 import meta_pb2

log = logging.getLogger(__name__)


@dataclass
class CollectionView:
    """A logical collection, ready for the data path."""

    message: meta_pb2.Collection
    schema: schema_pb2.CollectionSchema
    pk_field: schema_pb2.FieldSchema
    fields_by_name: dict[str, schema_pb2.FieldSchema] = field(default_factory=dict)
    # The field whose value a row's shard is the murmur3 of: the primary key, or the partition key
    # of a collection meta recorded as sharded by it (shard_key "partition_key").
    shard_field: schema_pb2.FieldSchema = field(default_factory=schema_pb2.FieldSchema)
    # Views of this collection reduced to some of its shards (reads a filter pins), made once each.
    _subsets: dict[tuple[int, ...], CollectionView] = field(default_factory=dict, repr=False, compare=False)

    @property
    def id(self) -> int:
        return self.message.id

    @property
    def name(self) -> str:
        return self.message.name

    @property
    def db_name(self) -> str:
        return self.message.db_name

    @property
    def shards(self) -> list[meta_pb2.ShardPlacement]:
        return list(self.message.shards)

    @property
    def shards_num(self) -> int:
        return self.message.shards_num

    @property
    def auto_id(self) -> bool:
        return self.pk_field.autoID

    @property
    def sharded_by_partition_key(self) -> bool:
        return self.shard_field.is_partition_key and not self.shard_field.is_primary_key

    def only_shard(self, index: int) -> CollectionView:
        """The same collection with its placement reduced to one shard (a read of that shard alone)."""
        return self.only_shards((index,))

    def only_shards(self, indices: tuple[int, ...]) -> CollectionView:
        """The same collection with its placement reduced to the shards `indices` (in placement order);
        `shards_num` stays the collection's."""
        subset = self._subsets.get(indices)
        if subset is None:
            message = meta_pb2.Collection()
            message.CopyFrom(self.message)
            del message.shards[:]
            for placement in self.message.shards:
                if placement.index in indices:
                    message.shards.add().CopyFrom(placement)
            subset = CollectionView(
                message=message,
                schema=self.schema,
                pk_field=self.pk_field,
                fields_by_name=self.fields_by_name,
                shard_field=self.shard_field,
            )
            if len(self._subsets) < 1024:  # a view lives until the next catalog change
                self._subsets[indices] = subset
        return subset

    def physical_names(self) -> set[str]:
        return {s.physical_name for s in self.message.shards}


SHARD_BY_PARTITION_KEY = "partition_key"  # meta's collections.shard_key for partition-key sharding


def _view(message: meta_pb2.Collection) -> CollectionView:
    schema = schema_pb2.CollectionSchema.FromString(message.schema)
    pk = next((f for f in schema.fields if f.is_primary_key), schema_pb2.FieldSchema())
    shard_field = pk
    if message.shard_key == SHARD_BY_PARTITION_KEY:
        shard_field = next((f for f in schema.fields if f.is_partition_key), pk)
    return CollectionView(
        message=message,
        schema=schema,
        pk_field=pk,
        fields_by_name={f.name: f for f in schema.fields},
        shard_field=shard_field,
    )


class CatalogCache:
    """Holds the newest catalog; `resolve()` maps (db, name or alias) to a CollectionView."""

    def __init__(self, meta: MetaClient) -> None:
        self.meta = meta
        self.version = -1
        self.databases: list[str] = ["default"]
        self.instance_versions: dict[str, str] = {}  # identity -> the Milvus version it reported
        self._by_name: dict[tuple[str, str], CollectionView] = {}
        self._by_alias: dict[tuple[str, str], CollectionView] = {}
        self._refresh_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        # Called with every catalog fetched (the auth cache refetches users and grants when they moved).
        self.listeners: list[Callable[[meta_pb2.Catalog], Awaitable[None]]] = []

    async def start(self, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await self.refresh()
                break
            except grpc.aio.AioRpcError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.3)
        self._task = asyncio.create_task(self._follow(), name="catalog-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def refresh(self, at_least: int = 0) -> None:
        """Fetch the catalog unless the cache already holds version `at_least` or newer."""
        async with self._refresh_lock:
            if at_least and self.version >= at_least:
                return
            catalog = await self.meta.get_catalog()
            self._install(catalog)
        for listener in self.listeners:
            await listener(catalog)

    def _install(self, catalog: meta_pb2.Catalog) -> None:
        by_name: dict[tuple[str, str], CollectionView] = {}
        by_alias: dict[tuple[str, str], CollectionView] = {}
        for message in catalog.collections:
            view = _view(message)
            by_name[(message.db_name, message.name)] = view
            for alias in message.aliases:
                by_alias[(message.db_name, alias)] = view
        self._by_name, self._by_alias = by_name, by_alias
        self.databases = list(catalog.databases)
        self.instance_versions = {i.identity: i.version for i in catalog.instances}
        self.version = catalog.version

    async def _follow(self) -> None:
        delay = 0.2
        while True:
            try:
                async for update in self.meta.watch_catalog():
                    delay = 0.2
                    if update.version != self.version:
                        await self.refresh(update.version)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.warning("catalog watch broke: %s", exc.code().name)
            except Exception:
                log.exception("catalog watch failed")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def resolve(self, db_name: str, name: str, method: str = "") -> CollectionView:
        """The collection called `name` (or aliased `name`); Milvus's not-found error (as `method`
        words it) otherwise."""
        db = db_name or "default"
        view = self._by_name.get((db, name)) or self._by_alias.get((db, name))
        if view is None:
            raise errors.collection_not_found_in(method, name, db)
        return view

    def backend_version(self, view: CollectionView) -> str:
        """The Milvus version of the collection's first primary ('' until meta has asked it)."""
        shards = view.message.shards
        return self.instance_versions.get(shards[0].primary, "") if shards else ""

    def cluster_version(self) -> str:
        """The Milvus version of any instance that reported one ('' until meta has asked one):
        what answers a request naming no known collection are worded by."""
        return next((v for v in self.instance_versions.values() if v), "")

    def find(self, db_name: str, name: str) -> CollectionView | None:
        db = db_name or "default"
        return self._by_name.get((db, name)) or self._by_alias.get((db, name))

    def alias_target(self, db_name: str, alias: str) -> CollectionView | None:
        return self._by_alias.get((db_name or "default", alias))

    def collections(self, db_name: str) -> list[CollectionView]:
        db = db_name or "default"
        return sorted((v for (d, _), v in self._by_name.items() if d == db), key=lambda v: v.id)
