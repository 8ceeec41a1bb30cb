"""Meta's credential and RBAC RPCs: Milvus 2.3.5's checks, codes and messages (as a 2.3.5
answered them in tests/integration/test_auth_parity.py), over a real SQLite store."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from mishards.common.milvus_messages import response_class
from mishards.meta import rbac as rbac_module
from mishards.meta.rbac import RbacExecutor, RbacStore, hash_password
from mishards.meta.store import Store


@pytest.fixture
def rbac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RbacExecutor:
    monkeypatch.setattr(rbac_module, "BCRYPT_COST", 4)  # fast hashes; Milvus's cost is checked below
    store = Store(f"sqlite:///{tmp_path}/meta.db")
    store.migrate()
    rbac = RbacStore(store)
    rbac.bootstrap("Milvus")
    return RbacExecutor(rbac)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def call(executor: RbacExecutor, method: str, request: Any, caller: str = "root") -> tuple[Any, int]:
    payload, version = asyncio.run(executor.execute(method, request.SerializeToString(), "default", caller))
    return response_class(method).FromString(payload), version


def status_of(response: Any) -> tuple[int, int, str]:
    st = response if isinstance(response, common_pb2.Status) else response.status
    return st.code, st.error_code, st.reason


def test_hashes_are_bcrypt_as_milvus_stores_them() -> None:
    hashed = hash_password("Milvus")
    assert hashed.startswith("$2a$10$") and bcrypt.checkpw(b"Milvus", hashed.encode())


def test_root_is_created_once(rbac: RbacExecutor) -> None:
    state = rbac.rbac.state()
    root = next(u for u in state.users if u.name == "root")
    assert root.password_hash.startswith("$2a$")
    assert bcrypt.checkpw(b"Milvus", root.password_hash.encode())
    assert list(state.roles) == ["admin", "public"]
    rbac.rbac.bootstrap("other")  # a restart with another ROOT_PASSWORD keeps the stored one
    again = next(u for u in rbac.rbac.state().users if u.name == "root")
    assert again.password_hash == root.password_hash
    assert sorted((g.object_type, g.privilege, g.db_name) for g in state.grants) == [
        ("Collection", "IndexDetail", "*"),
        ("Global", "DescribeCollection", "*"),
        ("Global", "ShowCollections", "*"),
    ]


@pytest.mark.parametrize(
    ("username", "password", "expected"),
    [
        ("", b64("password"), (1100, 5, "username must be not empty: invalid parameter")),
        ("1abc", b64("password"), (1100, 5, "invalid user name 1abc, the first character must be a letter, "
                                              "but got %!s(uint8=49): invalid parameter")),
        ("a-b", b64("password"), (1100, 5, "invalid user name a-b, username must contain only numbers, letters "
                                             "and underscores, but got %!s(uint8=45): invalid parameter")),
        ("dave", b64("12345"), (1100, 5, "invalid password length: invalid parameter[5 out of range 6 <= value <= 256]")),
        ("dave", "%%%", (65535, 1, "decode password fail: illegal base64 data at input byte 0")),
    ],
)  # fmt: skip
def test_create_credential_checks_as_milvus(
    rbac: RbacExecutor, username: str, password: str, expected: tuple[int, int, str]
) -> None:
    response, version = call(
        rbac, "CreateCredential", milvus_pb2.CreateCredentialRequest(username=username, password=password)
    )
    assert status_of(response) == expected and version == 0


def test_credentials_roles_and_grants_round_trip(rbac: RbacExecutor) -> None:
    before = rbac.rbac.version()
    _, version = call(
        rbac, "CreateCredential", milvus_pb2.CreateCredentialRequest(username="alice", password=b64("alice-pw"))
    )
    assert version == before + 1
    again, _ = call(
        rbac, "CreateCredential", milvus_pb2.CreateCredentialRequest(username="alice", password=b64("alice-pw"))
    )
    assert status_of(again) == (65535, common_pb2.CreateCredentialFailure, "user already exists: alice")
    wrong, _ = call(rbac, "UpdateCredential", milvus_pb2.UpdateCredentialRequest(
        username="alice", oldPassword=b64("nope12"), newPassword=b64("new-pw1")))  # fmt: skip
    assert status_of(wrong) == (1400, 1, "old password not correct for alice: not authenticated")
    call(rbac, "CreateRole", milvus_pb2.CreateRoleRequest(entity=milvus_pb2.RoleEntity(name="searcher")))
    call(rbac, "OperateUserRole", milvus_pb2.OperateUserRoleRequest(username="alice", role_name="searcher"))
    grant = milvus_pb2.GrantEntity(
        role=milvus_pb2.RoleEntity(name="searcher"), object=milvus_pb2.ObjectEntity(name="Collection"),
        object_name="c1", grantor=milvus_pb2.GrantorEntity(privilege=milvus_pb2.PrivilegeEntity(name="Search")))  # fmt: skip
    granted, _ = call(rbac, "OperatePrivilege", milvus_pb2.OperatePrivilegeRequest(entity=grant, type=milvus_pb2.Grant))
    assert status_of(granted) == (0, 0, "")
    grants, _ = call(rbac, "SelectGrant", milvus_pb2.SelectGrantRequest(entity=milvus_pb2.GrantEntity(role=grant.role)))
    assert [(e.object.name, e.object_name, e.grantor.privilege.name, e.db_name, e.grantor.user.name)
            for e in grants.entities] == [("Collection", "c1", "Search", "default", "root")]  # fmt: skip
    users, _ = call(rbac, "SelectUser", milvus_pb2.SelectUserRequest(include_role_info=True))
    assert [(r.user.name, [x.name for x in r.roles]) for r in users.results] == [("alice", ["searcher"]), ("root", [])]
    bad = grant.__deepcopy__()
    bad.grantor.privilege.name = "Fly"
    refused, _ = call(rbac, "OperatePrivilege", milvus_pb2.OperatePrivilegeRequest(entity=bad, type=milvus_pb2.Grant))
    assert status_of(refused) == (65535, common_pb2.OperatePrivilegeFailure, "not found the privilege name[Fly]")
    dropped, _ = call(rbac, "DropRole", milvus_pb2.DropRoleRequest(role_name="searcher"))
    assert status_of(dropped) == (0, 0, "")
    state = rbac.rbac.state()
    assert not [g for g in state.grants if g.role == "searcher"]
    assert all(not u.roles for u in state.users)


def test_root_and_builtin_roles_stay(rbac: RbacExecutor) -> None:
    root, _ = call(rbac, "DeleteCredential", milvus_pb2.DeleteCredentialRequest(username="root"))
    assert status_of(root) == (1401, 1, "root user cannot be deleted: privilege not permitted")
    for role in ("admin", "public"):
        response, _ = call(rbac, "DropRole", milvus_pb2.DropRoleRequest(role_name=role))
        assert status_of(response) == (
            1401, 1, f"the role[{role}] is a default role, which can't be dropped: privilege not permitted")  # fmt: skip


def test_every_change_moves_the_catalog_version_too(rbac: RbacExecutor) -> None:
    catalog = rbac.rbac.store.catalog_version()
    call(rbac, "CreateRole", milvus_pb2.CreateRoleRequest(entity=milvus_pb2.RoleEntity(name="r1")))
    assert rbac.rbac.store.catalog_version() == catalog + 1  # routers following the feed refetch users and grants
    call(rbac, "SelectRole", milvus_pb2.SelectRoleRequest())
    assert rbac.rbac.store.catalog_version() == catalog + 1
