"""Authentication and privilege checks on every MilvusService call, as Milvus 2.3.5's proxy makes them.

A client sends `authorization` metadata: base64 of `user:password`, no prefix (pymilvus's
`token="user:password"`, or `user=` with `password=`). With AUTHORIZATION_ENABLED the router
refuses the call before any handler runs, with the gRPC status Milvus's interceptors give,
unless the credential is right and one of the user's roles (or public) holds the privilege the
method needs. Users, roles and grants come from meta (`GetAuthState`); the cache is refetched
when the catalog feed shows a new auth version, and a verified password is remembered (by its
SHA-256) until then, so bcrypt runs once per credential and change, not per call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import bcrypt
import grpc

from mishards.common.milvus_messages import response_class
from mishards.common.rbac import ROLE_PUBLIC, ROOT, Grant, Requirement, permits, requirements
from mishards.router.meta_client import MetaClient
from mishards.v1 import meta_pb2

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/milvus.proto.milvus.MilvusService/"
# The authenticated user of the call being served ("" when authorization is off).
CURRENT_USER: contextvars.ContextVar[str] = contextvars.ContextVar("mishards_user", default="")
MAX_VERIFIED = 10_000  # remembered credentials; the set is emptied when it grows past this

# Milvus 2.3.5's answers (internal/proxy/authentication_interceptor.go, privilege_interceptor.go).
MISSING = "missing authorization in header"
BAD_FORMAT = "invalid token format"
BAD_CREDENTIAL = "auth check failure, please check username and password are correct"
BAD_API_KEY = "auth check failure, please check api key is correct"


class AuthFailure(Exception):
    """A call refused before its handler: the gRPC status code and details the client gets."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def credentials_of(metadata: Sequence[tuple[str, Any]] | None) -> tuple[str, str]:
    """(user, password) from the `authorization` metadata; AuthFailure as Milvus words it."""
    value = next((v for k, v in metadata or () if k == "authorization"), None)
    if value is None:
        raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, MISSING)
    try:
        raw = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, BAD_FORMAT) from None
    user, sep, password = raw.partition(":")
    if not sep:  # Milvus 2.3.5 takes a token without a colon for an API key, and has none
        raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, BAD_API_KEY)
    return user, password


class AuthCache:
    """Users, roles and grants as meta last reported them, with the credentials verified since."""

    def __init__(self, meta: MetaClient) -> None:
        self.meta = meta
        self.version = -1
        self.hashes: dict[str, str] = {}
        self.roles: dict[str, list[str]] = {}
        self.grants: list[Grant] = []
        self._verified: set[tuple[str, bytes]] = set()
        self._lock = asyncio.Lock()

    def install(self, state: meta_pb2.AuthState) -> None:
        """Take a new state; every remembered credential is forgotten (a password may have changed)."""
        self.hashes = {u.name: u.password_hash for u in state.users}
        self.roles = {u.name: list(u.roles) for u in state.users}
        self.grants = [Grant(g.role, g.object_type, g.object_name, g.privilege, g.db_name) for g in state.grants]
        self._verified = set()
        self.version = state.version

    async def refresh(self, at_least: int = 0) -> None:
        """Fetch the state unless the cache already holds version `at_least` or newer."""
        async with self._lock:
            if at_least and self.version >= at_least:
                return
            self.install(await self.meta.auth_state())

    async def on_catalog(self, catalog: meta_pb2.Catalog) -> None:
        """The catalog feed moved: refetch when it carries a newer auth version."""
        if catalog.auth_version != self.version:
            await self.refresh(catalog.auth_version)

    async def authenticate(self, metadata: Sequence[tuple[str, Any]] | None) -> str:
        """The user the call's credential proves; AuthFailure when it proves none."""
        user, password = credentials_of(metadata)
        key = (user, hashlib.sha256(password.encode()).digest())
        if key in self._verified:
            return user
        stored = self.hashes.get(user)
        version = self.version
        if stored is None or not await asyncio.to_thread(_bcrypt_ok, password, stored):
            raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, BAD_CREDENTIAL)
        if self.version == version:  # not verified against a state replaced meanwhile
            if len(self._verified) >= MAX_VERIFIED:
                self._verified = set()
            self._verified.add(key)
        return user

    def authorize(self, user: str, method: str, request: Any, db_name: str) -> None:
        """Nothing when `user` may call `method` with `request` in `db_name`; AuthFailure otherwise."""
        need = requirements().get(method)
        if need is None or user == ROOT:
            return
        names = need.object_names(request)
        if need.object_type == "User" and names == [user]:
            return  # a user may always read and update itself
        roles = [*self.roles.get(user, []), ROLE_PUBLIC]
        if method == "SelectGrant" and request.entity.role.name in roles:
            return  # and read the grants of its own roles
        if any(self._role_permits(role, need, names, db_name) for role in roles):
            return
        raise AuthFailure(
            grpc.StatusCode.PERMISSION_DENIED,
            f"{_api_privilege(need)}: permission deny to {user}",
        )

    def _role_permits(self, role: str, need: Requirement, names: list[str], db_name: str) -> bool:
        if not names:
            return False
        return all(permits(self.grants, role, need.object_type, n, need.privilege, db_name) for n in names)


