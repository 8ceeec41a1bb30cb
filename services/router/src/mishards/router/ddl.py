"""DDL is handed to meta, which records desired state and applies it to every copy."""

from __future__ import annotations

from google.protobuf import message as pb_message

from mishards.common.milvus_messages import response_class
from mishards.router.catalog import CatalogCache
from mishards.v1 import meta_pb2, meta_pb2_grpc


async def hand_to_meta(
    stub: meta_pb2_grpc.MetaStub, catalog: CatalogCache, method: str, request: pb_message.Message, db_name: str
) -> pb_message.Message:
    """Run a DDL method on meta; the cache holds the change before the client hears back."""
    answer = await stub.ExecuteDdl(
        meta_pb2.ExecuteDdlRequest(method=method, request=request.SerializeToString(), db_name=db_name),
        timeout=600,
        wait_for_ready=True,  # meta restarting: the change waits for it rather than fail at once
    )
    if answer.catalog_version:
        await catalog.refresh(answer.catalog_version)
    return response_class(method).FromString(answer.response)
