"""Milvus status codes and the one error type services raise to answer a client."""

from __future__ import annotations

from pymilvus.grpc_gen import common_pb2

# The success status every handler answers with (a message field takes a copy of it).
OK = common_pb2.Status()

# Codes of milvus-io/milvus pkg/util/merr (the `code` field of common.Status).
SERVICE_NOT_READY = 1
SERVICE_UNAVAILABLE = 2
SERVICE_INTERNAL = 5
RATE_LIMIT = 8
SERVICE_UNIMPLEMENTED = 10
COLLECTION_NOT_FOUND = 100
COLLECTION_NOT_LOADED = 101
PARTITION_NOT_FOUND = 200
INDEX_NOT_FOUND = 700
DATABASE_NOT_FOUND = 800
PARAMETER_INVALID = 1100
PARAMETER_MISSING = 1101
ALIAS_NOT_FOUND = 1600
ALIAS_NAME_CONFLICT = 1601
ALIAS_ALREADY_EXISTS = 1602
FIELD_NOT_FOUND = 1700
OPERATION_NOT_SUPPORTED = 3000
# What Milvus answers for a plain (unclassified) error, e.g. a vector length that does not fit the dim.
UNEXPECTED = 65535
# A `legacy` argument asking for no legacy error_code at all (milvus-lite leaves it 0 for code 1).
NO_LEGACY = -1

# Legacy common.ErrorCode that Milvus 2.3 sends beside each code (pymilvus reads both).
_LEGACY = {
    SERVICE_NOT_READY: common_pb2.NotReadyServe,
    SERVICE_UNAVAILABLE: common_pb2.UnexpectedError,
    RATE_LIMIT: common_pb2.RateLimit,
    COLLECTION_NOT_FOUND: common_pb2.CollectionNotExists,
    INDEX_NOT_FOUND: common_pb2.IndexNotExist,
    PARAMETER_INVALID: common_pb2.IllegalArgument,
    PARAMETER_MISSING: common_pb2.IllegalArgument,
}


class MilvusError(Exception):
    """An answer to the client with a Milvus status code and reason."""

    def __init__(self, code: int, reason: str, legacy: int = 0) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.legacy = legacy  # the legacy error_code, when not the usual one for the code

    def to_status(self) -> common_pb2.Status:
        return status(self.code, self.reason, self.legacy)

    @classmethod
    def from_status(cls, st: common_pb2.Status) -> MilvusError:
        code = st.code or (SERVICE_INTERNAL if st.error_code else 0)
        return cls(code, st.reason, st.error_code)


def status(code: int = 0, reason: str = "", legacy: int = 0) -> common_pb2.Status:
    """A common.Status with the code, its legacy error_code (`legacy`, the usual one, or none with
    NO_LEGACY), and the reason."""
    if code == 0:
        return common_pb2.Status()
    if legacy == NO_LEGACY:
        return common_pb2.Status(code=code, reason=reason)
    legacy = legacy or _LEGACY.get(code, common_pb2.UnexpectedError)
    return common_pb2.Status(code=code, error_code=legacy, reason=reason)


def is_error(st: common_pb2.Status) -> bool:
    return bool(st.code or st.error_code)


def collection_not_found(name: str, db_name: str = "") -> MilvusError:
    # The wording of Milvus 2.3.5's merr.WrapErrCollectionNotFound.
    return MilvusError(
        COLLECTION_NOT_FOUND,
        f"collection not found[database={db_name or 'default'}][collection={name}]",
    )


def database_not_found(db_name: str) -> MilvusError:
    return MilvusError(DATABASE_NOT_FOUND, f"database not found[database={db_name}]")


def collection_not_found_in(method: str, name: str, db_name: str = "") -> MilvusError:
    """Milvus 2.3.5's wording of an unknown collection where a method words it its own way."""
    plain = collection_not_found(name, db_name).reason
    if method == "DescribeCollection":
        return MilvusError(COLLECTION_NOT_FOUND, f"can't find collection {plain}", common_pb2.UnexpectedError)
    if method == "Delete":
        return MilvusError(COLLECTION_NOT_FOUND, f"Failed to get collection id: {plain}")
    if method == "ListAliases":
        return MilvusError(COLLECTION_NOT_FOUND, f"collection not found[collection={name}]")
    return collection_not_found(name, db_name)


def alias_not_found(alias: str, db_name: str = "") -> MilvusError:
    return MilvusError(ALIAS_NOT_FOUND, f"alias not found[database={db_name or 'default'}][alias={alias}]")


def upstream_failed(details: str) -> MilvusError:
    """A call to meta or a backend that failed at the gRPC level (unreachable, past its deadline)."""
    return MilvusError(SERVICE_UNAVAILABLE, f"mishards: {details}")


def internal(component: str, exc: Exception) -> MilvusError:
    """An exception no handler expected, as the client hears it: the component and the text, never a traceback.

    The one mapping of a surprise to a status: the router's `guarded` and meta's DDL executor use it.
    """
    return MilvusError(SERVICE_INTERNAL, f"mishards {component}: {exc}")


def primary_behind(what: str, collection: str, shard: int, primary: str, position: int, wait: float) -> MilvusError:
    """A flush (`what`) that waited `wait` seconds for a shard's primary to apply the log up to `position`."""
    return MilvusError(
        SERVICE_UNAVAILABLE,
        f"mishards: {what} of collection {collection}: shard {shard}'s primary {primary} has not "
        f"applied the log up to position {position} within {wait:g}s",
    )


def flush_timed_out(collection: str, shard: int) -> MilvusError:
    """A copy that did not report its segments flushed within the backend timeout."""
    return MilvusError(SERVICE_UNAVAILABLE, f"mishards: flush of {collection} shard {shard} timed out")


def unknown_method(method: str) -> str:
    """grpc-go's words (gRPC UNIMPLEMENTED) for a MilvusService method the server does not have."""
    return f"unknown method {method} for service milvus.proto.milvus.MilvusService"


def unsupported(method: str) -> MilvusError:
    return MilvusError(
        SERVICE_UNIMPLEMENTED,
        f"{method} is not supported by Mishards (see docs/compatibility.md)",
    )


# Milvus 2.3.5's proxy.maxShardNum: CreateCollection refuses more shards (0 or less means the default).
MAX_SHARDS_NUM = 16


def shards_num_exceeded() -> MilvusError:
    """Milvus 2.3.5's createCollectionTask.PreExecute error (a plain error: code 65535)."""
    return MilvusError(UNEXPECTED, f"maximum shards's number should be limited to {MAX_SHARDS_NUM}")


def empty_delete_expression() -> MilvusError:
    """Milvus 2.3.5's deleteTask on a loaded collection: it queries for the rows and refuses an empty expression."""
    return MilvusError(
        PARAMETER_INVALID, "invalid expression: invalid parameter[expected=valid expr][actual=empty expr]"
    )


def expr_plan_failed(expr: str) -> MilvusError:
    """Milvus 2.3.5's deleteTask when it cannot parse the expression itself (a plain error: code 65535)."""
    return MilvusError(UNEXPECTED, f"failed to create expr plan, expr = {expr}")


def count_with_pagination() -> MilvusError:
    """Milvus 2.3.5's queryTask: `count(*)` with a limit or offset (a plain error: code 65535)."""
    return MilvusError(UNEXPECTED, "count entities with pagination is not allowed")
