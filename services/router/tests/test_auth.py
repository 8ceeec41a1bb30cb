"""The router's authentication and privilege checks, offline: credentials as pymilvus sends them,
the privilege each method needs, and the credential cache that the catalog feed invalidates."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import bcrypt
import grpc
import pytest
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from mishards.common.rbac import Requirement, requirements
from mishards.router import auth
from mishards.router.auth import AuthCache, AuthFailure, credentials_of
from mishards.v1 import meta_pb2

HASHES = {
    name: bcrypt.hashpw(f"{name}-pw".encode(), bcrypt.gensalt(4)).decode() for name in ("root", "alice", "bob", "ann")
}


def token(text: str) -> list[tuple[str, str]]:
    return [("authorization", base64.b64encode(text.encode()).decode())]


def state(version: int, **overrides: str) -> meta_pb2.AuthState:
    hashes = {**HASHES, **overrides}
    roles = {"bob": ["searcher"], "ann": ["admin"]}
    return meta_pb2.AuthState(
        version=version,
        users=[meta_pb2.AuthUser(name=n, password_hash=h, roles=roles.get(n, [])) for n, h in hashes.items()],
        roles=["admin", "public", "searcher"],
        grants=[
            meta_pb2.AuthGrant(role="public", object_type="Global", object_name="*", privilege="DescribeCollection",
                               db_name="*"),
            meta_pb2.AuthGrant(role="searcher", object_type="Collection", object_name="c1", privilege="Search",
                               db_name="default"),
        ],
    )  # fmt: skip


class FakeMeta:
    """MetaClient's auth_state, counting calls."""

    def __init__(self, answer: meta_pb2.AuthState) -> None:
        self.answer = answer
        self.calls = 0

    async def auth_state(self) -> meta_pb2.AuthState:
        self.calls += 1
        return self.answer


def cache(version: int = 1) -> AuthCache:
    c = AuthCache(FakeMeta(state(version)))  # type: ignore[arg-type]
    asyncio.run(c.refresh())
    return c


@pytest.mark.parametrize(
    ("metadata", "code", "details"),
    [
        ([], grpc.StatusCode.UNAUTHENTICATED, "missing authorization in header"),
        ([("authorization", "%%%")], grpc.StatusCode.UNAUTHENTICATED, "invalid token format"),
        (token("rootMilvus"), grpc.StatusCode.UNAUTHENTICATED, "auth check failure, please check api key is correct"),
    ],
)
def test_malformed_credentials_are_refused_as_milvus_refuses_them(
    metadata: list[tuple[str, str]], code: grpc.StatusCode, details: str
) -> None:
    with pytest.raises(AuthFailure) as err:
        credentials_of(metadata)
    assert (err.value.code, err.value.details) == (code, details)


def test_a_token_splits_at_the_first_colon() -> None:
    assert credentials_of(token("alice:pa:ss")) == ("alice", "pa:ss")


def test_wrong_password_and_unknown_user_get_the_same_answer() -> None:
    c = cache()
    for text in ("alice:nope", "ghost:alice-pw"):
        with pytest.raises(AuthFailure) as err:
            asyncio.run(c.authenticate(token(text)))
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert err.value.details == "auth check failure, please check username and password are correct"


def test_bcrypt_runs_once_per_credential_until_the_auth_version_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[str] = []
    real = auth._bcrypt_ok

    def counting(password: str, stored: str) -> bool:
        checks.append(password)
        return real(password, stored)

    monkeypatch.setattr(auth, "_bcrypt_ok", counting)
    c = cache(version=1)
    for _ in range(3):
        assert asyncio.run(c.authenticate(token("alice:alice-pw"))) == "alice"
    assert len(checks) == 1
    catalog = meta_pb2.Catalog(version=10, auth_version=1)
    asyncio.run(c.on_catalog(catalog))  # same auth version: nothing refetched, cache kept
    asyncio.run(c.authenticate(token("alice:alice-pw")))
    assert len(checks) == 1 and c.meta.calls == 1  # type: ignore[attr-defined]
    # alice's password changes in meta: the feed carries auth version 2, the old password stops working
    c.meta.answer = state(2, alice=bcrypt.hashpw(b"new-pw1", bcrypt.gensalt(4)).decode())  # type: ignore[attr-defined]
    asyncio.run(c.on_catalog(meta_pb2.Catalog(version=11, auth_version=2)))
    assert c.version == 2
    with pytest.raises(AuthFailure):
        asyncio.run(c.authenticate(token("alice:alice-pw")))
    assert asyncio.run(c.authenticate(token("alice:new-pw1"))) == "alice"


def test_a_deleted_user_is_refused_at_once() -> None:
    c = cache(version=1)
    asyncio.run(c.authenticate(token("alice:alice-pw")))
    gone = state(2)
    del gone.users[[u.name for u in gone.users].index("alice")]
    c.meta.answer = gone  # type: ignore[attr-defined]
    asyncio.run(c.on_catalog(meta_pb2.Catalog(auth_version=2)))
    with pytest.raises(AuthFailure):
        asyncio.run(c.authenticate(token("alice:alice-pw")))


