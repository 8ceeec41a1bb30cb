"""Milvus 2.3.5's RBAC vocabulary: built-in names, privileges per object type, name rules,
and which privilege each MilvusService method needs.

The method -> (object type, privilege, object name) mapping is read from the
`common.privilege_ext_obj` option of each request message in pymilvus's descriptors: the
option Milvus's proxy reads (funcutil.GetPrivilegeExtObj) to decide the same thing.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cache
from typing import Any

from pymilvus.grpc_gen import common_pb2

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.common.milvus_messages import SERVICE

ROOT = "root"
ROLE_ADMIN = "admin"
ROLE_PUBLIC = "public"
BUILTIN_ROLES = (ROLE_ADMIN, ROLE_PUBLIC)
ANY = "*"
MAX_NAME_LENGTH = 32
MIN_PASSWORD_LENGTH = 6
MAX_PASSWORD_LENGTH = 256

# The privileges Milvus 2.3.5 accepts in a grant, per object type (as a 2.3.5 answered OperatePrivilege).
OBJECT_PRIVILEGES: dict[str, frozenset[str]] = {
    "Global": frozenset(
        {
            "All", "CreateCollection", "DropCollection", "DescribeCollection", "ShowCollections",
            "CreateOwnership", "DropOwnership", "SelectOwnership", "ManageOwnership",
            "CreateResourceGroup", "DropResourceGroup", "DescribeResourceGroup", "ListResourceGroups",
            "TransferNode", "TransferReplica", "RenameCollection", "CreateDatabase", "DropDatabase",
            "ListDatabases", "FlushAll", "CreateAlias", "DropAlias", "DescribeAlias", "ListAliases",
        }
    ),
    "Collection": frozenset(
        {
            "Load", "Release", "Compaction", "Insert", "Delete", "GetStatistics", "CreateIndex",
            "IndexDetail", "DropIndex", "Search", "Flush", "Query", "LoadBalance", "Import", "Upsert",
            "GetLoadingProgress", "GetLoadState", "CreatePartition", "DropPartition", "ShowPartitions",
            "HasPartition", "GetFlushState",
        }
    ),
    "User": frozenset({"UpdateUser", "SelectUser"}),
}  # fmt: skip

# What a Milvus 2.3.5 grants the public role at its first start: (object type, object name, privilege),
# in every database ("*").
PUBLIC_GRANTS: tuple[tuple[str, str, str], ...] = (
    ("Collection", ANY, "IndexDetail"),
    ("Global", ANY, "DescribeCollection"),
    ("Global", ANY, "ShowCollections"),
)


def privilege_name(name: str) -> str:
    """A privilege as grants name it ("Search"), from either spelling ("Search" or "PrivilegeSearch")."""
    return name[len("Privilege") :] if name.startswith("Privilege") and name != "Privilege" else name


# Milvus's legacy error codes beside the plain (65535) code, per RPC (common.ErrorCode).
LEGACY_CREATE_CREDENTIAL = common_pb2.CreateCredentialFailure
LEGACY_CREATE_ROLE = common_pb2.CreateRoleFailure
LEGACY_DROP_ROLE = common_pb2.DropRoleFailure
LEGACY_OPERATE_USER_ROLE = common_pb2.OperateUserRoleFailure
LEGACY_OPERATE_PRIVILEGE = common_pb2.OperatePrivilegeFailure
LEGACY_SELECT_GRANT = common_pb2.SelectGrantFailure
# merr codes of Milvus 2.3.5 for credentials and privileges.
NOT_AUTHENTICATED = 1400
PRIVILEGE_NOT_PERMITTED = 1401
MAX_ROLE_NAME_LENGTH = 255


def _invalid(message: str) -> MilvusError:
    """merr.WrapErrParameterInvalidMsg: the message, then ": invalid parameter"."""
    return MilvusError(errors.PARAMETER_INVALID, f"{message}: invalid parameter")


def _is_alpha(c: str) -> bool:
    return c.isascii() and c.isalpha()


def check_username(name: str) -> None:
    """Milvus's ValidateUsername: a letter first, then letters, digits and underscores, at most 32 bytes."""
    name = name.strip()
    if not name:
        raise _invalid("username must be not empty")
    if len(name.encode()) > MAX_NAME_LENGTH:
        # Go's %d of a string, as 2.3.5 prints it
        raise _invalid(
            f"invalid username {name} with length {len(name.encode())}, "
            f"the length of username must be less than %!d(string={MAX_NAME_LENGTH})"
        )
    raw = name.encode()
    if not _is_alpha(chr(raw[0])):
        raise _invalid(f"invalid user name {name}, the first character must be a letter, but got %!s(uint8={raw[0]})")
    for b in raw[1:]:
        c = chr(b)
        if c != "_" and not _is_alpha(c) and not c.isdigit():
            raise _invalid(
                f"invalid user name {name}, username must contain only numbers, letters and underscores, "
                f"but got %!s(uint8={b})"
            )


