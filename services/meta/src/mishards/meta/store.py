"""The catalog and desired state in SQL (SQLAlchemy 2.x; SQLite embedded, MySQL in production).

Every write to the catalog bumps `catalog_version` in the same transaction, so a router
that has seen version V has seen every change up to V.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.mysql import LONGBLOB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

# Collection states: desired state is recorded before any backend is touched.
CREATING = "creating"
READY = "ready"
DROPPING = "dropping"
# What a row's shard is the murmur3 of (collections.shard_key): its primary key, or the value of
# its partition key field for a collection created with one (then a tenant's rows share a shard).
SHARD_BY_PRIMARY = "primary"
SHARD_BY_PARTITION_KEY = "partition_key"


class Base(DeclarativeBase):
    pass


class DatabaseRow(Base):
    __tablename__ = "databases"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    properties: Mapped[str] = mapped_column(Text, default="{}")


class CollectionRow(Base):
    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("db_name", "name", name="uq_collection_name"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    db_name: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    schema: Mapped[bytes] = mapped_column(LargeBinary(length=16 << 20))
    shards_num: Mapped[int] = mapped_column(Integer)
    consistency_level: Mapped[int] = mapped_column(Integer, default=0)
    properties: Mapped[str] = mapped_column(Text, default="[]")
    created_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    loaded: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default=CREATING)
    shard_key: Mapped[str] = mapped_column(String(16), default=SHARD_BY_PRIMARY)
    shards: Mapped[list[ShardRow]] = relationship(
        cascade="all, delete-orphan", order_by="ShardRow.idx", lazy="selectin"
    )
    partitions: Mapped[list[PartitionRow]] = relationship(cascade="all, delete-orphan", lazy="selectin")
    indexes: Mapped[list[IndexRow]] = relationship(cascade="all, delete-orphan", lazy="selectin")
    aliases: Mapped[list[AliasRow]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class ShardRow(Base):
    __tablename__ = "shards"
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    physical_name: Mapped[str] = mapped_column(String(255))
    primary: Mapped[str] = mapped_column(String(255))
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class PartitionRow(Base):
    __tablename__ = "partitions"
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class IndexRow(Base):
    __tablename__ = "indexes"
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    index_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    field_name: Mapped[str] = mapped_column(String(255))
    params: Mapped[str] = mapped_column(Text, default="{}")


class AliasRow(Base):
    __tablename__ = "aliases"
    db_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    alias: Mapped[str] = mapped_column(String(255), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))


_PAYLOAD = LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb")


class MutationRow(Base):
    __tablename__ = "mutations"
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(16))
    payload: Mapped[bytes] = mapped_column(_PAYLOAD)
    abortable: Mapped[bool] = mapped_column(Boolean, default=False)  # its client waits for the primaries
    aborted: Mapped[bool] = mapped_column(Boolean, default=False)  # rejected by the primary: every copy skips it


class CopyRow(Base):
    __tablename__ = "copies"
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance: Mapped[str] = mapped_column(String(255), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    applied_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class InstanceRow(Base):
    __tablename__ = "instances"
    identity: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), default="")
    draining: Mapped[bool] = mapped_column(Boolean, default=False)


class CounterRow(Base):
    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


# Copy states.
COPY_READY = "ready"
COPY_FAILED = "failed"
COPY_FILLING = "filling"  # a new replica: created, filled from a snapshot, indexed, loaded, catching up
COPY_STALE = "stale"  # a replica out of rotation: its instance stopped answering; back when caught up

# Copy roles besides "primary" and "replica".
ROLE_INCOMING = "incoming"  # a shard move's new copy: filled like a replica, then made the primary
ROLE_FENCED = "fenced"  # a lost primary a replica replaced: never applies or serves again
ROLE_RETIRED = "retired"  # a moved shard's old primary: kept until reads in flight are done, then dropped


@dataclass
class LogEntry:
    collection_id: int
    shard: int
    seq: int
    ts: int
    method: str
    payload: bytes
    abortable: bool = False  # its client waits for the primary (WRITE_ACK=applied)
    aborted: bool = False  # the primary rejected it: every copy skips it
    request: Any = None  # the decoded payload, when meta decoded it on append (never mutated)


@dataclass
class CopyRecord:
    collection_id: int
    shard: int
    instance: str
    role: str
    state: str
    applied_seq: int
    reason: str
    last_seq: int


@dataclass
class ShardSpec:
    index: int
    physical_name: str
    primary: str


@dataclass
class CollectionSpec:
    """A logical collection as the catalog records it."""

    id: int
    db_name: str
    name: str
    schema: bytes
    shards_num: int
    consistency_level: int
    properties: list[tuple[str, str]]
    created_ts: int
    loaded: bool
    state: str
    shards: list[ShardSpec]
    partitions: list[str] = field(default_factory=list)
    indexes: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    shard_key: str = SHARD_BY_PRIMARY


def physical_name(collection_id: int, shard: int) -> str:
    """The name of shard `shard`'s copy in every backend (design brief contract)."""
    return f"mishards_{collection_id}_s{shard}"


