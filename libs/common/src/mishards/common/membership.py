"""A client-side view of the discovery service's membership, kept current by its Watch stream."""

from __future__ import annotations

import asyncio
import logging

import grpc

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.common.security import InternalSecurity
from mishards.common.server import internal_channel
from mishards.v1 import discovery_pb2, discovery_pb2_grpc

log = logging.getLogger(__name__)


class MembershipWatcher:
    """Follows discovery's WatchInstances; reconnects with backoff when the stream breaks.

    While discovery is unreachable the last known membership is kept (never emptied).
    """

    def __init__(self, address: str, security: InternalSecurity | None = None) -> None:
        self.address = address
        self.security = security or InternalSecurity()
        self.membership = discovery_pb2.Membership()
        self._index: dict[str, discovery_pb2.Instance] = {}
        self._index_of: discovery_pb2.Membership | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._channel: grpc.aio.Channel | None = None

    async def start(self, wait_first: float | None = 30.0) -> None:
        """Start following; with `wait_first`, wait until the first snapshot arrived."""
        self._task = asyncio.create_task(self._run(), name="membership-watch")
        if wait_first:
            await self.wait_version(1, wait_first)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._channel is not None:
            await self._channel.close()

    async def wait_version(self, version: int, timeout: float) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.membership.version >= version), timeout)

    async def wait_changed(self, seen_version: int, timeout: float) -> None:
        """Wait until the membership's version is not `seen_version`, at most `timeout` seconds."""
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.membership.version != seen_version), timeout)
        except TimeoutError:
            pass

    def instances(self, role: int | None = None, healthy_only: bool = True) -> list[discovery_pb2.Instance]:
        out = []
        for inst in self.membership.instances:
            if role is not None and inst.role != role:
                continue
            if healthy_only and inst.health != discovery_pb2.HEALTHY:
                continue
            out.append(inst)
        return out

    def by_identity(self) -> dict[str, discovery_pb2.Instance]:
        """Instances by identity (built once per membership snapshot: the read path asks per shard)."""
        snapshot = self.membership
        if self._index_of is not snapshot:
            self._index = {inst.identity: inst for inst in snapshot.instances}
            self._index_of = snapshot
        return self._index

    def address_of(self, identity: str) -> str:
        """The address of the instance `identity`; a Milvus "unavailable" error when it is not a member."""
        inst = self.by_identity().get(identity)
        if inst is None:
            raise MilvusError(errors.SERVICE_UNAVAILABLE, f"mishards: instance {identity} is not in the membership")
        return inst.address

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                self._channel = internal_channel(self.address, self.security)
                stub = discovery_pb2_grpc.DiscoveryStub(self._channel)
                async for snapshot in stub.WatchInstances(discovery_pb2.WatchInstancesRequest()):
                    delay = 0.2
                    async with self._changed:
                        self.membership = snapshot
                        self._changed.notify_all()
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.warning("discovery watch at %s broke: %s", self.address, exc.code().name)
            except Exception:
                log.exception("discovery watch failed")
            if self._channel is not None:
                await self._channel.close()
                self._channel = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
