"""The catalog: databases, collections, shards, partitions, indexes, aliases, instances."""

from __future__ import annotations

import json
from collections.abc import Iterator

from sqlalchemy import (
    delete,
    select,
    update,
)

from mishards.meta.store.base import StoreBase
from mishards.meta.store.model import (
    COPY_READY,
    CREATING,
    DROPPING,
    READY,
    SHARD_BY_PRIMARY,
    AliasRow,
    CollectionRow,
    CollectionSpec,
    CopyRow,
    DatabaseRow,
    IndexRow,
    InstanceRow,
    MutationRow,
    NotFound,
    PartitionRow,
    ShardRow,
    _spec,
    physical_name,
)


class CatalogStore(StoreBase):
    """The logical catalog. Every write bumps `catalog_version` in the same transaction."""

    # --- instances ------------------------------------------------------------------------

    def instance_versions(self) -> dict[str, str]:
        """identity -> the Milvus version the instance reported (GetVersion)."""
        with self.session() as s:
            return {r.identity: r.version for r in s.scalars(select(InstanceRow))}

    def set_instance_version(self, identity: str, version: str) -> int:
        with self.write() as s, s.begin():
            row = s.get(InstanceRow, identity)
            if row is None:
                s.add(InstanceRow(identity=identity, version=version, draining=False))
            else:
                row.version = version
            return self._bump(s, "catalog_version")

    def draining_instances(self) -> set[str]:
        """Instances an operator is draining (`mishards drain`)."""
        with self.session() as s:
            return set(s.scalars(select(InstanceRow.identity).where(InstanceRow.draining.is_(True))))

    def set_draining(self, identity: str, draining: bool) -> int:
        with self.write() as s, s.begin():
            row = s.get(InstanceRow, identity)
            if row is None:
                s.add(InstanceRow(identity=identity, version="", draining=draining))
            else:
                row.draining = draining
            return self._bump(s, "catalog_version")

    # --- databases ------------------------------------------------------------------------

    def list_databases(self) -> list[str]:
        with self.session() as s:
            names = list(s.scalars(select(DatabaseRow.name)))
        return sorted(set(names) | {"default"})

    def database_created_ts(self, name: str) -> int:
        """When a database was created (a hybrid timestamp); 0 for `default` and unknown names."""
        with self.session() as s:
            row = s.get(DatabaseRow, name)
            return row.created_ts if row is not None else 0

    def create_database(self, name: str, ts: int) -> int:
        with self.write() as s, s.begin():
            s.add(DatabaseRow(name=name, created_ts=ts))
            return self._bump(s, "catalog_version")

    def drop_database(self, name: str) -> int:
        with self.write() as s, s.begin():
            s.execute(delete(DatabaseRow).where(DatabaseRow.name == name))
            return self._bump(s, "catalog_version")

    # --- collections ----------------------------------------------------------------------

    def add_collection(
        self,
        db_name: str,
        name: str,
        schema: bytes,
        shards_num: int,
        consistency_level: int,
        properties: list[tuple[str, str]],
        created_ts: int,
        primaries: list[str],
        shard_key: str = SHARD_BY_PRIMARY,
    ) -> CollectionSpec:
        """Record a new collection in state CREATING with its placement and shard key (fixed from then on)."""
        with self.write() as s, s.begin():
            row = CollectionRow(
                db_name=db_name,
                name=name,
                schema=schema,
                shards_num=shards_num,
                consistency_level=consistency_level,
                properties=json.dumps(properties),
                created_ts=created_ts,
                state=CREATING,
                shard_key=shard_key,
            )
            s.add(row)
            s.flush()
            for k, primary in enumerate(primaries):
                s.add(ShardRow(collection_id=row.id, idx=k, physical_name=physical_name(row.id, k), primary=primary))
                s.add(CopyRow(collection_id=row.id, shard=k, instance=primary, role="primary", state=COPY_READY))
            s.add(PartitionRow(collection_id=row.id, name="_default", position=0))
            self._bump(s, "catalog_version")
            s.flush()
            s.refresh(row)
            return _spec(row)

    def set_state(self, collection_id: int, state: str, schema: bytes | None = None) -> int:
        with self.write() as s, s.begin():
            values: dict[str, object] = {"state": state}
            if schema is not None:
                values["schema"] = schema
            s.execute(update(CollectionRow).where(CollectionRow.id == collection_id).values(**values))
            return self._bump(s, "catalog_version")

    def set_properties(self, collection_id: int, properties: list[tuple[str, str]]) -> int:
        with self.write() as s, s.begin():
            s.execute(
                update(CollectionRow).where(CollectionRow.id == collection_id).values(properties=json.dumps(properties))
            )
            return self._bump(s, "catalog_version")

    def set_loaded(self, collection_id: int, loaded: bool) -> int:
        with self.write() as s, s.begin():
            s.execute(update(CollectionRow).where(CollectionRow.id == collection_id).values(loaded=loaded))
            return self._bump(s, "catalog_version")

    def remove_collection(self, collection_id: int) -> int:
        with self.write() as s, s.begin():
            row = s.get(CollectionRow, collection_id)
            if row is not None:
                s.execute(delete(MutationRow).where(MutationRow.collection_id == collection_id))
                s.execute(delete(CopyRow).where(CopyRow.collection_id == collection_id))
                s.delete(row)
            return self._bump(s, "catalog_version")

    def rename_collection(self, collection_id: int, db_name: str, new_name: str) -> int:
        with self.write() as s, s.begin():
            s.execute(
                update(CollectionRow).where(CollectionRow.id == collection_id).values(name=new_name, db_name=db_name)
            )
            return self._bump(s, "catalog_version")

    def get_collection(self, db_name: str, name: str) -> CollectionSpec:
        """The collection named `name` (or aliased `name`) in `db_name`; NotFound otherwise."""
        with self.session() as s:
            row = s.scalars(
                select(CollectionRow).where(CollectionRow.db_name == db_name, CollectionRow.name == name)
            ).first()
            if row is None:
                alias = s.get(AliasRow, (db_name, name))
                if alias is not None:
                    row = s.get(CollectionRow, alias.collection_id)
            if row is None:
                raise NotFound(f"{db_name}.{name}")
            return _spec(row)

    def collection_by_id(self, collection_id: int) -> CollectionSpec | None:
        with self.session() as s:
            row = s.get(CollectionRow, collection_id)
            return _spec(row) if row is not None and row.state == READY else None

    def ready_collection(self, collection_id: int) -> CollectionSpec | None:
        """`collection_by_id`, from memory while the catalog version has not moved.

        Every change to a collection bumps the version in its own transaction, so a spec
        read at version V is exact for as long as the version is V. One counter read
        instead of five queries on every write's path. The spec is shared: do not mutate it.
        """
        version = self.catalog_version()
        cached = self._ready.get(collection_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        spec = self.collection_by_id(collection_id)
        if spec is None:
            self._ready.pop(collection_id, None)
        else:  # read at V or later: cached under V, so it is re-read unless the version is still V
            self._ready[collection_id] = (version, spec)
        return spec

    def collections(self, states: tuple[str, ...] = (READY,)) -> list[CollectionSpec]:
        with self.session() as s:
            rows = s.scalars(select(CollectionRow).where(CollectionRow.state.in_(states)).order_by(CollectionRow.id))
            return [_spec(r) for r in rows]

    # --- partitions, indexes, aliases ---------------------------------------------------------

    def add_partition(self, collection_id: int, name: str) -> int:
        with self.write() as s, s.begin():
            if s.get(PartitionRow, (collection_id, name)) is None:
                last = s.scalars(
                    select(PartitionRow.position)
                    .where(PartitionRow.collection_id == collection_id)
                    .order_by(PartitionRow.position.desc())
                ).first()
                s.add(PartitionRow(collection_id=collection_id, name=name, position=(last or 0) + 1))
            return self._bump(s, "catalog_version")

    def remove_partition(self, collection_id: int, name: str) -> int:
        with self.write() as s, s.begin():
            s.execute(
                delete(PartitionRow).where(PartitionRow.collection_id == collection_id, PartitionRow.name == name)
            )
            return self._bump(s, "catalog_version")

    def put_index(self, collection_id: int, field_name: str, index_name: str, params: dict[str, str]) -> int:
        with self.write() as s, s.begin():
            s.merge(
                IndexRow(
                    collection_id=collection_id,
                    index_name=index_name,
                    field_name=field_name,
                    params=json.dumps(params, sort_keys=True),
                )
            )
            return self._bump(s, "catalog_version")

    def remove_index(self, collection_id: int, index_name: str) -> int:
        with self.write() as s, s.begin():
            s.execute(
                delete(IndexRow).where(IndexRow.collection_id == collection_id, IndexRow.index_name == index_name)
            )
            return self._bump(s, "catalog_version")

    def set_partitions(self, collection_id: int, names: list[str]) -> int:
        """Replace the partition list (used once a copy reports the partitions Milvus made)."""
        with self.write() as s, s.begin():
            s.execute(delete(PartitionRow).where(PartitionRow.collection_id == collection_id))
            for position, name in enumerate(names):
                s.add(PartitionRow(collection_id=collection_id, name=name, position=position))
            return self._bump(s, "catalog_version")

    def alias_target(self, db_name: str, alias: str) -> CollectionSpec | None:
        """The collection an alias points to, or None when there is no such alias."""
        with self.session() as s:
            row = s.get(AliasRow, (db_name, alias))
            if row is None:
                return None
            target = s.get(CollectionRow, row.collection_id)
            return _spec(target) if target is not None else None

    def collection_named(self, db_name: str, name: str) -> CollectionSpec | None:
        """The collection with exactly this name (aliases not followed)."""
        with self.session() as s:
            row = s.scalars(
                select(CollectionRow).where(CollectionRow.db_name == db_name, CollectionRow.name == name)
            ).first()
            return _spec(row) if row is not None else None

    def put_alias(self, db_name: str, alias: str, collection_id: int) -> int:
        with self.write() as s, s.begin():
            s.merge(AliasRow(db_name=db_name, alias=alias, collection_id=collection_id))
            return self._bump(s, "catalog_version")

    def remove_alias(self, db_name: str, alias: str) -> int:
        with self.write() as s, s.begin():
            s.execute(delete(AliasRow).where(AliasRow.db_name == db_name, AliasRow.alias == alias))
            return self._bump(s, "catalog_version")

    def iter_all(self) -> Iterator[CollectionSpec]:
        yield from self.collections((CREATING, READY, DROPPING))
