"""Meta's own RPCs answer a refusal as a gRPC status mapped from the MilvusError (one convention)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.meta.servicer import grpc_refusals


class Aborted(Exception):
    pass


class Context:
    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted


class Handlers:
    def __init__(self, error: MilvusError | None) -> None:
        self.error = error

    @grpc_refusals
    async def Rpc(self, request: Any, context: grpc.aio.ServicerContext) -> str:  # noqa: N802 (a gRPC method)
        if self.error is not None:
            raise self.error
        return f"done {request}"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (errors.COLLECTION_NOT_FOUND, grpc.StatusCode.NOT_FOUND),
        (errors.PARAMETER_INVALID, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.SERVICE_UNAVAILABLE, grpc.StatusCode.UNAVAILABLE),
        (errors.UNEXPECTED, grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_a_refusal_becomes_the_grpc_status_of_its_code_with_its_reason(code: int, status: grpc.StatusCode) -> None:
    context = Context()
    with pytest.raises(Aborted):
        asyncio.run(Handlers(MilvusError(code, "shard 3 has no replica")).Rpc("x", context))  # type: ignore[arg-type]
    assert context.aborted == (status, "shard 3 has no replica")


def test_an_answer_passes_through() -> None:
    context = Context()
    assert asyncio.run(Handlers(None).Rpc("x", context)) == "done x"  # type: ignore[arg-type]
    assert context.aborted is None


def test_every_unary_meta_rpc_refuses_through_grpc_refusals() -> None:
    from mishards.meta.servicer import MetaServicer
    from mishards.v1 import meta_pb2

    for method in meta_pb2.DESCRIPTOR.services_by_name["Meta"].methods:
        if method.server_streaming:  # WatchCatalog: a feed, it refuses nothing
            continue
        assert hasattr(MetaServicer.__dict__[method.name], "__wrapped__"), method.name
