"""Where each shard's copies live and which one serves a request (copy choice)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.common.membership import MembershipWatcher
from mishards.router.strategies import ReadStrategy
from mishards.v1 import discovery_pb2, meta_pb2

SUSPECT_SECONDS = 5.0


@dataclass(frozen=True)
class Target:
    """One copy a shard's request may go to."""

    address: str
    role: str = "primary"  # or "replica"
    identity: str = ""  # the instance's discovery identity, which the read strategy accounts by


class Topology:
    """Maps shard placements (instance identities) to live addresses."""

    def __init__(self, membership: MembershipWatcher, strategy: ReadStrategy) -> None:
        self.membership = membership
        self.strategy = strategy
        self._suspect_until: dict[str, float] = {}

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

    def read_targets(self, shard: meta_pb2.ShardPlacement, collection: str, primary_only: bool) -> list[Target]:
        """The copies to try for a read of this shard, best first.

        Ready replicas on healthy instances come first, ordered by the read strategy, then
        the primary; `primary_only` (Strong and Session reads) uses the primary alone.
        Copies that just failed to answer go last until their quarantine ends.
        """
        members = self.membership.by_identity()
        targets: list[Target] = []
        if not primary_only and shard.replicas:
            healthy = [r for r in shard.replicas if r in members and members[r].health == discovery_pb2.HEALTHY]
            for identity in self.strategy.order(shard.physical_name, healthy):
                targets.append(Target(members[identity].address, "replica", identity))
        primary = members.get(shard.primary)
        if primary is not None and primary.health != discovery_pb2.DOWN:
            targets.append(Target(primary.address, "primary", shard.primary))
        if not targets:
            why = "is not in the membership" if primary is None else f"is down: {primary.reason or 'no answer'}"
            raise MilvusError(
                errors.SERVICE_UNAVAILABLE,
                f"mishards: shard {shard.index} of collection {collection} has no copy that can serve a read "
                f"(its primary {shard.primary} {why})",
            )
        if len(targets) == 1 or not self._suspect_until:  # nothing to reorder
            return targets
        now = time.monotonic()
        return sorted(targets, key=lambda t: self._suspect_until.get(t.address, 0.0) > now)

    # The strategy orders replicas only, so it counts the requests to replicas alone.
    def started(self, target: Target) -> None:
        """A request to `target` begins (the read strategy's outstanding-request accounting)."""
        if target.role == "replica":
            self.strategy.started(target.identity)

    def finished(self, target: Target) -> None:
        """A request to `target` ended, whatever its outcome."""
        if target.role == "replica":
            self.strategy.finished(target.identity)

    def suspect(self, address: str) -> None:
        """Take a copy that did not answer out of first choice for a few seconds."""
        self._suspect_until[address] = time.monotonic() + SUSPECT_SECONDS
