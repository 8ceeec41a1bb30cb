"""Request and response classes of MilvusService methods, from pymilvus's descriptors."""

from __future__ import annotations

import re
from functools import cache

from google.protobuf import message as pb_message
from google.protobuf import message_factory
from pymilvus.grpc_gen import common_pb2, milvus_pb2

SERVICE = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]

# The DDL methods meta owns: the router hands them to meta unchanged (ExecuteDdl), meta runs them.
DDL_METHODS = (
    "CreateCollection",
    "DropCollection",
    "CreateIndex",
    "DropIndex",
    "LoadCollection",
    "ReleaseCollection",
    "CreateDatabase",
    "DropDatabase",
    "CreatePartition",
    "DropPartition",
    "LoadPartitions",
    "ReleasePartitions",
    "CreateAlias",
    "AlterAlias",
    "DropAlias",
    "RenameCollection",
    "AlterCollection",
)

# The credential and RBAC methods of Milvus 2.3.5 meta owns: the router hands them over (ExecuteRbac).
RBAC_METHODS = (
    "CreateCredential",
    "UpdateCredential",
    "DeleteCredential",
    "ListCredUsers",
    "CreateRole",
    "DropRole",
    "OperateUserRole",
    "SelectRole",
    "SelectUser",
    "OperatePrivilege",
    "SelectGrant",
)


def snake_case(method: str) -> str:
    """`CreateCollection` -> `create_collection`: the name of the meta method that runs a DDL or RBAC method."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower()


@cache
def request_class(method: str) -> type[pb_message.Message]:
    return message_factory.GetMessageClass(SERVICE.methods_by_name[method].input_type)


@cache
def response_class(method: str) -> type[pb_message.Message]:
    return message_factory.GetMessageClass(SERVICE.methods_by_name[method].output_type)


def method_names() -> list[str]:
    return [m.name for m in SERVICE.methods]


class EncodedAnswer:
    """A response already encoded on the wire (`data`), with the status it carries (what telemetry records).

    The router answers a single shard's search or query with the backend's bytes, rewritten
    (`mishards.router.passthrough`); its handlers' serializers send `data` as is.
    """

    __slots__ = ("data", "status")

    def __init__(self, data: bytes, status: common_pb2.Status) -> None:
        self.data = data
        self.status = status


def encode_answer(response: pb_message.Message | EncodedAnswer) -> bytes:
    """A response serializer that also takes an EncodedAnswer."""
    if type(response) is EncodedAnswer:
        return response.data
    return response.SerializeToString()  # type: ignore[union-attr]


def error_response(method: str, st: common_pb2.Status) -> pb_message.Message:
    """The response message of `method` carrying only the status `st`."""
    cls = response_class(method)
    if cls.DESCRIPTOR.full_name == "milvus.proto.common.Status":
        out = cls()
        out.CopyFrom(st)
        return out
    out = cls()
    field = status_field(method)
    if field:
        getattr(out, field).CopyFrom(st)
    return out


@cache
def status_field(method: str) -> str:
    """The name of the response's common.Status field ("" when it has none)."""
    for field in response_class(method).DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.full_name == "milvus.proto.common.Status":
            return field.name
    return ""


def carries_status(method: str) -> bool:
    """Whether the response can carry a common.Status: it is one, or it has a status field."""
    is_status = response_class(method).DESCRIPTOR.full_name == "milvus.proto.common.Status"
    return is_status or bool(status_field(method))


def is_streaming(method: str) -> bool:
    m = SERVICE.methods_by_name[method]
    return bool(m.client_streaming or m.server_streaming)
