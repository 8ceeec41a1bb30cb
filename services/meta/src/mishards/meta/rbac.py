"""Milvus credentials, roles and grants: kept in meta's database, answered as Milvus 2.3.5 answers.

Routers authenticate callers and check privileges themselves against `AuthState` (users with
their bcrypt hashes, roles, grants); every change here bumps `auth_version` and the catalog
version in one transaction, so routers following the catalog feed refetch it at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from typing import Any

import bcrypt
from pymilvus.grpc_gen import milvus_pb2
from sqlalchemy import BigInteger, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mishards.common import errors
from mishards.common.errors import OK, MilvusError
from mishards.common.milvus_messages import RBAC_METHODS, error_response, request_class, snake_case
from mishards.common.rbac import (
    ANY,
    BUILTIN_ROLES,
    LEGACY_CREATE_CREDENTIAL,
    LEGACY_CREATE_ROLE,
    LEGACY_DROP_ROLE,
    LEGACY_OPERATE_PRIVILEGE,
    LEGACY_OPERATE_USER_ROLE,
    LEGACY_SELECT_GRANT,
    NOT_AUTHENTICATED,
    OBJECT_PRIVILEGES,
    PRIVILEGE_NOT_PERMITTED,
    PUBLIC_GRANTS,
    ROLE_ADMIN,
    ROLE_PUBLIC,
    ROOT,
    check_password,
    check_role_name,
    check_username,
    privilege_name,
)
from mishards.meta.store import Base, Store
from mishards.v1 import meta_pb2

# Milvus hashes a credential with Go's bcrypt at its default cost, under the "$2a$" prefix.
BCRYPT_COST = 10


class UserRow(Base):
    __tablename__ = "rbac_users"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    created_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class RoleRow(Base):
    __tablename__ = "rbac_roles"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class UserRoleRow(Base):
    __tablename__ = "rbac_user_roles"
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role_name: Mapped[str] = mapped_column(String(64), primary_key=True)


class GrantRow(Base):
    __tablename__ = "rbac_grants"
    role_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    object_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    privilege: Mapped[str] = mapped_column(String(64), primary_key=True)
    db_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    grantor: Mapped[str] = mapped_column(String(64), default="")


def hash_password(password: str) -> str:
    """bcrypt as Milvus stores a credential ("$2a$10$...")."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST, prefix=b"2a")).decode()


def _now_ms() -> int:
    return int(time.time() * 1000)


_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
NO_ROLE = "not found the role, maybe the role isn't existed or internal system error"
NO_USER = "not found the user, maybe the user isn't existed or internal system error"


def _decode_password(value: str) -> str:
    """A password as credential RPCs carry it: base64. Milvus's message (Go's decoder's words) when it is not."""
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        at = next((i for i, c in enumerate(value) if c not in _BASE64), len(value) - len(value) % 4)
        raise MilvusError(errors.UNEXPECTED, f"decode password fail: illegal base64 data at input byte {at}") from None


