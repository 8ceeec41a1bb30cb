"""Long-lived asyncio channels and stubs to Milvus instances, one per address."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import message as pb_message
from pymilvus.grpc_gen import milvus_pb2_grpc

from mishards.common.security import backend_metadata
from mishards.common.server import backend_channel

MILVUS_SERVICE = "/milvus.proto.milvus.MilvusService/"


def _serialize(request: pb_message.Message) -> bytes:
    return request.SerializeToString()


class BackendPool:
    """MilvusService stubs by address; channels are created once and reused."""

    def __init__(self, token: str = "", tls_ca_file: str = "") -> None:
        self._token = token
        self._tls_ca_file = tls_ca_file
        self._metadata = backend_metadata(token)  # the same for every call: encoded once
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, milvus_pb2_grpc.MilvusServiceStub] = {}
        self._raw: dict[tuple[str, str], grpc.aio.UnaryUnaryMultiCallable[Any, bytes]] = {}

    def stub(self, address: str) -> milvus_pb2_grpc.MilvusServiceStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = backend_channel(address, self._tls_ca_file)
            self._channels[address] = channel
            stub = milvus_pb2_grpc.MilvusServiceStub(channel)
            self._stubs[address] = stub
        return stub

    def raw(self, address: str, method: str) -> grpc.aio.UnaryUnaryMultiCallable[Any, bytes]:
        """A MilvusService method on the address's channel whose answer is left undecoded (bytes)."""
        call = self._raw.get((address, method))
        if call is None:
            self.stub(address)  # the channel
            call = self._channels[address].unary_unary(
                MILVUS_SERVICE + method,
                request_serializer=_serialize,
                response_deserializer=None,
                _registered_method=True,
            )
            self._raw[(address, method)] = call
        return call

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
        self._raw.clear()
