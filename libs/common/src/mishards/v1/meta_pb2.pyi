from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyValue(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class ShardPlacement(_message.Message):
    __slots__ = ("index", "physical_name", "primary", "replicas")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_NAME_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    index: int
    physical_name: str
    primary: str
    replicas: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, index: _Optional[int] = ..., physical_name: _Optional[str] = ..., primary: _Optional[str] = ..., replicas: _Optional[_Iterable[str]] = ...) -> None: ...

class IndexSpec(_message.Message):
    __slots__ = ("field_name", "index_name", "params", "index_id")
    FIELD_NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    INDEX_ID_FIELD_NUMBER: _ClassVar[int]
    field_name: str
    index_name: str
    params: _containers.RepeatedCompositeFieldContainer[KeyValue]
    index_id: int
    def __init__(self, field_name: _Optional[str] = ..., index_name: _Optional[str] = ..., params: _Optional[_Iterable[_Union[KeyValue, _Mapping]]] = ..., index_id: _Optional[int] = ...) -> None: ...

class Collection(_message.Message):
    __slots__ = ("id", "db_name", "name", "schema", "shards_num", "consistency_level", "shards", "aliases", "partitions", "indexes", "properties", "created_timestamp", "loaded", "shard_key")
    ID_FIELD_NUMBER: _ClassVar[int]
    DB_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    SHARDS_NUM_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    SHARD_KEY_FIELD_NUMBER: _ClassVar[int]
    id: int
    db_name: str
    name: str
    schema: bytes
    shards_num: int
    consistency_level: int
    shards: _containers.RepeatedCompositeFieldContainer[ShardPlacement]
    aliases: _containers.RepeatedScalarFieldContainer[str]
    partitions: _containers.RepeatedScalarFieldContainer[str]
    indexes: _containers.RepeatedCompositeFieldContainer[IndexSpec]
    properties: _containers.RepeatedCompositeFieldContainer[KeyValue]
    created_timestamp: int
    loaded: bool
    shard_key: str
    def __init__(self, id: _Optional[int] = ..., db_name: _Optional[str] = ..., name: _Optional[str] = ..., schema: _Optional[bytes] = ..., shards_num: _Optional[int] = ..., consistency_level: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[ShardPlacement, _Mapping]]] = ..., aliases: _Optional[_Iterable[str]] = ..., partitions: _Optional[_Iterable[str]] = ..., indexes: _Optional[_Iterable[_Union[IndexSpec, _Mapping]]] = ..., properties: _Optional[_Iterable[_Union[KeyValue, _Mapping]]] = ..., created_timestamp: _Optional[int] = ..., loaded: _Optional[bool] = ..., shard_key: _Optional[str] = ...) -> None: ...