def _spec(row: CollectionRow) -> CollectionSpec:
    return CollectionSpec(
        id=row.id,
        db_name=row.db_name,
        name=row.name,
        schema=row.schema,
        shards_num=row.shards_num,
        consistency_level=row.consistency_level,
        properties=[tuple(kv) for kv in json.loads(row.properties or "[]")],  # type: ignore[misc]
        created_ts=row.created_ts,
        loaded=row.loaded,
        state=row.state,
        shards=[ShardSpec(s.idx, s.physical_name, s.primary) for s in row.shards],
        partitions=[p.name for p in sorted(row.partitions, key=lambda p: (p.position, p.name))],
        indexes=[(i.field_name, i.index_name, json.loads(i.params)) for i in row.indexes],
        aliases=sorted(a.alias for a in row.aliases),
        shard_key=row.shard_key,
    )


_WRITE = "mishards_write"  # the execution option of the store's write sessions


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the appliers read while a write commits. (Foreign keys stay off: batch migrations
    # recreate tables, and the store deletes child rows itself.)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
    # The driver would BEGIN only at the first write, after the reads a counter or a log
    # position is computed from: two writers would read the same value. `_sqlite_begin` begins.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # SQLite ignores FOR UPDATE: a write transaction takes the write lock when it begins
    # (readers go on, in WAL), so what it reads cannot change before it commits.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def _set_applied(s: Session, collection_id: int, shard: int, instance: str, seq: int) -> None:
    s.execute(
        update(CopyRow)
        .where(CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == instance)
        .values(applied_seq=seq)
    )


def _copy_info(row: CopyRow, last_seq: int) -> CopyRecord:
    return CopyRecord(
        row.collection_id, row.shard, row.instance, row.role, row.state, row.applied_seq, row.reason or "", last_seq
    )


class NoTimestamp(Exception):
    """The timestamp oracle must persist a new window before the append (outside its transaction)."""


class NotFound(KeyError):
    """The named object is not in the catalog."""


class Store:
    """Catalog persistence. Methods are synchronous and each runs in one transaction."""

    def __init__(self, url: str, echo: bool = False) -> None:
        sqlite = url.startswith("sqlite")
        connect_args: dict[str, object] = {"check_same_thread": False, "timeout": 30} if sqlite else {}
        self.engine: Engine = create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False)
        self._ready: dict[int, tuple[int, CollectionSpec]] = {}  # ready_collection's cache

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from mishards.meta.migrations import upgrade

        upgrade(self.engine)

    def session(self) -> Session:
        """A session for reads."""
        return self._sessions()

    def write(self) -> Session:
        """A session for one write transaction (`with store.write() as s, s.begin():`)."""
        return self._write_sessions()

    # --- counters -------------------------------------------------------------------------

    def _bump(self, s: Session, name: str, by: int = 1) -> int:
        row = s.get(CounterRow, name, with_for_update=True)
        if row is None:
            row = CounterRow(name=name, value=0)
            s.add(row)
        row.value += by
        s.flush()
        return row.value

    def counter(self, name: str) -> int:
        with self.session() as s:
            row = s.get(CounterRow, name)
            return row.value if row else 0

    def catalog_version(self) -> int:
        return self.counter("catalog_version")

    def allocate_ids(self, count: int, first_id: int = 1) -> int:
        """Reserve `count` ids; returns the first of the block [begin, begin+count)."""
        with self.write() as s, s.begin():
            row = s.get(CounterRow, "next_id", with_for_update=True)
            if row is None:
                row = CounterRow(name="next_id", value=first_id)
                s.add(row)
            begin = row.value
            row.value = begin + count
            return begin

    def reserve_timestamp_window(self, upto_ms: int) -> int:
        """Persist that hybrid timestamps up to physical `upto_ms` may be issued; returns the old bound."""
        with self.write() as s, s.begin():
            row = s.get(CounterRow, "tso_max_ms", with_for_update=True)
            if row is None:
                row = CounterRow(name="tso_max_ms", value=0)
                s.add(row)
            old = row.value
            row.value = max(old, upto_ms)
            return old

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

    # --- the mutation log ---------------------------------------------------------------------------

    def append_batch(
        self, appends: Sequence[tuple[int, Sequence[tuple[int, str, bytes]], bool]], stamp: Callable[[], int | None]
    ) -> list[tuple[list[int], int] | None]:
        """Append several writes in one transaction (one commit, one fsync: group commit).

        Each write is (collection id, [(shard, method, payload)], abortable) and gets its entries'
        positions and its own timestamp from `stamp()`, drawn while the collections' shard rows
        are locked, so on every shard a later position always has a later timestamp. A write
        whose collection is gone gets None. Raises NoTimestamp (nothing appended) when `stamp()`
        gives None.
        """
        with self.write() as s, s.begin():
            ids = sorted({cid for cid, _, _ in appends})
            shards = {
                (r.collection_id, r.idx): r
                for r in s.scalars(
                    select(ShardRow)
                    .where(ShardRow.collection_id.in_(ids))
                    .order_by(ShardRow.collection_id, ShardRow.idx)
                    .with_for_update()
                )
            }
            rows: list[dict[str, Any]] = []
            out: list[tuple[list[int], int] | None] = []
            for cid, entries, abortable in appends:
                if any((cid, shard) not in shards for shard, _, _ in entries):
                    out.append(None)
                    continue
                ts = stamp()
                if ts is None:
                    raise NoTimestamp(str(cid))
                seqs = []
                for shard, method, payload in entries:
                    row = shards[(cid, shard)]
                    row.last_seq += 1
                    seqs.append(row.last_seq)
                    rows.append(
                        {
                            "collection_id": cid,
                            "shard": shard,
                            "seq": row.last_seq,
                            "ts": ts,
                            "method": method,
                            "payload": payload,
                            "abortable": abortable,
                            "aborted": False,
                        }
                    )
                out.append((seqs, ts))
            if rows:
                s.execute(insert(MutationRow), rows)
            return out

    def append_mutations(
        self, collection_id: int, entries: list[tuple[int, str, bytes]], stamp: Callable[[], int | None]
    ) -> tuple[list[int], int]:
        """One write's (shard, method, payload) entries in one transaction: their positions and the write's ts.

        Raises NotFound when the collection is gone (see `append_batch`).
        """
        done = self.append_batch([(collection_id, entries, False)], stamp)[0]
        if done is None:
            raise NotFound(str(collection_id))
        return done

    def abort_entry(self, collection_id: int, shard: int, seq: int) -> None:
        """Record that the primary rejected an abortable entry: every copy skips it from now on."""
        with self.write() as s, s.begin():
            s.execute(
                update(MutationRow)
                .where(MutationRow.collection_id == collection_id, MutationRow.shard == shard, MutationRow.seq == seq)
                .values(aborted=True)
            )

    def entry_sizes(self, collection_id: int, shard: int, after_seq: int) -> list[tuple[int, int]]:
        """(position, payload bytes) of the shard's entries after `after_seq`, in order."""
        with self.session() as s:
            rows = s.execute(
                select(MutationRow.seq, func.length(MutationRow.payload))
                .where(
                    MutationRow.collection_id == collection_id, MutationRow.shard == shard, MutationRow.seq > after_seq
                )
                .order_by(MutationRow.seq)
            )
            return [(int(seq), int(size or 0)) for seq, size in rows]

    def log_start(self, collection_id: int, shard: int) -> int:
        """The first position the log still holds for the shard (its end + 1 when it holds none)."""
        with self.session() as s:
            first = s.scalar(
                select(func.min(MutationRow.seq)).where(
                    MutationRow.collection_id == collection_id, MutationRow.shard == shard
                )
            )
            if first is not None:
                return int(first)
            row = s.get(ShardRow, (collection_id, shard))
            return (row.last_seq if row is not None else 0) + 1

    def log_ends(self) -> dict[tuple[int, int], int]:
        """(collection, shard) -> the position of the shard's last log entry."""
        with self.session() as s:
            return {(r.collection_id, r.idx): r.last_seq for r in s.scalars(select(ShardRow))}

    def entries_after(
        self, collection_id: int, shard: int, after_seq: int, limit: int = 64, upto: int | None = None
    ) -> list[LogEntry]:
        """The shard's entries after `after_seq` (and up to `upto`), in order, at most `limit`."""
        with self.session() as s:
            query = select(MutationRow).where(
                MutationRow.collection_id == collection_id, MutationRow.shard == shard, MutationRow.seq > after_seq
            )
            if upto is not None:
                query = query.where(MutationRow.seq <= upto)
            rows = s.scalars(query.order_by(MutationRow.seq).limit(limit))
            return [
                LogEntry(r.collection_id, r.shard, r.seq, r.ts, r.method, r.payload, r.abortable, r.aborted)
                for r in rows
            ]

    def copies(self) -> list[CopyRecord]:
        with self.session() as s:
            last = {(r.collection_id, r.idx): r.last_seq for r in s.scalars(select(ShardRow))}
            return [
                _copy_info(r, last.get((r.collection_id, r.shard), 0))
                for r in s.scalars(select(CopyRow).order_by(CopyRow.collection_id, CopyRow.shard, CopyRow.instance))
            ]

    def primary_of(self, collection_id: int, shard: int) -> str | None:
        """The instance identity of the shard's primary copy; None when the catalog has no such shard."""
        with self.session() as s:
            return s.scalar(
                select(CopyRow.instance).where(
                    CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.role == "primary"
                )
            )

    def copy_info(self, collection_id: int, shard: int, instance: str) -> CopyRecord | None:
        """One copy's recorded state and its shard's log end; None when the catalog has no such copy."""
        with self.session() as s:
            row = s.get(CopyRow, (collection_id, shard, instance))
            if row is None:
                return None
            shard_row = s.get(ShardRow, (collection_id, shard))
            return _copy_info(row, shard_row.last_seq if shard_row is not None else 0)

    def mark_applied(
        self, collection_id: int, shard: int, instance: str, seq: int, released: Collection[str] = ()
    ) -> None:
        """Record that a copy applied the log up to `seq`, and drop entries every copy has applied.

        Copies in `released` (replicas down for too long) no longer hold the log back; the
        primary always does.
        """
        with self.write() as s, s.begin():
            _set_applied(s, collection_id, shard, instance, seq)
            positions = list(
                s.scalars(
                    select(CopyRow.applied_seq).where(
                        CopyRow.collection_id == collection_id,
                        CopyRow.shard == shard,
                        CopyRow.role.not_in([ROLE_FENCED, ROLE_RETIRED]),  # gone: they never apply again
                        (CopyRow.role == "primary") | CopyRow.instance.not_in(list(released)),
                    )
                )
            )
            upto = min(positions) if positions else seq
            s.execute(
                delete(MutationRow).where(
                    MutationRow.collection_id == collection_id, MutationRow.shard == shard, MutationRow.seq <= upto
                )
            )

    def add_copy(self, collection_id: int, shard: int, instance: str, role: str, state: str) -> None:
        with self.write() as s, s.begin():
            s.merge(
                CopyRow(
                    collection_id=collection_id,
                    shard=shard,
                    instance=instance,
                    role=role,
                    state=state,
                    applied_seq=0,
                    reason="",
                )
            )

    def remove_copy(self, collection_id: int, shard: int, instance: str) -> int:
        with self.write() as s, s.begin():
            s.execute(
                delete(CopyRow).where(
                    CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == instance
                )
            )
            return self._bump(s, "catalog_version")

    def switch_primary(self, collection_id: int, shard: int, new: str, old_role: str, reason: str = "") -> int:
        """Make the copy on `new` the shard's primary; the old primary's copy takes `old_role`. One transaction."""
        with self.write() as s, s.begin():
            row = s.get(ShardRow, (collection_id, shard))
            if row is None:
                raise NotFound(f"{collection_id}/{shard}")
            old = row.primary
            row.primary = new
            s.execute(
                update(CopyRow)
                .where(CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == old)
                .values(
                    role=old_role,
                    state=old_role if old_role in (ROLE_FENCED, ROLE_RETIRED) else COPY_FILLING,
                    reason=reason,
                )
            )
            s.execute(
                update(CopyRow)
                .where(CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == new)
                .values(role="primary", state=COPY_READY, reason="")
            )
            return self._bump(s, "catalog_version")

    def set_copy_role(
        self, collection_id: int, shard: int, instance: str, role: str, state: str, reason: str = ""
    ) -> None:
        with self.write() as s, s.begin():
            s.execute(
                update(CopyRow)
                .where(CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == instance)
                .values(role=role, state=state, reason=reason)
            )

    def set_copy_position(self, collection_id: int, shard: int, instance: str, seq: int) -> None:
        """Set where a (re)filled copy starts applying the log; it holds the log from there."""
        with self.write() as s, s.begin():
            _set_applied(s, collection_id, shard, instance, seq)

    def bump_catalog_version(self) -> int:
        with self.write() as s, s.begin():
            return self._bump(s, "catalog_version")

    def set_copy_state(self, collection_id: int, shard: int, instance: str, state: str, reason: str = "") -> None:
        with self.write() as s, s.begin():
            s.execute(
                update(CopyRow)
                .where(CopyRow.collection_id == collection_id, CopyRow.shard == shard, CopyRow.instance == instance)
                .values(state=state, reason=reason)
            )

    def log_length(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(MutationRow)) or 0)

    def iter_all(self) -> Iterator[CollectionSpec]:
        yield from self.collections((CREATING, READY, DROPPING))
