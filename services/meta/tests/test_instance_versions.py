"""Meta records each instance's Milvus version when it first serves, and again after a loss."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from mishards.common.membership import MembershipWatcher
from mishards.meta.store import Store
from mishards.meta.versions import InstanceVersions
from mishards.v1 import discovery_pb2


class Backends:
    """Answers GetVersion per address; an address missing from `versions` does not answer."""

    def __init__(self, versions: dict[str, str]) -> None:
        self.versions = versions
        self.asked: list[str] = []

    def stub(self, address: str) -> Any:
        backends = self

        class Stub:
            async def GetVersion(self, request: Any, **_: Any) -> milvus_pb2.GetVersionResponse:
                backends.asked.append(address)
                if address not in backends.versions:
                    raise grpc.aio.AioRpcError(
                        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="down"
                    )
                return milvus_pb2.GetVersionResponse(status=common_pb2.Status(), version=backends.versions[address])

        return Stub()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


def members(version: int, *instances: tuple[str, int]) -> discovery_pb2.Membership:
    m = discovery_pb2.Membership(version=version)
    for identity, health in instances:
        m.instances.add(identity=identity, address=identity, role=discovery_pb2.WRITABLE, health=health)
    return m


def test_versions_are_recorded_once_and_asked_again_after_a_loss(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(f"sqlite:///{tmp_path}/meta.db")
        store.migrate()
        published: list[int] = []

        async def publish(version: int) -> None:
            published.append(version)

        watcher = MembershipWatcher("127.0.0.1:1")
        backends = Backends({"a:1": "v2.3.5-lite"})
        versions = InstanceVersions(store, watcher, backends, publish)  # type: ignore[arg-type]
        versions.known = store.instance_versions()
        watcher.membership = members(1, ("a:1", discovery_pb2.HEALTHY), ("b:1", discovery_pb2.HEALTHY))
        await versions.record_new()
        assert store.instance_versions() == {"a:1": "v2.3.5-lite"}
        assert published and published[-1] == store.catalog_version()
        # b did not answer: asked again at the next look; a is not asked twice
        backends.versions["b:1"] = "milvus_lite-3.2.2"
        await versions.record_new()
        assert store.instance_versions() == {"a:1": "v2.3.5-lite", "b:1": "milvus_lite-3.2.2"}
        assert backends.asked.count("a:1") == 1
        # a comes back after a loss, upgraded: asked again
        watcher.membership = members(2, ("a:1", discovery_pb2.DOWN), ("b:1", discovery_pb2.HEALTHY))
        await versions.record_new()
        backends.versions["a:1"] = "v2.3.6"
        watcher.membership = members(3, ("a:1", discovery_pb2.HEALTHY), ("b:1", discovery_pb2.HEALTHY))
        await versions.record_new()
        assert store.instance_versions()["a:1"] == "v2.3.6"
        assert backends.asked.count("b:1") == 2

    asyncio.run(run())
