"""The Milvus version of every instance, asked once it serves and recorded in the catalog.

Routers word validation errors as the backend in use words them (`docs/compatibility.md`),
so they must know which Milvus each shard's primary runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc
from pymilvus.grpc_gen import milvus_pb2

from mishards.common import errors
from mishards.common.backends import BackendPool
from mishards.common.membership import MembershipWatcher
from mishards.meta.store import Store
from mishards.v1 import discovery_pb2

log = logging.getLogger(__name__)

ASK_TIMEOUT = 10.0  # seconds an instance has to answer GetVersion
RECHECK_SECONDS = 30.0  # membership unchanged: look again this often (a failed ask is retried then)


class InstanceVersions:
    """Records `GetVersion` of each healthy instance: when first seen, and when it comes back after a loss."""

    def __init__(
        self,
        store: Store,
        membership: MembershipWatcher,
        backends: BackendPool,
        on_change: Callable[[int], Awaitable[None]],
    ) -> None:
        self.store = store
        self.membership = membership
        self.backends = backends
        self.on_change = on_change
        self.known: dict[str, str] = {}
        self._healthy: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.known = self.store.instance_versions()
        self._task = asyncio.create_task(self._loop(), name="instance-versions")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            seen = self.membership.membership.version
            try:
                await self.record_new()
            except asyncio.CancelledError:
                raise
            except Exception:  # never ends the loop: the next change or recheck tries again
                log.exception("recording instance versions failed")
            await self.membership.wait_changed(seen, RECHECK_SECONDS)

    async def record_new(self) -> None:
        """Ask every healthy instance that is new, or healthy again, for its version."""
        healthy = {i.identity: i for i in self.membership.instances() if i.health == discovery_pb2.HEALTHY}
        returned = [i for identity, i in healthy.items() if identity not in self._healthy or identity not in self.known]
        self._healthy = set(healthy)
        for inst in returned:
            version = await self._ask(inst.address)
            if version is None:
                self._healthy.discard(inst.identity)  # asked again at the next look
                continue
            if self.known.get(inst.identity) != version:
                log.info("instance %s runs Milvus %s", inst.identity, version)
                self.known[inst.identity] = version
                await self.on_change(await asyncio.to_thread(self.store.set_instance_version, inst.identity, version))

    async def _ask(self, address: str) -> str | None:
        try:
            answer = await self.backends.stub(address).GetVersion(
                milvus_pb2.GetVersionRequest(), timeout=ASK_TIMEOUT, metadata=self.backends.metadata()
            )
        except grpc.aio.AioRpcError as exc:
            log.info("instance %s gave no version: %s", address, exc.code().name)
            return None
        if errors.is_error(answer.status) or not answer.version:
            return None
        return str(answer.version)