def check_role_name(name: str) -> None:
    """Milvus's validateName for a role: an underscore or letter first, then letters, digits, `_` and `$`."""
    name = name.strip()
    if not name:
        raise MilvusError(
            errors.PARAMETER_INVALID, "role name should be not empty: invalid parameter[expected=not empty][actual=]"
        )
    raw = name.encode()
    if len(raw) > MAX_ROLE_NAME_LENGTH:
        raise MilvusError(
            errors.PARAMETER_INVALID,
            f"the length of role name must be not greater than limit: invalid parameter"
            f"[{len(raw)} out of range 0 <= value <= {MAX_ROLE_NAME_LENGTH}]",
        )
    if raw[0] != ord("_") and not _is_alpha(chr(raw[0])):
        raise MilvusError(
            errors.PARAMETER_INVALID,
            "the first character of role name must be an underscore or letter: invalid parameter"
            f"[expected=95][actual={raw[0]}]",
        )
    for i, b in enumerate(raw[1:], start=1):
        c = chr(b)
        if c not in "_$" and not _is_alpha(c) and not c.isdigit():
            raise _invalid(f"role name can only contain numbers, letters, dollars and underscores, found {c} at {i}")


def check_password(password: str) -> None:
    size = len(password.encode())
    if not MIN_PASSWORD_LENGTH <= size <= MAX_PASSWORD_LENGTH:
        raise MilvusError(
            errors.PARAMETER_INVALID,
            f"invalid password length: invalid parameter"
            f"[{size} out of range {MIN_PASSWORD_LENGTH} <= value <= {MAX_PASSWORD_LENGTH}]",
        )


# --- which privilege a call needs -------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """What a MilvusService method needs: a privilege on an object whose name the request holds."""

    object_type: str  # "Global", "Collection" or "User"
    privilege: str  # as grants name it, e.g. "Search"
    name_field: int  # field number of the object's name in the request; <= 0: the object is "*"
    names_field: int  # field number of a list of names (every one needs the privilege); 0: none

    def object_names(self, request: Any) -> list[str]:
        """The objects the request touches (one, or every name of the list field)."""
        if self.names_field > 0:
            field = request.DESCRIPTOR.fields_by_number.get(self.names_field)
            return [str(v) for v in getattr(request, field.name)] if field is not None else []
        if self.name_field <= 0:
            return [ANY]
        field = request.DESCRIPTOR.fields_by_number.get(self.name_field)
        if field is None:
            return [ANY]
        value = getattr(request, field.name)
        if field.message_type is not None:  # an entity: its first field is the name
            inner = value.DESCRIPTOR.fields_by_number.get(1)
            return [str(getattr(value, inner.name)) if inner is not None else ""]
        return [str(value)]


@cache
def requirements() -> dict[str, Requirement]:
    """Every MilvusService method whose request carries Milvus's privilege option."""
    out: dict[str, Requirement] = {}
    for method in SERVICE.methods:
        options = method.input_type.GetOptions()
        if not options.HasExtension(common_pb2.privilege_ext_obj):
            continue
        ext = options.Extensions[common_pb2.privilege_ext_obj]
        out[method.name] = Requirement(
            object_type=common_pb2.ObjectType.Name(ext.object_type),
            privilege=privilege_name(common_pb2.ObjectPrivilege.Name(ext.object_privilege)),
            name_field=ext.object_name_index,
            names_field=ext.object_name_indexs,
        )
    return out


@dataclass(frozen=True)
class Grant:
    role: str
    object_type: str
    object_name: str
    privilege: str
    db_name: str


def permits(grants: list[Grant], role: str, object_type: str, name: str, privilege: str, db_name: str) -> bool:
    """Milvus 2.3's casbin rule for one role: admin passes; a grant of All passes; else a grant of
    the privilege on that object type in that database (or in every one, `*`) whose name matches
    (`*` matches any)."""
    if role == ROLE_ADMIN:
        return True
    for g in grants:
        if g.role != role:
            continue
        if g.privilege == "All":
            return True
        if g.privilege != privilege or g.object_type != object_type or g.db_name not in (db_name, ANY):
            continue
        if fnmatch.fnmatchcase(name, g.object_name):
            return True
    return False