class RbacStore:
    """Users, roles, bindings and grants in meta's database; each write is one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def version(self) -> int:
        return self.store.counter("auth_version")

    def _bump(self, s: Session) -> int:
        self.store._bump(s, "catalog_version")  # the catalog feed carries auth changes too
        return self.store._bump(s, "auth_version")

    def bootstrap(self, root_password: str) -> None:
        """At first start: the built-in roles, public's default grants, and root with `root_password`."""
        with self.store.write() as s, s.begin():
            if s.get(RoleRow, ROLE_ADMIN) is not None:
                return
            for role in BUILTIN_ROLES:
                s.add(RoleRow(name=role, created_ms=_now_ms()))
            for object_type, object_name, privilege in PUBLIC_GRANTS:
                s.add(GrantRow(role_name=ROLE_PUBLIC, object_type=object_type, object_name=object_name,
                               privilege=privilege, db_name=ANY, grantor=ROOT))  # fmt: skip
            if s.get(UserRow, ROOT) is None:
                s.add(UserRow(name=ROOT, password_hash=hash_password(root_password), created_ms=_now_ms()))
            self._bump(s)

    def state(self) -> meta_pb2.AuthState:
        with self.store.session() as s:
            bindings: dict[str, list[str]] = {}
            for b in s.scalars(select(UserRoleRow)):
                bindings.setdefault(b.user_name, []).append(b.role_name)
            return meta_pb2.AuthState(
                version=self.version(),
                users=[
                    meta_pb2.AuthUser(
                        name=u.name, password_hash=u.password_hash, roles=sorted(bindings.get(u.name, []))
                    )
                    for u in s.scalars(select(UserRow).order_by(UserRow.name))
                ],
                roles=[r.name for r in s.scalars(select(RoleRow).order_by(RoleRow.name))],
                grants=[
                    meta_pb2.AuthGrant(
                        role=g.role_name,
                        object_type=g.object_type,
                        object_name=g.object_name,
                        privilege=g.privilege,
                        db_name=g.db_name,
                        grantor=g.grantor,
                    )  # fmt: skip
                    for g in s.scalars(select(GrantRow))
                ],
            )

    def password_hash(self, name: str) -> str | None:
        with self.store.session() as s:
            row = s.get(UserRow, name)
            return row.password_hash if row else None

    def put_user(self, name: str, password_hash: str, create: bool) -> int:
        with self.store.write() as s, s.begin():
            row = s.get(UserRow, name)
            if create:
                if row is not None:
                    raise MilvusError(errors.UNEXPECTED, f"user already exists: {name}", LEGACY_CREATE_CREDENTIAL)
                s.add(UserRow(name=name, password_hash=password_hash, created_ms=_now_ms(), updated_ms=_now_ms()))
            else:
                if row is None:
                    raise MilvusError(NOT_AUTHENTICATED, f"old password not correct for {name}: not authenticated")
                row.password_hash, row.updated_ms = password_hash, _now_ms()
            return self._bump(s)

    def delete_user(self, name: str) -> int:
        with self.store.write() as s, s.begin():
            s.execute(delete(UserRow).where(UserRow.name == name))
            s.execute(delete(UserRoleRow).where(UserRoleRow.user_name == name))
            return self._bump(s)

    def has_role(self, name: str) -> bool:
        with self.store.session() as s:
            return s.get(RoleRow, name) is not None

    def create_role(self, name: str) -> int:
        with self.store.write() as s, s.begin():
            if s.get(RoleRow, name) is not None:
                raise MilvusError(errors.UNEXPECTED, f'role [name:"{name}"] already exists', LEGACY_CREATE_ROLE)
            s.add(RoleRow(name=name, created_ms=_now_ms()))
            return self._bump(s)

    def drop_role(self, name: str) -> int:
        with self.store.write() as s, s.begin():
            if s.get(RoleRow, name) is None:
                raise MilvusError(errors.UNEXPECTED, NO_ROLE, LEGACY_DROP_ROLE)
            s.execute(delete(RoleRow).where(RoleRow.name == name))
            s.execute(delete(UserRoleRow).where(UserRoleRow.role_name == name))
            s.execute(delete(GrantRow).where(GrantRow.role_name == name))
            return self._bump(s)

    def bind(self, user: str, role: str, add: bool) -> int:
        with self.store.write() as s, s.begin():
            row = s.get(UserRoleRow, (user, role))
            if add and row is None:
                s.add(UserRoleRow(user_name=user, role_name=role))
            elif not add and row is not None:
                s.delete(row)
            return self._bump(s)

    def grant(self, g: meta_pb2.AuthGrant, add: bool) -> int:
        key = (g.role, g.object_type, g.object_name, g.privilege, g.db_name)
        with self.store.write() as s, s.begin():
            row = s.get(GrantRow, key)
            if add and row is None:
                s.add(GrantRow(role_name=g.role, object_type=g.object_type, object_name=g.object_name,
                               privilege=g.privilege, db_name=g.db_name, grantor=g.grantor))  # fmt: skip
            elif not add and row is not None:
                s.delete(row)
            return self._bump(s)


Handler = Callable[[Any, str, str], Awaitable[tuple[Any, int]]]


