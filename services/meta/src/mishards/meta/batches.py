"""Consecutive log entries applied to a copy as one backend call.

Milvus's cost per write call is mostly fixed (task scheduling, timestamps, channels), so a
copy that is behind applies a run of inserts, or of deletes, as one. Insert columns are
concatenated with protobuf's own merge (repeated fields append), except byte-packed
vectors, whose bytes are joined by hand, and a sparse column's dim, which is the largest.
Deletes in the log always name their keys (`pk in [...]`, written by the router), so a run
of them is one key list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from mishards.meta.store import LogEntry

MAX_ENTRIES = 64  # entries merged into one call at most
MAX_BYTES = 32 << 20  # payload bytes merged into one call at most (well under gRPC's 256 MB)
_BYTE_VECTORS = ("binary_vector", "float16_vector", "bfloat16_vector", "int8_vector")


def mergeable_run(entries: Sequence[LogEntry]) -> int:
    """How many entries from the first one can go as one call (at least 1).

    Live inserts merge with inserts, live deletes with deletes; upserts go alone (two of them
    may name the same key).
    """
    first = entries[0]
    if first.method not in ("Insert", "Delete") or first.aborted:
        return 1
    size = len(first.payload)
    count = 1
    for entry in entries[1:]:
        size += len(entry.payload)
        if entry.method != first.method or entry.aborted or count >= MAX_ENTRIES or size > MAX_BYTES:
            break
        count += 1
    return count


_KEY_LIST = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*) in \[(.*)\]$", re.S)


def merge_deletes(requests: Sequence[milvus_pb2.DeleteRequest]) -> milvus_pb2.DeleteRequest | None:
    """One delete of every key the requests name; None unless each is a key list of one field and partition."""
    first = requests[0]
    if len(requests) == 1:
        return first
    bodies = []
    field = None
    for request in requests:
        match = _KEY_LIST.match(request.expr)
        if (
            match is None
            or request.collection_name != first.collection_name
            or request.partition_name != first.partition_name
            or field not in (None, match.group(1))
        ):
            return None
        field = match.group(1)
        bodies.append(match.group(2))
    return milvus_pb2.DeleteRequest(
        collection_name=first.collection_name,
        partition_name=first.partition_name,
        expr=f"{field} in [{','.join(bodies)}]",
    )


def merge(method: str, requests: Sequence[Any]) -> Any:
    """The run as one request of `method` (Insert or Delete); None when it cannot go as one."""
    return merge_inserts(requests) if method == "Insert" else merge_deletes(requests)


def merge_inserts(requests: Sequence[milvus_pb2.InsertRequest]) -> milvus_pb2.InsertRequest | None:
    """One InsertRequest holding the rows of all, in order; None when they cannot merge.

    They merge when they name the same collection and partition and carry the same fields
    in the same order (the router builds every part of a collection alike), and hold no null
    value (a nullable column's payload may be padded or compact: parts of two clients may differ).
    """
    first = requests[0]
    if len(requests) == 1:
        return first
    names = [fd.field_name for fd in first.fields_data]
    for request in requests[1:]:
        if (
            request.collection_name != first.collection_name
            or request.partition_name != first.partition_name
            or [fd.field_name for fd in request.fields_data] != names
        ):
            return None
    if any(not all(fd.valid_data) for request in requests for fd in request.fields_data):
        return None
    out = milvus_pb2.InsertRequest()
    out.CopyFrom(first)
    for request in requests[1:]:
        for column, more in zip(out.fields_data, request.fields_data):
            _append_column(column, more)
        out.num_rows += request.num_rows
    return out


def _append_column(column: schema_pb2.FieldData, more: schema_pb2.FieldData) -> None:
    kind = more.WhichOneof("field")
    if kind == "vectors":
        attr = more.vectors.WhichOneof("data")
        if attr in _BYTE_VECTORS:
            setattr(column.vectors, attr, getattr(column.vectors, attr) + getattr(more.vectors, attr))
            column.valid_data.extend(more.valid_data)
            return
        if attr == "sparse_float_vector":
            dim = max(column.vectors.sparse_float_vector.dim, more.vectors.sparse_float_vector.dim)
            column.MergeFrom(more)
            column.vectors.sparse_float_vector.dim = dim
            return
    column.MergeFrom(more)  # repeated payloads and valid_data append; scalars (type, dim, name) are equal
