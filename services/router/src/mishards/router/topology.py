"""Where each shard's copies live and which one serves a request (copy choice)."""

from __future__ import annotations

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.common.membership import MembershipWatcher
from mishards.v1 import discovery_pb2, meta_pb2


class Topology:
    """Maps shard placements (instance identities) to live addresses."""

    def __init__(self, membership: MembershipWatcher) -> None:
        self.membership = membership

    def primary_address(self, shard: meta_pb2.ShardPlacement, collection: str) -> str:
        """The address of the shard's primary; a clear Milvus error when it is not serving."""
        inst = self.membership.by_identity().get(shard.primary)
        if inst is None or inst.health == discovery_pb2.DOWN:
            why = f": {inst.reason}" if inst is not None and inst.reason else ""
            raise MilvusError(
                errors.SERVICE_UNAVAILABLE,
                f"mishards: shard {shard.index} of collection {collection} is unavailable "
                f"(writable instance {shard.primary} is down{why})",
            )
        return inst.address

    def choose_copy(self, shard: meta_pb2.ShardPlacement, collection: str) -> str:
        """The copy that serves a read of this shard (the primary until replicas exist)."""
        return self.primary_address(shard, collection)