class RbacExecutor:
    """The credential and RBAC RPCs of Milvus 2.3.5: their validation, codes and messages.

    Each method returns the Milvus response and the auth version holding the change (0 when
    nothing changed). bcrypt runs off the event loop.
    """

    def __init__(self, rbac: RbacStore) -> None:
        self.rbac = rbac
        self._lock = asyncio.Lock()  # one change at a time: checks and writes do not interleave
        # Each method of the one RBAC list (RBAC_METHODS, shared with the router) runs as its snake_case method here.
        self.handlers: dict[str, Handler] = {method: getattr(self, snake_case(method)) for method in RBAC_METHODS}

    async def execute(self, method: str, payload: bytes, db_name: str, caller: str) -> tuple[bytes, int]:
        """The serialized response of `method` to the serialized request, and the auth version after it."""
        handler = self.handlers.get(method)
        if handler is None:
            raise MilvusError(errors.PARAMETER_INVALID, f"mishards: {method} is not an RBAC method")
        request = request_class(method).FromString(payload)
        try:
            async with self._lock:
                response, version = await handler(request, db_name or "default", caller)
        except MilvusError as exc:
            return error_response(method, exc.to_status()).SerializeToString(), 0
        return response.SerializeToString(), version

    # --- credentials ---------------------------------------------------------------------------

    async def create_credential(self, req: milvus_pb2.CreateCredentialRequest, db: str, caller: str) -> tuple[Any, int]:
        check_username(req.username)
        password = _decode_password(req.password)
        check_password(password)
        hashed = await asyncio.to_thread(hash_password, password)
        return OK, await asyncio.to_thread(self.rbac.put_user, req.username, hashed, True)

    async def update_credential(self, req: milvus_pb2.UpdateCredentialRequest, db: str, caller: str) -> tuple[Any, int]:
        check_username(req.username)
        old, new = _decode_password(req.oldPassword), _decode_password(req.newPassword)
        check_password(new)
        stored = self.rbac.password_hash(req.username)
        if stored is None or not await asyncio.to_thread(bcrypt.checkpw, old.encode(), stored.encode()):
            raise MilvusError(NOT_AUTHENTICATED, f"old password not correct for {req.username}: not authenticated")
        hashed = await asyncio.to_thread(hash_password, new)
        return OK, await asyncio.to_thread(self.rbac.put_user, req.username, hashed, False)

    async def delete_credential(self, req: milvus_pb2.DeleteCredentialRequest, db: str, caller: str) -> tuple[Any, int]:
        if req.username == ROOT:
            raise MilvusError(PRIVILEGE_NOT_PERMITTED, "root user cannot be deleted: privilege not permitted")
        return OK, await asyncio.to_thread(self.rbac.delete_user, req.username)

    async def list_cred_users(self, req: milvus_pb2.ListCredUsersRequest, db: str, caller: str) -> tuple[Any, int]:
        state = self.rbac.state()
        return milvus_pb2.ListCredUsersResponse(status=OK, usernames=[u.name for u in state.users]), 0

    # --- roles ---------------------------------------------------------------------------------

    async def create_role(self, req: milvus_pb2.CreateRoleRequest, db: str, caller: str) -> tuple[Any, int]:
        check_role_name(req.entity.name)
        return OK, await asyncio.to_thread(self.rbac.create_role, req.entity.name)

    async def drop_role(self, req: milvus_pb2.DropRoleRequest, db: str, caller: str) -> tuple[Any, int]:
        check_role_name(req.role_name)
        if req.role_name in BUILTIN_ROLES:
            raise MilvusError(
                PRIVILEGE_NOT_PERMITTED,
                f"the role[{req.role_name}] is a default role, which can't be dropped: privilege not permitted",
            )
        return OK, await asyncio.to_thread(self.rbac.drop_role, req.role_name)

    async def operate_user_role(self, req: milvus_pb2.OperateUserRoleRequest, db: str, caller: str) -> tuple[Any, int]:
        check_username(req.username)
        check_role_name(req.role_name)
        state = self.rbac.state()
        add = req.type == milvus_pb2.AddUserToRole
        if req.role_name not in state.roles:
            raise MilvusError(errors.UNEXPECTED, NO_ROLE, LEGACY_OPERATE_USER_ROLE)
        if add and all(u.name != req.username for u in state.users):  # Milvus checks the user only when adding
            raise MilvusError(errors.UNEXPECTED, NO_USER, LEGACY_OPERATE_USER_ROLE)
        return OK, await asyncio.to_thread(self.rbac.bind, req.username, req.role_name, add)

    async def select_role(self, req: milvus_pb2.SelectRoleRequest, db: str, caller: str) -> tuple[Any, int]:
        state = self.rbac.state()
        names = list(state.roles)
        if req.role.name:
            check_role_name(req.role.name)
            if req.role.name not in names:
                return milvus_pb2.SelectRoleResponse(status=OK), 0
            names = [req.role.name]
        out = milvus_pb2.SelectRoleResponse(status=OK)
        for name in names:
            result = out.results.add(role=milvus_pb2.RoleEntity(name=name))
            if req.include_user_info:
                result.users.extend(milvus_pb2.UserEntity(name=u.name) for u in state.users if name in u.roles)
        return out, 0

    async def select_user(self, req: milvus_pb2.SelectUserRequest, db: str, caller: str) -> tuple[Any, int]:
        state = self.rbac.state()
        users = list(state.users)
        if req.user.name:
            check_username(req.user.name)
            users = [u for u in users if u.name == req.user.name]
            if not users:
                return milvus_pb2.SelectUserResponse(status=OK), 0
        out = milvus_pb2.SelectUserResponse(status=OK)
        for u in users:
            result = out.results.add(user=milvus_pb2.UserEntity(name=u.name))
            if req.include_role_info:
                result.roles.extend(milvus_pb2.RoleEntity(name=r) for r in u.roles)
        return out, 0

    # --- grants --------------------------------------------------------------------------------

    async def operate_privilege(self, req: milvus_pb2.OperatePrivilegeRequest, db: str, caller: str) -> tuple[Any, int]:
        e = req.entity
        if not e.object.name:
            raise MilvusError(errors.UNEXPECTED, "the object entity in the request is nil or invalid")
        if not e.object_name:
            raise MilvusError(errors.UNEXPECTED, "the object name in the grant entity is empty")
        check_role_name(e.role.name)
        if not e.grantor.privilege.name:
            raise MilvusError(errors.UNEXPECTED, "the privilege name in the privilege entity is empty")
        if e.object.name not in OBJECT_PRIVILEGES:
            # 2.3.5 lists the types in Go's map order (random); sorted here
            raise MilvusError(
                errors.UNEXPECTED,
                f"not found the object type[name: {e.object.name}], supported the object types: "
                f"[{' '.join(sorted(OBJECT_PRIVILEGES))}]",
                LEGACY_OPERATE_PRIVILEGE,
            )
        privilege = privilege_name(e.grantor.privilege.name)
        if privilege not in OBJECT_PRIVILEGES[e.object.name]:
            raise MilvusError(
                errors.UNEXPECTED, f"not found the privilege name[{e.grantor.privilege.name}]", LEGACY_OPERATE_PRIVILEGE
            )
        if not self.rbac.has_role(e.role.name):
            raise MilvusError(errors.UNEXPECTED, NO_ROLE, LEGACY_OPERATE_PRIVILEGE)
        grant = meta_pb2.AuthGrant(role=e.role.name, object_type=e.object.name, object_name=e.object_name,
                                   privilege=privilege, db_name=e.db_name or db, grantor=caller or ROOT)  # fmt: skip
        add = req.type == milvus_pb2.Grant
        return OK, await asyncio.to_thread(self.rbac.grant, grant, add)

    async def select_grant(self, req: milvus_pb2.SelectGrantRequest, db: str, caller: str) -> tuple[Any, int]:
        e = req.entity
        check_role_name(e.role.name)
        state = self.rbac.state()
        if e.role.name not in state.roles:
            raise MilvusError(errors.UNEXPECTED, NO_ROLE, LEGACY_SELECT_GRANT)
        out = milvus_pb2.SelectGrantResponse(status=OK)
        for g in state.grants:
            if g.role != e.role.name or (e.object.name and g.object_type != e.object.name):
                continue
            if e.object_name and g.object_name != e.object_name:
                continue
            if g.db_name not in (e.db_name or db, ANY):
                continue
            out.entities.add(
                role=milvus_pb2.RoleEntity(name=g.role),
                object=milvus_pb2.ObjectEntity(name=g.object_type),
                object_name=g.object_name,
                db_name=g.db_name,
                grantor=milvus_pb2.GrantorEntity(
                    user=milvus_pb2.UserEntity(name=g.grantor), privilege=milvus_pb2.PrivilegeEntity(name=g.privilege)
                ),
            )
        return out, 0
