"""DDL is handed to meta, which records desired state and applies it to every copy."""

from __future__ import annotations

from google.protobuf import message as pb_message

from mishards.common.milvus_messages import response_class
from mishards.router.catalog import CatalogCache
from mishards.router.meta_client import MetaClient


async def hand_to_meta(
    meta: MetaClient, catalog: CatalogCache, method: str, request: pb_message.Message, db_name: str
) -> pb_message.Message:
    """Run a DDL method on meta; the cache holds the change before the client hears back."""
    answer = await meta.execute_ddl(method, request, db_name)
    if answer.catalog_version:
        await catalog.refresh(answer.catalog_version)
    return response_class(method).FromString(answer.response)
