"""Writes: split rows by shard, hand them to the mutation log (validation.py checks them first)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import message as pb_message
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common.errors import MilvusError
from mishards.common.hashing import shards_of
from mishards.router import columns
from mishards.router.catalog import CollectionView
from mishards.router.fanout import rename_status
from mishards.router.topology import Topology
from mishards.v1 import meta_pb2, meta_pb2_grpc

# Log entries stay below this size (MySQL's max_allowed_packet is 16 MB by default).
ENTRY_BYTES = 8 << 20


@dataclass
class AppliedWrite:
    """A write the log holds and every shard's primary has applied."""

    timestamp: int  # Mishards hybrid timestamp of the write
    responses: dict[int, list[Any]]  # shard -> the primary's MutationResults, in entry order


class MutationLog(abc.ABC):
    """Where a write goes once split: entries per shard, applied in log order on every copy."""

    @abc.abstractmethod
    async def apply(self, view: CollectionView, method: str, parts: dict[int, pb_message.Message]) -> AppliedWrite:
        """Log `parts` (shard index -> physical request) as one write and wait for the primaries.

        Raises MilvusError naming the shard when its writable instance is down (nothing is
        logged then), or with the backend's status when a primary rejects its part.
        """


class MetaMutationLog(MutationLog):
    """Appends each write to meta's durable log in one call; meta's appliers apply it in order."""

    def __init__(self, meta: meta_pb2_grpc.MetaStub, topology: Topology, timeout: float) -> None:
        self.meta = meta
        self.topology = topology
        self.timeout = timeout

    async def apply(self, view: CollectionView, method: str, parts: dict[int, pb_message.Message]) -> AppliedWrite:
        shards = view.shards
        for k in parts:  # a shard that is down fails the write before anything is logged
            self.topology.primary_address(shards[k], view.name)
        request = meta_pb2.AppendMutationsRequest(collection_id=view.id)
        for k in sorted(parts):
            for chunk in split_entry(parts[k], method):
                request.entries.add(shard=k, method=method, request=chunk.SerializeToString())
        answer = await self.meta.AppendMutations(request, timeout=self.timeout + 30)
        if answer.status:
            st = common_pb2.Status.FromString(answer.status)
            raise MilvusError.from_status(rename_status(st, view))
        responses = {
            result.shard: [milvus_pb2.MutationResult.FromString(r) for r in result.responses]
            for result in answer.shards
        }
        return AppliedWrite(timestamp=answer.timestamp, responses=responses)


def split_entry(part: pb_message.Message, method: str) -> list[pb_message.Message]:
    """One shard's part as log entries of at most ENTRY_BYTES each (rows kept in order)."""
    size = part.ByteSize()
    if method == "Delete" or size <= ENTRY_BYTES:
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
