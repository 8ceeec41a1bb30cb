from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    WRITABLE: _ClassVar[Role]
    READONLY: _ClassVar[Role]

class Health(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_UNKNOWN: _ClassVar[Health]
    HEALTHY: _ClassVar[Health]
    DOWN: _ClassVar[Health]
ROLE_UNSPECIFIED: Role
WRITABLE: Role
READONLY: Role
HEALTH_UNKNOWN: Health
HEALTHY: Health
DOWN: Health

class Instance(_message.Message):
    __slots__ = ("identity", "address", "role", "health", "reason")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    identity: str
    address: str
    role: Role
    health: Health
    reason: str
    def __init__(self, identity: _Optional[str] = ..., address: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., health: _Optional[_Union[Health, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class Membership(_message.Message):
    __slots__ = ("version", "instances", "backend_ok", "backend_error")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_OK_FIELD_NUMBER: _ClassVar[int]
    BACKEND_ERROR_FIELD_NUMBER: _ClassVar[int]
    version: int
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    backend_ok: bool
    backend_error: str
    def __init__(self, version: _Optional[int] = ..., instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ..., backend_ok: _Optional[bool] = ..., backend_error: _Optional[str] = ...) -> None: ...

class ListInstancesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchInstancesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
