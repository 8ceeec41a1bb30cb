"""The catalog and desired state in SQL (SQLAlchemy 2.x; SQLite embedded, MySQL in production).

Every write to the catalog bumps `catalog_version` in the same transaction, so a router
that has seen version V has seen every change up to V.

Split by concern: `CatalogStore` (catalog.py), `LogStore` (log.py) and `CopyStore`
(copies.py) over one `StoreBase` (engine, sessions, counters); `Store` is all three on one
database, which is what meta runs.
"""

from __future__ import annotations

from mishards.meta.store.base import StoreBase
from mishards.meta.store.catalog import CatalogStore
from mishards.meta.store.copies import CopyStore
from mishards.meta.store.log import LogStore
from mishards.meta.store.model import (
    COPY_FAILED,
    COPY_FILLING,
    COPY_READY,
    COPY_STALE,
    CREATING,
    DROPPING,
    READY,
    ROLE_FENCED,
    ROLE_INCOMING,
    ROLE_RETIRED,
    SHARD_BY_PARTITION_KEY,
    SHARD_BY_PRIMARY,
    AliasRow,
    Base,
    CollectionRow,
    CollectionSpec,
    CopyRecord,
    CopyRow,
    CounterRow,
    DatabaseRow,
    IndexRow,
    InstanceRow,
    LogEntry,
    MutationRow,
    NotFound,
    NoTimestamp,
    PartitionRow,
    ShardRow,
    ShardSpec,
    physical_name,
)


class Store(CatalogStore, LogStore, CopyStore):
    """The catalog, the log and the copies on one database."""


__all__ = [
    "AliasRow",
    "Base",
    "COPY_FAILED",
    "COPY_FILLING",
    "COPY_READY",
    "COPY_STALE",
    "CREATING",
    "CatalogStore",
    "CollectionRow",
    "CollectionSpec",
    "CopyRecord",
    "CopyRow",
    "CopyStore",
    "CounterRow",
    "DROPPING",
    "DatabaseRow",
    "IndexRow",
    "InstanceRow",
    "LogEntry",
    "LogStore",
    "MutationRow",
    "NoTimestamp",
    "NotFound",
    "PartitionRow",
    "READY",
    "ROLE_FENCED",
    "ROLE_INCOMING",
    "ROLE_RETIRED",
    "SHARD_BY_PARTITION_KEY",
    "SHARD_BY_PRIMARY",
    "ShardRow",
    "ShardSpec",
    "Store",
    "StoreBase",
    "physical_name",
]
