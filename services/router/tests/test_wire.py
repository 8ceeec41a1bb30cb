"""Undecodable request bytes get INTERNAL with Milvus 2.3.5's words, not gRPC Python's UNKNOWN."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from mishards.router.wire import UNMARSHAL_ERROR, UndecodableInterceptor


class Servicer(milvus_pb2_grpc.MilvusServiceServicer):
    async def Connect(self, request: Any, context: Any) -> milvus_pb2.ConnectResponse:
        return milvus_pb2.ConnectResponse(identifier=len(request.client_info.host))


async def answers(interceptors: list[Any]) -> list[tuple[grpc.StatusCode, str]]:
    server = grpc.aio.server(interceptors=interceptors)
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    out = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            connect = channel.unary_unary("/milvus.proto.milvus.MilvusService/Connect")
            good = milvus_pb2.ConnectRequest(client_info={"host": "abc"}).SerializeToString()
            for raw in (b"\x00", b"\xff\xff\xff", b"\x0a\x05ab", good):
                try:
                    answer = await connect(raw, timeout=5)
                    out.append((grpc.StatusCode.OK, str(milvus_pb2.ConnectResponse.FromString(answer).identifier)))
                except grpc.aio.AioRpcError as exc:
                    out.append((exc.code(), exc.details() or ""))
    finally:
        await server.stop(None)
    return out


def test_undecodable_bytes_get_internal_and_good_ones_are_served() -> None:
    bad = (grpc.StatusCode.INTERNAL, UNMARSHAL_ERROR)
    assert asyncio.run(answers([UndecodableInterceptor()])) == [bad, bad, bad, (grpc.StatusCode.OK, "3")]


def test_without_the_interceptor_grpc_python_would_answer_unknown() -> None:
    assert asyncio.run(answers([]))[0][0] == grpc.StatusCode.UNKNOWN
