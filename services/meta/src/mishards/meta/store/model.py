"""The catalog's tables (SQLAlchemy 2.x models), the records the stores return, and helpers."""

from __future__ import annotations

import json
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
    update,
)
from sqlalchemy.dialects.mysql import LONGBLOB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

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