def test_privilege_mapping_comes_from_milvus_request_options() -> None:
    need = requirements()
    assert need["Search"] == Requirement("Collection", "Search", 3, 0)
    assert need["Insert"].object_names(milvus_pb2.InsertRequest(collection_name="c1")) == ["c1"]
    assert need["DropCollection"].object_type == "Global" and need["DropCollection"].privilege == "DropCollection"
    assert need["ListCredUsers"].privilege == "SelectOwnership"
    assert need["Flush"].object_names(milvus_pb2.FlushRequest(collection_names=["a", "b"])) == ["a", "b"]
    assert need["SelectUser"].object_names(milvus_pb2.SelectUserRequest(user=milvus_pb2.UserEntity(name="x"))) == ["x"]
    for free in ("Connect", "GetVersion", "CheckHealth", "HasCollection", "ShowCollections"):
        assert free not in need


def denied(c: AuthCache, user: str, method: str, request: Any, db: str = "default") -> str | None:
    try:
        c.authorize(user, method, request, db)
    except AuthFailure as exc:
        assert exc.code == grpc.StatusCode.PERMISSION_DENIED
        return exc.details
    return None


def test_grants_are_enforced_per_collection_and_database() -> None:
    c = cache()
    search = milvus_pb2.SearchRequest
    assert denied(c, "bob", "Search", search(collection_name="c1")) is None
    assert denied(c, "bob", "Search", search(collection_name="c2")) == "PrivilegeSearch: permission deny to bob"
    assert denied(c, "bob", "Search", search(collection_name="c1"), db="db1") is not None  # granted in default only
    assert denied(c, "alice", "Search", search(collection_name="c1")) == "PrivilegeSearch: permission deny to alice"
    assert denied(c, "alice", "Query", milvus_pb2.QueryRequest(collection_name="c1")) is not None
    drop = milvus_pb2.DropCollectionRequest(collection_name="c1")
    assert denied(c, "bob", "DropCollection", drop) == "PrivilegeDropCollection: permission deny to bob"


def test_root_admin_public_and_oneself_pass() -> None:
    c = cache()
    drop = milvus_pb2.DropCollectionRequest(collection_name="c1")
    assert denied(c, "root", "DropCollection", drop) is None
    assert denied(c, "ann", "DropCollection", drop) is None  # admin role
    describe = milvus_pb2.DescribeCollectionRequest(collection_name="c1")
    assert denied(c, "alice", "DescribeCollection", describe, db="db9") is None  # public, in every database
    me = milvus_pb2.SelectUserRequest(user=milvus_pb2.UserEntity(name="alice"))
    assert denied(c, "alice", "SelectUser", me) is None
    other = milvus_pb2.SelectUserRequest(user=milvus_pb2.UserEntity(name="bob"))
    assert denied(c, "alice", "SelectUser", other) == "PrivilegeSelectUser: permission deny to alice"
    own_role = milvus_pb2.SelectGrantRequest(entity=milvus_pb2.GrantEntity(role=milvus_pb2.RoleEntity(name="searcher")))
    assert denied(c, "bob", "SelectGrant", own_role) is None
    assert denied(c, "alice", "SelectGrant", own_role) == "PrivilegeSelectOwnership: permission deny to alice"
    assert denied(c, "alice", "Connect", milvus_pb2.ConnectRequest()) is None  # needs no privilege


class EchoServicer(milvus_pb2_grpc.MilvusServiceServicer):
    """Answers Search, recording who the interceptor said the caller is."""

    def __init__(self) -> None:
        self.users: list[str] = []

    async def Search(self, request: Any, context: Any) -> milvus_pb2.SearchResults:
        self.users.append(auth.CURRENT_USER.get())
        return milvus_pb2.SearchResults(collection_name=request.collection_name)


def test_the_interceptor_refuses_before_the_handler_and_names_the_user_to_it() -> None:
    servicer = EchoServicer()
    users = cache()

    async def scenario() -> list[Any]:
        server = grpc.aio.server(interceptors=[auth.AuthInterceptor(users)])
        milvus_pb2_grpc.add_MilvusServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        out: list[Any] = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = milvus_pb2_grpc.MilvusServiceStub(channel)
                for md, name in (([], "c1"), (token("bob:nope"), "c1"), (token("bob:bob-pw"), "c2"),
                                 (token("bob:bob-pw"), "c1"), (token("alice:alice-pw"), "c1")):  # fmt: skip
                    try:
                        reply = await stub.Search(milvus_pb2.SearchRequest(collection_name=name), metadata=md)
                        out.append(reply.collection_name)
                    except grpc.aio.AioRpcError as exc:
                        out.append((exc.code(), exc.details()))
                try:
                    await stub.AlterRole(milvus_pb2.AlterRoleRequest(role_name="x"))  # unknown: no credential asked
                except grpc.aio.AioRpcError as exc:
                    out.append(exc.code())
        finally:
            await server.stop(None)
        return out

    answers = asyncio.run(scenario())
    assert answers == [
        (grpc.StatusCode.UNAUTHENTICATED, "missing authorization in header"),
        (grpc.StatusCode.UNAUTHENTICATED, "auth check failure, please check username and password are correct"),
        (grpc.StatusCode.PERMISSION_DENIED, "PrivilegeSearch: permission deny to bob"),
        "c1",
        (grpc.StatusCode.PERMISSION_DENIED, "PrivilegeSearch: permission deny to alice"),
        grpc.StatusCode.UNIMPLEMENTED,
    ]
    assert servicer.users == ["bob"]
