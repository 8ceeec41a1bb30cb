"""Bounds on what one request may ask of the router, checked before any backend or meta sees it.

Where Milvus 2.3.5 has the same bound, the error is its error (code and words); where it has
none (HybridSearch, which 2.3.5 lacks), the error is a parameter error (code 1100).
"""

from __future__ import annotations

from typing import Any

from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common import errors
from mishards.common.errors import MilvusError

MAX_HYBRID_REQUESTS = 64  # the MAX_HYBRID_REQUESTS default: sub-searches of one HybridSearch
MAX_TOPK = 16384  # Milvus 2.3.5's largest topk, offset + topk (search) and offset + limit (query)
MAX_NQ = 16384  # Milvus's quotaAndLimits.limits.maxNQ


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


# --- searches and queries: the windows and parameters Milvus 2.3.5 checks before its plan -----------


def params_of(kvs: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in kvs}


def go_int(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 0, 64), as Milvus reads topk, offset and limit; None when Go refuses it."""
    if not text.isascii() or text != text.strip():  # Python's int() would take spaces and other digits
        return None
    body = text[1:] if text[:1] in "+-" else text
    if body[:1] == "0" and len(body) > 1 and body[1:2] not in "xXoObB_":
        body = "0o" + body[1:]  # a leading 0 means octal in Go
    try:
        value = int((text[:1] if text[:1] == "-" else "") + body, 0)
    except ValueError:
        return None
    return value if -(2**63) <= value < 2**63 else None


def _topk_error(what: str, value: int) -> MilvusError:
    return MilvusError(
        errors.UNEXPECTED, f"{what} [{value}] is invalid, top k should be in range [1, {MAX_TOPK}], but got {value}"
    )


def check_search_request(req: milvus_pb2.SearchRequest) -> None:
    """What Milvus 2.3.5 refuses of a search before its plan, and what would crash it.

    A negative nq makes 2.3.5's proxy panic (a Prometheus counter cannot decrease), and a
    dsl_type other than BoolExprV1 reaches its query node with no plan and panics it: the
    router answers both itself, the first with the words 2.3.5 has for an nq out of range.
    """
    if req.nq < 0 or req.nq > MAX_NQ:
        raise MilvusError(
            errors.UNEXPECTED,
            f"nq [{req.nq}] is invalid, nq (number of search vector per search request) should be in range "
            f"[1, {MAX_NQ}], but got {req.nq}",
        )
    if req.dsl_type != common_pb2.BoolExprV1:
        raise MilvusError(
            errors.PARAMETER_INVALID,
            f"dsl_type {req.dsl_type} is not supported: only boolean expressions (BoolExprV1) are",
        )


def _int_param(params: dict[str, str], key: str) -> int:
    """An integer parameter read as Go's ParseInt(s, 0, 64) reads it (0 when absent), refused as 2.3.5 words it."""
    if key not in params:
        return 0
    value = go_int(params[key])
    if value is None:
        raise MilvusError(errors.UNEXPECTED, f"{key} [{params[key]}] is invalid")
    return value


def search_window(params: dict[str, str]) -> tuple[int, int]:
    """`(topk, offset)` of a search, refused as Milvus 2.3.5's parseSearchInfo refuses them."""
    if "topk" not in params:
        raise MilvusError(errors.UNEXPECTED, "topk not found in search_params")
    limit = _int_param(params, "topk")
    if limit <= 0 or limit > MAX_TOPK:
        raise _topk_error("topk", limit)
    offset = _int_param(params, "offset")
    if offset != 0 and (offset <= 0 or offset > MAX_TOPK):
        raise _topk_error("offset", offset)
    if limit + offset > MAX_TOPK:
        raise _topk_error("offset+topk", limit + offset)
    return limit, offset


def query_window(params: dict[str, str]) -> tuple[int | None, int]:
    """`(limit, offset)` of a query (None: no limit), refused as Milvus 2.3.5's parseQueryParams refuses them."""
    if "limit" not in params:
        return None, 0
    limit = _int_param(params, "limit")
    offset = _int_param(params, "offset")
    window = "invalid max query result window, "
    if offset < 0:
        raise MilvusError(errors.UNEXPECTED, f"{window}offset [{offset}] is invalid, should be gte than 0")
    if limit <= 0:
        raise MilvusError(errors.UNEXPECTED, f"{window}limit [{limit}] is invalid, should be greater than 0")
    if limit + offset > MAX_TOPK:
        raise MilvusError(
            errors.UNEXPECTED, f"{window}(offset+limit) should be in range [1, {MAX_TOPK}], but got {limit + offset}"
        )
    return limit, offset
