"""Writes: validate against the cached schema, split rows by shard, hand them to the mutation log."""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import message as pb_message
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.common.hashing import shards_of
from mishards.router import columns
from mishards.router.catalog import CollectionView
from mishards.router.fanout import rename_status
from mishards.router.topology import Topology
from mishards.v1 import meta_pb2, meta_pb2_grpc

VECTOR_TYPES = {
    schema_pb2.FloatVector,
    schema_pb2.BinaryVector,
    schema_pb2.Float16Vector,
    schema_pb2.BFloat16Vector,
}


# Log entries stay below this size (MySQL's max_allowed_packet is 16 MB by default).
ENTRY_BYTES = 8 << 20


@dataclass
class LoggedWrite:
    """A write the log holds durably (and, in applied mode, every shard's primary has applied)."""

    timestamp: int  # Mishards hybrid timestamp of the write
    positions: dict[int, int]  # shard -> log position of its last entry


class MutationLog(abc.ABC):
    """Where a write goes once split: entries per shard, applied in log order on every copy."""

    @abc.abstractmethod
    async def append(
        self, view: CollectionView, method: str, parts: dict[int, list[pb_message.Message]]
    ) -> LoggedWrite:
        """Log `parts` (shard index -> its physical requests, in order) as one write.

        Raises MilvusError: rate limit when a shard's backlog is full, and in applied mode
        naming the shard when its writable instance is down (nothing logged then) or with the
        primary's status when it rejected its part.
        """


class MetaMutationLog(MutationLog):
    """Appends each write to meta's durable log in one call; meta's appliers apply it in order."""

    def __init__(
        self, meta: meta_pb2_grpc.MetaStub, topology: Topology, timeout: float, wait_applied: bool = False
    ) -> None:
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
                request.entries.add(shard=k, method=method, request=part.SerializeToString())
        answer = await self.meta.AppendMutations(request, timeout=self.timeout + 30, wait_for_ready=True)
        if answer.status:
            st = common_pb2.Status.FromString(answer.status)
            raise MilvusError.from_status(rename_status(st, view))
        return LoggedWrite(timestamp=answer.timestamp, positions={r.shard: r.seq for r in answer.shards})


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


def primary_keys(fields_data: Sequence[schema_pb2.FieldData], pk: schema_pb2.FieldSchema) -> list[Any] | np.ndarray:
    for fd in fields_data:
        if fd.field_name == pk.name:
            if pk.data_type == schema_pb2.Int64:
                return np.asarray(fd.scalars.long_data.data, dtype=np.int64)
            return list(fd.scalars.string_data.data)
    raise MilvusError(errors.PARAMETER_INVALID, f"primary key field {pk.name} is missing from the data")


def split_rows_by_shard(keys: Sequence[Any] | np.ndarray, shards_num: int) -> dict[int, np.ndarray]:
    """Row indices of each shard, in the client's row order within a shard."""
    shard_of_row = shards_of(keys, shards_num)
    order = np.argsort(shard_of_row, kind="stable")
    bounds = np.searchsorted(shard_of_row[order], np.arange(shards_num + 1))
    return {k: order[bounds[k] : bounds[k + 1]] for k in range(shards_num) if bounds[k + 1] > bounds[k]}


def _dim(field: schema_pb2.FieldSchema) -> int:
    for kv in field.type_params:
        if kv.key == "dim":
            return int(kv.value)
    return 0


def _vector_rows(fd: schema_pb2.FieldData, dim: int) -> int:
    """Rows of a vector column measured with the schema's dim, failing as Milvus 2.3 fails."""
    vectors = fd.vectors
    kind = vectors.WhichOneof("data")
    if kind == "float_vector":
        length = len(vectors.float_vector.data)
        if dim <= 0 or length % dim:
            raise MilvusError(errors.UNEXPECTED, f"the length({length}) of float data should divide the dim({dim})")
        return length // dim
    if kind == "binary_vector":
        bits = 8 * len(vectors.binary_vector)
        if dim <= 0 or bits % dim:
            raise MilvusError(errors.UNEXPECTED, f"the num({bits}) of all bits should divide the dim({dim})")
        return bits // dim
    if kind in ("float16_vector", "bfloat16_vector"):
        length = len(getattr(vectors, kind)) // 2
        if dim <= 0 or length % dim:
            raise MilvusError(errors.UNEXPECTED, f"the length({length}) of {kind} data should divide the dim({dim})")
        return length // dim
    return columns.num_rows([fd])


