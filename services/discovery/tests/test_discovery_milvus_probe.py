"""MilvusHealthChecker against an in-process fake MilvusService (no Milvus needed)."""

from __future__ import annotations

import asyncio
import socket

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc

from mishards.discovery.prober import MilvusHealthChecker


class FakeMilvus(milvus_pb2_grpc.MilvusServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.answer = milvus_pb2.CheckHealthResponse(isHealthy=True)

    async def CheckHealth(self, request: object, context: object) -> milvus_pb2.CheckHealthResponse:
        return self.answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_health_answers_and_channels() -> None:
    async def run() -> None:
        fake = FakeMilvus()
        server = grpc.aio.server()
        milvus_pb2_grpc.add_MilvusServiceServicer_to_server(fake, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        address = f"127.0.0.1:{port}"
        checker = MilvusHealthChecker()
        try:
            assert (await checker.check(address, 2)).healthy

            fake.answer = milvus_pb2.CheckHealthResponse(isHealthy=False, reasons=["querynode lost"])
            result = await checker.check(address, 2)
            assert not result.healthy and "querynode lost" in result.reason

            fake.answer = milvus_pb2.CheckHealthResponse(
                status=common_pb2.Status(code=1, reason="not ready"), isHealthy=True
            )
            result = await checker.check(address, 2)
            assert not result.healthy and "not ready" in result.reason

            nobody = f"127.0.0.1:{free_port()}"
            result = await checker.check(nobody, 0.5)
            assert not result.healthy
            assert result.reason.startswith(("UNAVAILABLE", "DEADLINE_EXCEEDED"))

            assert set(checker._channels) == {address, nobody}
            await checker.retain({address})  # vanished instances lose their channel
            assert set(checker._channels) == {address}
            await checker.close()
            assert checker._channels == {}
        finally:
            await checker.close()
            await server.stop(0)

    asyncio.run(run())
