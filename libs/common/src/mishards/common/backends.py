"""Long-lived asyncio channels and stubs to Milvus instances, one per address."""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import milvus_pb2_grpc

from mishards.common.security import backend_metadata
from mishards.common.server import backend_channel


class BackendPool:
    """MilvusService stubs by address; channels are created once and reused."""

    def __init__(self, token: str = "", tls_ca_file: str = "") -> None:
        self._token = token
        self._tls_ca_file = tls_ca_file
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, milvus_pb2_grpc.MilvusServiceStub] = {}

    def stub(self, address: str) -> milvus_pb2_grpc.MilvusServiceStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = backend_channel(address, self._tls_ca_file)
            self._channels[address] = channel
            stub = milvus_pb2_grpc.MilvusServiceStub(channel)
            self._stubs[address] = stub
        return stub

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return backend_metadata(self._token)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