def validate_insert(
    view: CollectionView,
    fields_data: Sequence[schema_pb2.FieldData],
    num_rows: int,
    partition: str = "",
) -> None:
    """Reject what a single Milvus would reject before any backend sees a part of it."""
    given = {fd.field_name: fd for fd in fields_data}
    if partition and partition not in view.message.partitions:
        raise MilvusError(errors.PARTITION_NOT_FOUND, f"partition not found[partition={partition}]")
    for fd in fields_data:
        field = view.fields_by_name.get(fd.field_name)
        if fd.is_dynamic or fd.field_name == "$meta":
            if not view.schema.enable_dynamic_field:
                raise MilvusError(errors.PARAMETER_INVALID, "dynamic field is not enabled in the collection")
            rows = columns.num_rows([fd])
        elif field is None:
            raise MilvusError(
                errors.PARAMETER_INVALID,
                f"Attempt to insert an unexpected field `{fd.field_name}` to collection without enabling dynamic field",
            )
        elif field.data_type in VECTOR_TYPES:
            rows = _vector_rows(fd, _dim(field))
        else:
            rows = columns.num_rows([fd])
        if rows != num_rows:
            raise MilvusError(
                errors.PARAMETER_INVALID,
                f"the num_rows ({rows}) of field ({fd.field_name}) is not equal to passed num_rows ({num_rows})",
            )
    # A primary key column on an auto_id collection fails the count too (insert and upsert).
    _check_field_count_and_missing_fields(view, given)


# What Milvus 2.3.5 says of a missing column whose type it checks first (its validator's
# "array type mismatch"); other missing scalar columns fail later, with a garbled message.
_MISSING = {
    schema_pb2.VarChar: ("varchar field", "need string array"),
    schema_pb2.JSON: ("json field", "need json array"),
    schema_pb2.FloatVector: ("float vector field", "need float vector"),
}


def _check_field_count_and_missing_fields(view: CollectionView, given: dict[str, schema_pb2.FieldData]) -> None:
    """Fail a request that lacks a column as Milvus 2.3.5 does (pymilvus never sends one).

    Milvus adds an empty column for each missing field but the primary key, then requires one
    column per field that is not auto_id; then its validator meets the empty columns in schema
    order, varchar, JSON and float vector ones first; other columns fail last, with a message of
    Go's that formats a nil value. (Observed on 2.3.5 for the types in the router's test_writes.py.)
    """
    fields = [f for f in view.schema.fields if not f.is_dynamic]
    dynamic = view.schema.enable_dynamic_field  # Milvus counts its $meta field like any other
    given_dynamic = any(fd.is_dynamic or fd.field_name == "$meta" for fd in given.values())
    needed = sum(1 for f in fields if not f.autoID) + int(dynamic)
    columns_after = len(given) + sum(1 for f in fields if f.name not in given and not f.is_primary_key)
    columns_after += int(dynamic and not given_dynamic)
    if columns_after != needed:
        raise MilvusError(
            errors.PARAMETER_INVALID,
            f"the number of fields is less than needed: invalid parameter[expected={needed}][actual={columns_after}]",
        )
    missing = [
        f
        for f in fields
        if f.name not in given and not f.is_primary_key and not f.nullable and not f.HasField("default_value")
    ]
    for field in missing:
        if field.data_type in _MISSING:
            kind, expected = _MISSING[field.data_type]
            raise MilvusError(
                errors.PARAMETER_INVALID,
                f"{kind} '{field.name}' is illegal, array type mismatch: "
                f"invalid parameter[expected={expected}][actual=got nil]",
            )
    if missing:
        raise MilvusError(errors.UNEXPECTED, "%!s(<nil>) is not supported now")


def int64_field(name: str, field_id: int, values: np.ndarray) -> schema_pb2.FieldData:
    fd = schema_pb2.FieldData(type=schema_pb2.Int64, field_name=name, field_id=field_id)
    fd.scalars.long_data.data.extend(values.tolist())
    return fd


def ids_message(pk: schema_pb2.FieldSchema, keys: Sequence[Any] | np.ndarray) -> schema_pb2.IDs:
    ids = schema_pb2.IDs()
    if pk.data_type == schema_pb2.Int64:
        ids.int_id.data.extend(np.asarray(keys).tolist())
    else:
        ids.str_id.data.extend(list(keys))
    return ids


# `pk in [..]` and `pk == x`, the shapes pymilvus's delete(ids=...) sends.
_IN_EXPR = re.compile(r"^\s*(\w+)\s+in\s+\[(.*)\]\s*$", re.S)
_EQ_EXPR = re.compile(r"^\s*(\w+)\s*==\s*(.+?)\s*$", re.S)


