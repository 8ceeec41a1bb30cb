"""Undecodable request bytes get INTERNAL with Milvus 2.3.5's words, not gRPC Python's UNKNOWN."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from mishards.router.wire import REQUEST_BYTES, UNMARSHAL_ERROR, UndecodableInterceptor


class Servicer(milvus_pb2_grpc.MilvusServiceServicer):
    async def Connect(self, request: Any, context: Any) -> milvus_pb2.ConnectResponse:
        # the size as received, recorded while decoding, when the interceptor is in front
        size = REQUEST_BYTES.get()
        assert size is None or size == request.ByteSize()
        return milvus_pb2.ConnectResponse(identifier=len(request.client_info.host) if size is None else size)


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
    size = str(len(milvus_pb2.ConnectRequest(client_info={"host": "abc"}).SerializeToString()))
    assert asyncio.run(answers([UndecodableInterceptor()])) == [bad, bad, bad, (grpc.StatusCode.OK, size)]


def test_without_the_interceptor_grpc_python_would_answer_unknown() -> None:
    out = asyncio.run(answers([]))
    assert out[0][0] == grpc.StatusCode.UNKNOWN
    assert out[-1] == (grpc.StatusCode.OK, "3")
