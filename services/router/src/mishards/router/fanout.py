"""One concurrent call per shard copy: the single place the router talks to Milvus instances."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from google.protobuf import message as pb_message
from pymilvus.grpc_gen import common_pb2

from mishards.common import errors
from mishards.common.backends import BackendPool
from mishards.common.errors import MilvusError
from mishards.router.catalog import CollectionView
from mishards.v1 import meta_pb2


def rename_status(st: common_pb2.Status, view: CollectionView) -> common_pb2.Status:
    """A backend status with physical collection names replaced by the client's name."""
    if not st.reason:
        return st
    out = common_pb2.Status()
    out.CopyFrom(st)
    for physical in view.physical_names():
        out.reason = out.reason.replace(physical, view.name)
    return out


def _status(response: Any) -> common_pb2.Status:
    return response if isinstance(response, common_pb2.Status) else response.status


async def call_shards(
    backends: BackendPool,
    view: CollectionView,
    method: str,
    calls: Sequence[tuple[meta_pb2.ShardPlacement, str, pb_message.Message]],
    timeout: float,
) -> list[Any]:
    """Send each (shard, address, request) at once; responses in the same order.

    Raises MilvusError: SERVICE_UNAVAILABLE naming the shard when an instance does not
    answer, else the first backend error status (with the client's collection name).
    """

    async def one(shard: meta_pb2.ShardPlacement, address: str, request: pb_message.Message) -> Any:
        stub = backends.stub(address)
        try:
            return await getattr(stub, method)(request, timeout=timeout, metadata=backends.metadata())
        except Exception as exc:
            raise MilvusError(
                errors.SERVICE_UNAVAILABLE,
                f"mishards: shard {shard.index} of collection {view.name} failed on {address}: {exc}",
            ) from exc

    responses = await asyncio.gather(*(one(s, a, r) for s, a, r in calls))
    for response in responses:
        st = _status(response)
        if errors.is_error(st):
            raise MilvusError.from_status(rename_status(st, view))
    return list(responses)