def keys_of_delete_expr(expr: str, pk: schema_pb2.FieldSchema) -> list[Any] | None:
    """The primary keys a delete expression names, when it is a plain pk in/== expression."""
    match = _IN_EXPR.match(expr) or _EQ_EXPR.match(expr)
    if match is None or match.group(1) != pk.name:
        return None
    body = match.group(2)
    if pk.data_type == schema_pb2.Int64:
        try:
            return [int(tok) for tok in body.split(",") if tok.strip()]
        except ValueError:
            return None
    items = re.findall(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'', body)
    if not items:
        return None
    stripped = re.sub(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'|[\s,]', "", body)
    if stripped:
        return None
    return [a or b for a, b in items]


def delete_expr_for(pk: schema_pb2.FieldSchema, keys: Sequence[Any]) -> str:
    if pk.data_type == schema_pb2.Int64:
        return f"{pk.name} in [{','.join(str(int(k)) for k in keys)}]"
    quoted = ",".join('"' + str(k).replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys)
    return f"{pk.name} in [{quoted}]"


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
                expr=delete_expr_for(view.pk_field, chunk),
            )
            for chunk in chunks
        ]
    return out


class Writer:
    """Inserts, upserts and deletes of logical collections: split by shard, logged as one write, answered.

    The client's MutationResult is built here from what the router knows (keys, counts, the
    write's Mishards timestamp): with WRITE_ACK=logged no backend has seen the write yet.
    """

    def __init__(self, mutation_log: MutationLog, ids: Any, keys_matching: Any, timestamp: Any) -> None:
        self.log = mutation_log
        self.ids = ids  # IdAllocator: int64 keys for auto_id collections
        self.keys_matching = keys_matching  # (view, expr, partitions) -> {shard: keys}: a Strong query
        self.timestamp = timestamp  # () -> a fresh Mishards timestamp

    async def write_rows(
        self, view: CollectionView, request: milvus_pb2.InsertRequest | milvus_pb2.UpsertRequest, method: str
    ) -> milvus_pb2.MutationResult:
        fields_data = list(request.fields_data)
        num_rows = request.num_rows or columns.num_rows(fields_data)
        validate_insert(view, fields_data, num_rows, request.partition_name)
        upsert = method == "Upsert"
        if view.auto_id and not upsert:
            keys: Any = await self.ids.allocate(num_rows)
            fields_data.append(int64_field(view.pk_field.name, view.pk_field.fieldID, keys))
        else:
            keys = primary_keys(fields_data, view.pk_field)
        parts: dict[int, list[pb_message.Message]] = {}
        for shard, rows in split_rows_by_shard(keys, view.shards_num).items():
            physical = view.shards[shard].physical_name
            if len(rows) == num_rows:  # every row to one shard (always so with one shard): no copy of the columns
                part: Any = as_physical(request, physical, fields_data[len(request.fields_data) :])
                part.num_rows = num_rows
            else:
                part = type(request)(
                    collection_name=physical, partition_name=request.partition_name, num_rows=len(rows)
                )
                part.fields_data.extend(columns.take_rows(fields_data, rows))
            parts[shard] = split_entry(part, method)
        logged = await self.log.append(view, method, parts)
        counts = {"upsert": num_rows} if upsert else {"insert": num_rows}
        return mutation_result(view.pk_field, keys, logged.timestamp, **counts)

    async def delete(
        self, view: CollectionView, request: milvus_pb2.DeleteRequest, returns_ids: bool
    ) -> milvus_pb2.MutationResult:
        """Delete by keys, or by an expression resolved to keys per shard first (as Milvus 2.3.5's proxy does).

        `delete_cnt` counts the keys named (duplicates too) or the rows matched; `returns_ids`:
        the backend in use answers with the deleted keys (milvus-lite), Milvus 2.3.5 does not.
        """
        keys = keys_of_delete_expr(request.expr, view.pk_field)
        if keys is not None:
            by_shard: dict[int, list[Any]] = {}
            for shard, rows in split_rows_by_shard(keys, view.shards_num).items():
                by_shard[shard] = [keys[i] for i in rows]
            named = keys
        else:
            by_shard = await self.keys_matching(
                view, request.expr, [request.partition_name] if request.partition_name else []
            )
            named = [k for shard in sorted(by_shard) for k in by_shard[shard]]
        parts = delete_parts(view, request, by_shard)
        if parts:
            timestamp = (await self.log.append(view, "Delete", dict(parts))).timestamp
        else:
            timestamp = await self.timestamp()
        out = milvus_pb2.MutationResult(status=common_pb2.Status(), delete_cnt=len(named), timestamp=timestamp)
        if returns_ids and named:
            out.IDs.CopyFrom(ids_message(view.pk_field, named))
        return out
