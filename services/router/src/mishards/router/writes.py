"""Writes: split rows by shard, hand them to the mutation log (validation.py checks them first)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import message as pb_message
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.common.hashing import shards_of
from mishards.router import columns, literals, validation
from mishards.router.catalog import CollectionView
from mishards.router.fanout import rename_status
from mishards.router.meta_client import META_CALL_TIMEOUT, MetaClient
from mishards.router.topology import Topology
from mishards.v1 import meta_pb2

# Log entries stay below this size (MySQL's max_allowed_packet is 16 MB by default).
ENTRY_BYTES = 8 << 20


@dataclass
class LoggedWrite:
    """A write the log holds durably (and, in applied mode, every shard's primary has applied)."""

    timestamp: int  # Mishards hybrid timestamp of the write
    positions: dict[int, int]  # shard -> log position of its last entry


class WriteLog(abc.ABC):
    """Where a write goes once split: entries per shard, applied in log order on every copy."""

    @abc.abstractmethod
    async def append(
        self, view: CollectionView, method: str, parts: dict[int, list[pb_message.Message]]
    ) -> LoggedWrite:
        """Log `parts` (shard index -> its physical requests, in order) as one write.

        Every part is logged as the method of its request type (`method_of`): an upsert of a
        collection sharded by partition key is logged as deletes and inserts in one write.

        Raises MilvusError: rate limit when a shard's backlog is full, and in applied mode
        naming the shard when its writable instance is down (nothing logged then) or with the
        primary's status when it rejected its part.
        """


class MetaWriteLog(WriteLog):
    """Appends each write to meta's durable log in one call; meta's appliers apply it in order."""

    def __init__(self, meta: MetaClient, topology: Topology, timeout: float, wait_applied: bool = False) -> None:
        self.meta = meta
        self.topology = topology
        self.timeout = timeout
        self.wait_applied = wait_applied

    async def append(
        self, view: CollectionView, method: str, parts: dict[int, list[pb_message.Message]]
    ) -> LoggedWrite:
        shards = view.shards
        if self.wait_applied:  # the client waits for the primaries: a shard that is down fails it now
            for k in parts:
                self.topology.primary_address(shards[k], view.name)
        request = meta_pb2.AppendMutationsRequest(collection_id=view.id, wait_applied=self.wait_applied)
        for k in sorted(parts):
            for part in parts[k]:
                request.entries.add(shard=k, method=method_of(part, method), request=part.SerializeToString())
        # applied mode waits for the primaries: a backend call's time, plus meta's own
        answer = await self.meta.append_mutations(request, timeout=self.timeout + META_CALL_TIMEOUT)
        if answer.status:
            st = common_pb2.Status.FromString(answer.status)
            raise MilvusError.from_status(rename_status(st, view))
        return LoggedWrite(timestamp=answer.timestamp, positions={r.shard: r.seq for r in answer.shards})


_METHODS = {milvus_pb2.DeleteRequest: "Delete", milvus_pb2.InsertRequest: "Insert", milvus_pb2.UpsertRequest: "Upsert"}


def method_of(part: pb_message.Message, method: str) -> str:
    """The method a log entry is applied with: its request's (an upsert may log deletes and inserts)."""
    return _METHODS.get(type(part), method)  # type: ignore[call-overload]


# What a physical write keeps of the client's request (not its db_name, base, hash_keys, ...).
_PART_FIELDS = frozenset({"collection_name", "partition_name", "fields_data", "num_rows"})


def as_physical(request: Any, physical: str, added: Sequence[schema_pb2.FieldData]) -> Any:
    """The client's request turned, in place, into the physical request of one shard (its columns are not copied)."""
    for descriptor, _ in request.ListFields():
        if descriptor.name not in _PART_FIELDS:
            request.ClearField(descriptor.name)
    request.collection_name = physical
    request.fields_data.extend(added)  # e.g. the key column of an auto_id collection
    return request


def split_entry(part: pb_message.Message, method: str) -> list[pb_message.Message]:
    """One shard's rows as log entries of at most ENTRY_BYTES each (rows kept in order)."""
    size = part.ByteSize()
    if size <= ENTRY_BYTES:
        return [part]
    rows = part.num_rows  # type: ignore[attr-defined]
    pieces = -(-size // ENTRY_BYTES)
    step = -(-rows // pieces)
    out = []
    for start in range(0, rows, step):
        idx = np.arange(start, min(start + step, rows))
        chunk = type(part)(
            collection_name=part.collection_name,  # type: ignore[attr-defined]
            partition_name=part.partition_name,  # type: ignore[attr-defined]
            num_rows=len(idx),
        )
        chunk.fields_data.extend(columns.take_rows(part.fields_data, idx))  # type: ignore[attr-defined]
        out.append(chunk)
    return out


def split_rows_by_shard(keys: Sequence[Any] | np.ndarray, shards_num: int) -> dict[int, np.ndarray]:
    """Row indices of each shard, in the client's row order within a shard."""
    shard_of_row = shards_of(keys, shards_num)
    order = np.argsort(shard_of_row, kind="stable")
    bounds = np.searchsorted(shard_of_row[order], np.arange(shards_num + 1))
    return {k: order[bounds[k] : bounds[k + 1]] for k in range(shards_num) if bounds[k + 1] > bounds[k]}


def shard_key_values(view: CollectionView, rows: validation.Rows) -> Sequence[Any] | np.ndarray:
    """What each row's shard is the hash of: its primary key, or its partition key's value."""
    if not view.sharded_by_partition_key:
        return rows.keys  # type: ignore[no-any-return]
    name = view.shard_field.name
    column = next((fd for fd in rows.fields_data if fd.field_name == name), None)
    if column is None:  # validation fills or refuses a missing partition key column: not reached
        raise MilvusError(errors.UNEXPECTED, f"mishards: the insert has no partition key field {name}")
    if view.shard_field.data_type == schema_pb2.Int64:
        return np.asarray(column.scalars.long_data.data, dtype=np.int64)
    return list(column.scalars.string_data.data)


def upsert_deletes(view: CollectionView, keys: Sequence[Any] | np.ndarray) -> dict[int, list[milvus_pb2.DeleteRequest]]:
    """Per shard, a delete of every upserted primary key (logged before the rows' inserts).

    A collection sharded by partition key holds a row on its key's shard: an upsert that gives
    a row a new key must remove it from the shard it was on, in the same log write. The key's
    own shard gets the delete too, and the rows as an insert after it: Milvus 2.3.5 answers a
    partition-key filter without a row upserted under a primary key it did not hold.
    """
    unique = list(dict.fromkeys(np.asarray(keys).tolist()))
    return delete_parts(view, milvus_pb2.DeleteRequest(), {shard: unique for shard in range(view.shards_num)})


def ids_message(pk: schema_pb2.FieldSchema, keys: Sequence[Any] | np.ndarray) -> schema_pb2.IDs:
    ids = schema_pb2.IDs()
    if pk.data_type == schema_pb2.Int64:
        ids.int_id.data.extend(np.asarray(keys).tolist())
    else:
        ids.str_id.data.extend(list(keys))
    return ids


def mutation_result(
    pk: schema_pb2.FieldSchema, keys: Sequence[Any] | np.ndarray, timestamp: int, insert: int = 0, upsert: int = 0
) -> milvus_pb2.MutationResult:
    n = len(keys)
    return milvus_pb2.MutationResult(
        status=common_pb2.Status(),
        IDs=ids_message(pk, keys),
        succ_index=list(range(n)),
        insert_cnt=insert,
        upsert_cnt=upsert,
        timestamp=timestamp,
    )


DELETE_ENTRY_CHARS = 4 << 20  # a delete entry's expression stays under this many characters


def delete_parts(
    view: CollectionView, request: milvus_pb2.DeleteRequest, keys_by_shard: dict[int, list[Any]]
) -> dict[int, list[milvus_pb2.DeleteRequest]]:
    """Per shard, delete-by-key requests for its keys (cut so that no expression is too long)."""
    out: dict[int, list[milvus_pb2.DeleteRequest]] = {}
    for shard, keys in keys_by_shard.items():
        if not keys:
            continue
        chunks: list[list[Any]] = [[]]
        size = 0
        for key in keys:
            length = len(str(key)) + 4
            if chunks[-1] and size + length > DELETE_ENTRY_CHARS:
                chunks.append([])
                size = 0
            chunks[-1].append(key)
            size += length
        out[shard] = [
            milvus_pb2.DeleteRequest(
                collection_name=view.shards[shard].physical_name,
                partition_name=request.partition_name,
                expr=literals.delete_expr(view.pk_field, chunk),
            )
            for chunk in chunks
        ]
    return out


class Writer:
    """Inserts, upserts and deletes of logical collections: split by shard, logged as one write, answered.

    The client's MutationResult is built here from what the router knows (keys, counts, the
    write's Mishards timestamp): with WRITE_ACK=logged no backend has seen the write yet.
    """

    def __init__(self, mutation_log: WriteLog, ids: Any, keys_matching: Any, timestamp: Any) -> None:
        self.log = mutation_log
        self.ids = ids  # IdAllocator: int64 keys for auto_id collections
        self.keys_matching = keys_matching  # (view, expr, partitions) -> {shard: keys}: a Strong query
        self.timestamp = timestamp  # () -> a fresh Mishards timestamp

    async def write_rows(
        self,
        view: CollectionView,
        request: milvus_pb2.InsertRequest | milvus_pb2.UpsertRequest,
        method: str,
        dialect: str = validation.MILVUS,
    ) -> milvus_pb2.MutationResult:
        """Validate as the backend in use does (`validation`), split by shard, log as one write, answer."""
        checked = validation.validate_rows(view, request, dialect)
        upsert = method == "Upsert"
        if checked.num_rows == 0:  # milvus-lite takes an empty write and writes nothing
            return mutation_result(view.pk_field, [], await self.timestamp())
        if checked.ids_needed:
            checked.assign_ids(await self.ids.allocate(checked.ids_needed))
        fields_data, num_rows, keys = checked.fields_data, checked.num_rows, checked.keys
        own = len(fields_data) >= len(request.fields_data) and all(
            a is b for a, b in zip(fields_data, request.fields_data)
        )  # the request's own columns (upb keeps one wrapper per element), maybe with a key column added
        parts: dict[int, list[pb_message.Message]] = {}
        by_shard = split_rows_by_shard(shard_key_values(view, checked), view.shards_num)
        kind: Any = type(request)
        if upsert and view.sharded_by_partition_key:  # a row whose key moved leaves its old shard
            for shard, deletes in upsert_deletes(view, keys).items():
                parts[shard] = list(deletes)
            kind = milvus_pb2.InsertRequest  # after the deletes, the rows are new on their shard
        for shard, rows in by_shard.items():
            physical = view.shards[shard].physical_name
            if len(rows) == num_rows and own and kind is type(request):  # every row to one shard: no copy
                part: Any = as_physical(request, physical, fields_data[len(request.fields_data) :])
                part.num_rows = num_rows
            else:
                part = kind(collection_name=physical, partition_name=request.partition_name, num_rows=len(rows))
                part.fields_data.extend(fields_data if len(rows) == num_rows else columns.take_rows(fields_data, rows))
            parts.setdefault(shard, []).extend(split_entry(part, method))
        logged = await self.log.append(view, method, parts)
        counts = {"upsert": num_rows} if upsert else {"insert": num_rows}
        return mutation_result(view.pk_field, keys, logged.timestamp, **counts)

    async def delete(
        self, view: CollectionView, request: milvus_pb2.DeleteRequest, dialect: str = validation.MILVUS
    ) -> milvus_pb2.MutationResult:
        """Delete by keys, or by an expression resolved to keys per shard first (as Milvus 2.3.5's proxy does).

        `delete_cnt` counts the keys named (duplicates too) or the rows matched; the deleted keys
        come back where the backend in use returns them (milvus-lite), not on Milvus 2.3.5.
        """
        keys = validation.validate_delete(view, request, dialect)
        if keys is not None and view.sharded_by_partition_key:  # a key's shard is not known: every shard
            by_shard: dict[int, list[Any]] = {shard: list(keys) for shard in range(view.shards_num)}
            named = keys  # counted once
        elif keys is not None:
            by_shard = {}
            for shard, rows in split_rows_by_shard(keys, view.shards_num).items():
                by_shard[shard] = [keys[i] for i in rows]
            named = keys
        elif dialect == validation.MILVUS and not request.expr.strip():
            if view.message.loaded:  # 2.3.5 queries for the rows, and refuses an empty expression
                raise errors.empty_delete_expression()
            return milvus_pb2.MutationResult(status=common_pb2.Status(), timestamp=await self.timestamp())
        else:
            by_shard = await self._keys_matching(view, request, dialect)
            named = [k for shard in sorted(by_shard) for k in by_shard[shard]]
            validation.check_delete_partition(view, request, named, dialect)
        parts = delete_parts(view, request, by_shard)
        if parts:
            timestamp = (await self.log.append(view, "Delete", dict(parts))).timestamp
        else:
            timestamp = await self.timestamp()
        out = milvus_pb2.MutationResult(status=common_pb2.Status(), delete_cnt=len(named), timestamp=timestamp)
        if dialect == validation.LITE and named:
            out.IDs.CopyFrom(ids_message(view.pk_field, named))
        return out

    async def _keys_matching(
        self, view: CollectionView, request: milvus_pb2.DeleteRequest, dialect: str
    ) -> dict[int, list[Any]]:
        partitions = [request.partition_name] if request.partition_name else []
        try:
            result: dict[int, list[Any]] = await self.keys_matching(view, request.expr, partitions)
        except MilvusError as exc:
            if dialect == validation.MILVUS and exc.reason.startswith("cannot parse expression"):
                # 2.3.5's delete parses the expression itself, and words a failure so
                raise errors.expr_plan_failed(request.expr) from None
            raise
        return result