def _api_privilege(need: Requirement) -> str:
    return "Privilege" + need.privilege


def _bcrypt_ok(password: str, stored: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), stored.encode())
    except ValueError:
        return False


def _db_of(request: Any, metadata: Sequence[tuple[str, Any]] | None) -> str:
    name = getattr(request, "db_name", "")
    if name:
        return str(name)
    return next((str(v) for k, v in metadata or () if k == "dbname" and v), "default")


Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates and authorizes every MilvusService call before its handler, as Milvus's
    AuthenticationInterceptor and PrivilegeInterceptor do; other services pass untouched."""

    def __init__(self, cache: AuthCache) -> None:
        self.cache = cache

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        return self.wrap(str(details.method), handler)

    def wrap(self, method_path: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler with authentication and privileges in front (a `wire.Layer`, for wrapping at registration)."""
        if not method_path.startswith(SERVICE_PREFIX):
            return handler
        method = method_path[len(SERVICE_PREFIX) :]
        if method in UNIMPLEMENTED_RBAC:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._guard(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await self._check(method, request, context)
                async for item in inner(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _guard(self, method: str, inner: Behavior) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            user = await self._check(method, request, context)
            token = CURRENT_USER.set(user)
            try:
                return await inner(request, context)
            finally:
                CURRENT_USER.reset(token)

        return behavior

    async def _check(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> str:
        metadata = context.invocation_metadata()
        try:
            user = await self.cache.authenticate(metadata)
            self.cache.authorize(user, method, request, _db_of(request, metadata))
        except AuthFailure as exc:
            log.info("%s refused: %s", method, exc.details)
            await context.abort(exc.code, exc.details)
        return user


# --- the credential and RBAC RPCs: meta answers them --------------------------------------------


# RBAC RPCs newer than Milvus 2.3.5: it has no handler for them, so gRPC answers UNIMPLEMENTED
# before any interceptor runs (credentials or not), and so does the router.
UNIMPLEMENTED_RBAC = frozenset(
    {
        "AlterRole",
        "OperatePrivilegeV2",
        "BackupRBAC",
        "RestoreRBAC",
        "CreatePrivilegeGroup",
        "DropPrivilegeGroup",
        "ListPrivilegeGroups",
        "OperatePrivilegeGroup",
        "AddUserTags",
        "DeleteUserTags",
        "GetUserTags",
        "ListUsersWithTag",
    }
)


async def hand_rbac_to_meta(meta: MetaClient, cache: AuthCache, method: str, request: Any, db_name: str) -> Any:
    """Run a credential or RBAC method on meta; this router's cache holds the change before the client hears back."""
    answer = await meta.execute_rbac(method, request, db_name, CURRENT_USER.get())
    if answer.auth_version:
        await cache.refresh(answer.auth_version)
    return response_class(method).FromString(answer.response)