class InstanceVersion(_message.Message):
    __slots__ = ("identity", "version")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    identity: str
    version: str
    def __init__(self, identity: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Catalog(_message.Message):
    __slots__ = ("version", "databases", "collections", "instances", "auth_version")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    AUTH_VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    databases: _containers.RepeatedScalarFieldContainer[str]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    instances: _containers.RepeatedCompositeFieldContainer[InstanceVersion]
    auth_version: int
    def __init__(self, version: _Optional[int] = ..., databases: _Optional[_Iterable[str]] = ..., collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ..., instances: _Optional[_Iterable[_Union[InstanceVersion, _Mapping]]] = ..., auth_version: _Optional[int] = ...) -> None: ...

class GetCatalogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuthUser(_message.Message):
    __slots__ = ("name", "password_hash", "roles")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    name: str
    password_hash: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., password_hash: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class AuthGrant(_message.Message):
    __slots__ = ("role", "object_type", "object_name", "privilege", "db_name", "grantor")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGE_FIELD_NUMBER: _ClassVar[int]
    DB_NAME_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_FIELD_NUMBER: _ClassVar[int]
    role: str
    object_type: str
    object_name: str
    privilege: str
    db_name: str
    grantor: str
    def __init__(self, role: _Optional[str] = ..., object_type: _Optional[str] = ..., object_name: _Optional[str] = ..., privilege: _Optional[str] = ..., db_name: _Optional[str] = ..., grantor: _Optional[str] = ...) -> None: ...

class GetAuthStateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuthState(_message.Message):
    __slots__ = ("version", "users", "roles", "grants")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    version: int
    users: _containers.RepeatedCompositeFieldContainer[AuthUser]
    roles: _containers.RepeatedScalarFieldContainer[str]
    grants: _containers.RepeatedCompositeFieldContainer[AuthGrant]
    def __init__(self, version: _Optional[int] = ..., users: _Optional[_Iterable[_Union[AuthUser, _Mapping]]] = ..., roles: _Optional[_Iterable[str]] = ..., grants: _Optional[_Iterable[_Union[AuthGrant, _Mapping]]] = ...) -> None: ...

class ExecuteRbacRequest(_message.Message):
    __slots__ = ("method", "request", "db_name", "caller")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    DB_NAME_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    method: str
    request: bytes
    db_name: str
    caller: str
    def __init__(self, method: _Optional[str] = ..., request: _Optional[bytes] = ..., db_name: _Optional[str] = ..., caller: _Optional[str] = ...) -> None: ...

class ExecuteRbacResponse(_message.Message):
    __slots__ = ("response", "auth_version")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    AUTH_VERSION_FIELD_NUMBER: _ClassVar[int]
    response: bytes
    auth_version: int
    def __init__(self, response: _Optional[bytes] = ..., auth_version: _Optional[int] = ...) -> None: ...

class WatchCatalogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CatalogVersion(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class AllocateIdsRequest(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class AllocateIdsResponse(_message.Message):
    __slots__ = ("begin", "count")
    BEGIN_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    begin: int
    count: int
    def __init__(self, begin: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class GetTimestampRequest(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class GetTimestampResponse(_message.Message):
    __slots__ = ("timestamp", "count")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    count: int
    def __init__(self, timestamp: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class ExecuteDdlRequest(_message.Message):
    __slots__ = ("method", "request", "db_name")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    DB_NAME_FIELD_NUMBER: _ClassVar[int]
    method: str
    request: bytes
    db_name: str
    def __init__(self, method: _Optional[str] = ..., request: _Optional[bytes] = ..., db_name: _Optional[str] = ...) -> None: ...

class ExecuteDdlResponse(_message.Message):
    __slots__ = ("response", "catalog_version")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    response: bytes
    catalog_version: int
    def __init__(self, response: _Optional[bytes] = ..., catalog_version: _Optional[int] = ...) -> None: ...

class MutationEntry(_message.Message):
    __slots__ = ("shard", "method", "request")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    shard: int
    method: str
    request: bytes
    def __init__(self, shard: _Optional[int] = ..., method: _Optional[str] = ..., request: _Optional[bytes] = ...) -> None: ...

class AppendMutationsRequest(_message.Message):
    __slots__ = ("collection_id", "entries", "wait_applied")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    WAIT_APPLIED_FIELD_NUMBER: _ClassVar[int]
    collection_id: int
    entries: _containers.RepeatedCompositeFieldContainer[MutationEntry]
    wait_applied: bool
    def __init__(self, collection_id: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[MutationEntry, _Mapping]]] = ..., wait_applied: _Optional[bool] = ...) -> None: ...

class ShardResult(_message.Message):
    __slots__ = ("shard", "seq", "responses")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    shard: int
    seq: int
    responses: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, shard: _Optional[int] = ..., seq: _Optional[int] = ..., responses: _Optional[_Iterable[bytes]] = ...) -> None: ...

class AppendMutationsResponse(_message.Message):
    __slots__ = ("status", "timestamp", "shards")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    status: bytes
    timestamp: int
    shards: _containers.RepeatedCompositeFieldContainer[ShardResult]
    def __init__(self, status: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[ShardResult, _Mapping]]] = ...) -> None: ...

class CopyState(_message.Message):
    __slots__ = ("collection_id", "db_name", "collection", "shard", "instance", "role", "state", "applied_seq", "last_seq", "reason", "fill_progress", "stuck", "stuck_seq", "unavailable")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    DB_NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FILL_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STUCK_FIELD_NUMBER: _ClassVar[int]
    STUCK_SEQ_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    collection_id: int
    db_name: str
    collection: str
    shard: int
    instance: str
    role: str
    state: str
    applied_seq: int
    last_seq: int
    reason: str
    fill_progress: float
    stuck: str
    stuck_seq: int
    unavailable: str
    def __init__(self, collection_id: _Optional[int] = ..., db_name: _Optional[str] = ..., collection: _Optional[str] = ..., shard: _Optional[int] = ..., instance: _Optional[str] = ..., role: _Optional[str] = ..., state: _Optional[str] = ..., applied_seq: _Optional[int] = ..., last_seq: _Optional[int] = ..., reason: _Optional[str] = ..., fill_progress: _Optional[float] = ..., stuck: _Optional[str] = ..., stuck_seq: _Optional[int] = ..., unavailable: _Optional[str] = ...) -> None: ...

class ReadPositionsRequest(_message.Message):
    __slots__ = ("collection_id", "timestamp", "shards", "wait_seconds")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    collection_id: int
    timestamp: int
    shards: _containers.RepeatedScalarFieldContainer[int]
    wait_seconds: float
    def __init__(self, collection_id: _Optional[int] = ..., timestamp: _Optional[int] = ..., shards: _Optional[_Iterable[int]] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class CopyPosition(_message.Message):
    __slots__ = ("instance", "applied_seq", "backend_timestamp", "backend_timestamp_at_seq")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    BACKEND_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    BACKEND_TIMESTAMP_AT_SEQ_FIELD_NUMBER: _ClassVar[int]
    instance: str
    applied_seq: int
    backend_timestamp: int
    backend_timestamp_at_seq: int
    def __init__(self, instance: _Optional[str] = ..., applied_seq: _Optional[int] = ..., backend_timestamp: _Optional[int] = ..., backend_timestamp_at_seq: _Optional[int] = ...) -> None: ...

class ShardReadPosition(_message.Message):
    __slots__ = ("shard", "seq", "copies")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    COPIES_FIELD_NUMBER: _ClassVar[int]
    shard: int
    seq: int
    copies: _containers.RepeatedCompositeFieldContainer[CopyPosition]
    def __init__(self, shard: _Optional[int] = ..., seq: _Optional[int] = ..., copies: _Optional[_Iterable[_Union[CopyPosition, _Mapping]]] = ...) -> None: ...

class ReadPositionsResponse(_message.Message):
    __slots__ = ("shards",)
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    shards: _containers.RepeatedCompositeFieldContainer[ShardReadPosition]
    def __init__(self, shards: _Optional[_Iterable[_Union[ShardReadPosition, _Mapping]]] = ...) -> None: ...

class ListCopiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MoveState(_message.Message):
    __slots__ = ("collection_id", "collection", "shard", "source", "target", "phase", "progress", "seconds", "switch_seconds")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    SWITCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    collection_id: int
    collection: str
    shard: int
    source: str
    target: str
    phase: str
    progress: float
    seconds: float
    switch_seconds: float
    def __init__(self, collection_id: _Optional[int] = ..., collection: _Optional[str] = ..., shard: _Optional[int] = ..., source: _Optional[str] = ..., target: _Optional[str] = ..., phase: _Optional[str] = ..., progress: _Optional[float] = ..., seconds: _Optional[float] = ..., switch_seconds: _Optional[float] = ...) -> None: ...

class DrainState(_message.Message):
    __slots__ = ("instance", "copies_left")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    COPIES_LEFT_FIELD_NUMBER: _ClassVar[int]
    instance: str
    copies_left: int
    def __init__(self, instance: _Optional[str] = ..., copies_left: _Optional[int] = ...) -> None: ...

class ListCopiesResponse(_message.Message):
    __slots__ = ("copies", "log_entries", "moves", "draining")
    COPIES_FIELD_NUMBER: _ClassVar[int]
    LOG_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MOVES_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    copies: _containers.RepeatedCompositeFieldContainer[CopyState]
    log_entries: int
    moves: _containers.RepeatedCompositeFieldContainer[MoveState]
    draining: _containers.RepeatedCompositeFieldContainer[DrainState]
    def __init__(self, copies: _Optional[_Iterable[_Union[CopyState, _Mapping]]] = ..., log_entries: _Optional[int] = ..., moves: _Optional[_Iterable[_Union[MoveState, _Mapping]]] = ..., draining: _Optional[_Iterable[_Union[DrainState, _Mapping]]] = ...) -> None: ...

class RepairShardRequest(_message.Message):
    __slots__ = ("collection_id", "shard", "instance", "action")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    collection_id: int
    shard: int
    instance: str
    action: str
    def __init__(self, collection_id: _Optional[int] = ..., shard: _Optional[int] = ..., instance: _Optional[str] = ..., action: _Optional[str] = ...) -> None: ...

class RepairShardResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class ShardOperationRequest(_message.Message):
    __slots__ = ("db_name", "collection", "shard", "to")
    DB_NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    db_name: str
    collection: str
    shard: int
    to: str
    def __init__(self, db_name: _Optional[str] = ..., collection: _Optional[str] = ..., shard: _Optional[int] = ..., to: _Optional[str] = ...) -> None: ...

class DrainInstanceRequest(_message.Message):
    __slots__ = ("instance", "undo")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    UNDO_FIELD_NUMBER: _ClassVar[int]
    instance: str
    undo: bool
    def __init__(self, instance: _Optional[str] = ..., undo: _Optional[bool] = ...) -> None: ...

class OperatorResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...
