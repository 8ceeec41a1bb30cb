"""Bounds on what one request may ask of the router, checked before any backend or meta sees it.

Where Milvus 2.3.5 has the same bound, the error is its error (code and words); where it has
none (HybridSearch, which 2.3.5 lacks), the error is a parameter error (code 1100).
"""

from __future__ import annotations

from typing import Any

from pymilvus.grpc_gen import schema_pb2

from mishards.common import errors
from mishards.common.errors import MilvusError

MAX_HYBRID_REQUESTS = 64  # the MAX_HYBRID_REQUESTS default: sub-searches of one HybridSearch


def check_ddl(method: str, request: Any) -> None:
    """What the router refuses of a DDL request before meta hears of it."""
    if method == "CreateCollection":
        check_shards_num(request)


def check_shards_num(request: Any) -> None:
    """Milvus 2.3.5 refuses more than 16 shards once the schema decodes; 0 or less means the default."""
    try:
        schema_pb2.CollectionSchema.FromString(request.schema)
    except Exception:  # noqa: BLE001 - an undecodable schema gets meta's (and Milvus's) error first
        return
    if request.shards_num > errors.MAX_SHARDS_NUM:
        raise errors.shards_num_exceeded()


def check_hybrid_requests(count: int, cap: int) -> None:
    """Each sub-search fans out to every shard: their number is bounded by MAX_HYBRID_REQUESTS."""
    if count > cap:
        raise MilvusError(
            errors.PARAMETER_INVALID,
            f"hybrid search has {count} sub-search requests, more than the {cap} allowed (MAX_HYBRID_REQUESTS)",
        )


def too_deep() -> MilvusError:
    """A request whose JSON (or nested value) goes deeper than the router's parsers follow."""
    return MilvusError(errors.PARAMETER_INVALID, "mishards: input nested too deeply to be parsed")
