"""The calls of the auth parity suite, run the same way against the router and a Milvus 2.3.5.

Every call goes over a raw gRPC stub with the `authorization` metadata pymilvus sends, so
that what comes back is compared as it is on the wire: the gRPC status code and details
when the server refuses the call before any handler runs, else the response's status and
the parts of the response a client reads.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2

ROOT = "root:Milvus"
DIM = 4
OUTCOMES = list[tuple[str, str, Any]]


def metadata(token: str | None, raw: str | None = None) -> list[tuple[str, str]]:
    """pymilvus's headers: base64 of `user:password`, no prefix; `raw` sends a value as it is."""
    if raw is not None:
        return [("authorization", raw)]
    if token is None:
        return []
    return [("authorization", base64.b64encode(token.encode()).decode())]


def b64(password: str) -> str:
    return base64.b64encode(password.encode()).decode()


def collection_schema(name: str) -> bytes:
    schema = schema_pb2.CollectionSchema(
        name=name,
        fields=[
            schema_pb2.FieldSchema(name="id", data_type=schema_pb2.DataType.Int64, is_primary_key=True),
            schema_pb2.FieldSchema(
                name="v",
                data_type=schema_pb2.DataType.FloatVector,
                type_params=[common_pb2.KeyValuePair(key="dim", value=str(DIM))],
            ),
        ],
    )
    return schema.SerializeToString()


def insert_request(collection: str, ids: Sequence[int]) -> milvus_pb2.InsertRequest:
    vectors = [float(i % 7) + 0.5 * j for i in ids for j in range(DIM)]
    return milvus_pb2.InsertRequest(
        collection_name=collection,
        num_rows=len(ids),
        fields_data=[
            schema_pb2.FieldData(
                field_name="id", type=schema_pb2.DataType.Int64, scalars=schema_pb2.ScalarField(long_data={"data": ids})
            ),
            schema_pb2.FieldData(
                field_name="v",
                type=schema_pb2.DataType.FloatVector,
                vectors=schema_pb2.VectorField(dim=DIM, float_vector={"data": vectors}),
            ),
        ],
    )


def search_request(collection: str) -> milvus_pb2.SearchRequest:
    from pymilvus.client.prepare import Prepare

    return Prepare.search_requests_with_expr(
        collection,
        "v",
        {"metric_type": "L2", "params": {}},
        3,
        data=[[0.5, 1.0, 1.5, 2.0]],
        output_fields=["id"],
        consistency_level=common_pb2.ConsistencyLevel.Strong,
    )


def summary(method: str, resp: Any) -> Any:
    """What a client reads of a response: its status, and the fields the suite compares."""
    st = resp.status if hasattr(resp, "status") else resp
    if st.code or st.error_code:
        return ("status", st.code, st.error_code, st.reason)
    if method == "Search":
        return ("ok", list(resp.results.ids.int_id.data), list(resp.results.topks))
    if method == "ListCredUsers":
        return ("ok", sorted(resp.usernames))
    if method == "SelectRole":
        return ("ok", sorted((r.role.name, sorted(u.name for u in r.users)) for r in resp.results))
    if method == "SelectUser":
        return ("ok", sorted((r.user.name, sorted(x.name for x in r.roles)) for r in resp.results))
    if method == "SelectGrant":
        return (
            "ok",
            sorted(
                (e.role.name, e.object.name, e.object_name, e.grantor.privilege.name, e.db_name) for e in resp.entities
            ),
        )
    if method == "Insert":
        return ("ok", list(resp.IDs.int_id.data))
    return ("ok",)


class Caller:
    """Calls one server as one identity and records each answer under a label."""

    def __init__(self, stub: milvus_pb2_grpc.MilvusServiceStub, md: list[tuple[str, str]], who: str) -> None:
        self.stub, self.md, self.who = stub, md, who
        self.outcomes: OUTCOMES = []

    def __call__(self, label: str, method: str, request: Any) -> Any:
        try:
            resp = getattr(self.stub, method)(request, metadata=self.md, timeout=30)
        except grpc.RpcError as exc:
            result: Any = ("grpc", exc.code().name, exc.details())
        else:
            result = summary(method, resp)
        self.outcomes.append((self.who, label, result))
        return result


def setup(root: Caller, c1: str, c2: str) -> None:
    """Two collections with rows, a user with no role, a user whose role may search c1 only."""
    for name in (c1, c2):
        root("setup create " + name, "CreateCollection",
             milvus_pb2.CreateCollectionRequest(collection_name=name, schema=collection_schema(name), shards_num=2))  # fmt: skip
        root("setup insert " + name, "Insert", insert_request(name, [1, 2, 3, 4]))
        root("setup index " + name, "CreateIndex", milvus_pb2.CreateIndexRequest(
            collection_name=name, field_name="v",
            extra_params=[common_pb2.KeyValuePair(key="index_type", value="FLAT"),
                          common_pb2.KeyValuePair(key="metric_type", value="L2")]))  # fmt: skip
        root("setup load " + name, "LoadCollection", milvus_pb2.LoadCollectionRequest(collection_name=name))
    root(
        "create alice",
        "CreateCredential",
        milvus_pb2.CreateCredentialRequest(username="alice", password=b64("alice-pw")),
    )
    root("create bob", "CreateCredential", milvus_pb2.CreateCredentialRequest(username="bob", password=b64("bob-pw1")))
    root(
        "create role searcher",
        "CreateRole",
        milvus_pb2.CreateRoleRequest(entity=milvus_pb2.RoleEntity(name="searcher")),
    )
    root("grant search c1", "OperatePrivilege", grant("searcher", "Collection", c1, "Search"))
    root("bind bob", "OperateUserRole",
         milvus_pb2.OperateUserRoleRequest(username="bob", role_name="searcher", type=milvus_pb2.AddUserToRole))  # fmt: skip


def grant(role: str, object_type: str, name: str, privilege: str, revoke: bool = False) -> Any:
    return milvus_pb2.OperatePrivilegeRequest(
        entity=milvus_pb2.GrantEntity(
            role=milvus_pb2.RoleEntity(name=role),
            object=milvus_pb2.ObjectEntity(name=object_type),
            object_name=name,
            grantor=milvus_pb2.GrantorEntity(privilege=milvus_pb2.PrivilegeEntity(name=privilege)),
        ),
        type=milvus_pb2.Revoke if revoke else milvus_pb2.Grant,
    )


def data_calls(call: Caller, c1: str, c2: str) -> None:
    """Search, insert and drop, as every identity tries them."""
    call("search c1", "Search", search_request(c1))
    call("search c2", "Search", search_request(c2))
    call("query c1", "Query", milvus_pb2.QueryRequest(collection_name=c1, expr="id > 0", output_fields=["id"]))
    call("insert c1", "Insert", insert_request(c1, [10]))
    call("describe c1", "DescribeCollection", milvus_pb2.DescribeCollectionRequest(collection_name=c1))
    call("has c2", "HasCollection", milvus_pb2.HasCollectionRequest(collection_name=c2))
    call("drop c2", "DropCollection", milvus_pb2.DropCollectionRequest(collection_name=c2))


def rbac_calls(call: Caller, me: str) -> None:
    """The RBAC RPCs themselves, as every identity tries them."""
    call("list users", "ListCredUsers", milvus_pb2.ListCredUsersRequest())
    call("select role public", "SelectRole",
         milvus_pb2.SelectRoleRequest(role=milvus_pb2.RoleEntity(name="public"), include_user_info=True))  # fmt: skip
    call("select roles", "SelectRole", milvus_pb2.SelectRoleRequest(include_user_info=True))
    call(
        "select me",
        "SelectUser",
        milvus_pb2.SelectUserRequest(user=milvus_pb2.UserEntity(name=me), include_role_info=True),
    )
    call("select users", "SelectUser", milvus_pb2.SelectUserRequest(include_role_info=True))
    call("grants public", "SelectGrant",
         milvus_pb2.SelectGrantRequest(entity=milvus_pb2.GrantEntity(role=milvus_pb2.RoleEntity(name="public"))))  # fmt: skip
    call("grants searcher", "SelectGrant",
         milvus_pb2.SelectGrantRequest(entity=milvus_pb2.GrantEntity(role=milvus_pb2.RoleEntity(name="searcher"))))  # fmt: skip
    call("create user carol", "CreateCredential",
         milvus_pb2.CreateCredentialRequest(username="carol", password=b64("carol-pw")))  # fmt: skip
    call("create role r2", "CreateRole", milvus_pb2.CreateRoleRequest(entity=milvus_pb2.RoleEntity(name="r2")))
    call("grant r2", "OperatePrivilege", grant("r2", "Global", "*", "DescribeCollection"))


def validation_calls(root: Caller) -> None:
    """Root's mistakes: each gets 2.3.5's code and message."""
    cc = milvus_pb2.CreateCredentialRequest
    root("user empty", "CreateCredential", cc(username="", password=b64("password")))
    root("user digit", "CreateCredential", cc(username="1abc", password=b64("password")))
    root("user long", "CreateCredential", cc(username="u" * 33, password=b64("password")))
    root("user dash", "CreateCredential", cc(username="a-b", password=b64("password")))
    root("pw short", "CreateCredential", cc(username="dave", password=b64("12345")))
    root("pw long", "CreateCredential", cc(username="dave", password=b64("x" * 257)))
    root("pw not b64", "CreateCredential", cc(username="dave", password="%%%"))
    root("user exists", "CreateCredential", cc(username="alice", password=b64("alice-pw")))
    root("delete root", "DeleteCredential", milvus_pb2.DeleteCredentialRequest(username="root"))
    root("delete nobody", "DeleteCredential", milvus_pb2.DeleteCredentialRequest(username="nobody"))
    uc = milvus_pb2.UpdateCredentialRequest
    root(
        "update wrong old",
        "UpdateCredential",
        uc(username="alice", oldPassword=b64("nope12"), newPassword=b64("new-pw1")),
    )
    root(
        "update nobody",
        "UpdateCredential",
        uc(username="nobody", oldPassword=b64("nope12"), newPassword=b64("new-pw1")),
    )
    root("update short", "UpdateCredential", uc(username="alice", oldPassword=b64("alice-pw"), newPassword=b64("123")))
    role = milvus_pb2.RoleEntity
    root("role admin", "CreateRole", milvus_pb2.CreateRoleRequest(entity=role(name="admin")))
    root("role bad", "CreateRole", milvus_pb2.CreateRoleRequest(entity=role(name="1r")))
    root("role empty", "CreateRole", milvus_pb2.CreateRoleRequest(entity=role(name="")))
    root("drop admin", "DropRole", milvus_pb2.DropRoleRequest(role_name="admin"))
    root("drop public", "DropRole", milvus_pb2.DropRoleRequest(role_name="public"))
    root("drop missing", "DropRole", milvus_pb2.DropRoleRequest(role_name="missing"))
    our = milvus_pb2.OperateUserRoleRequest
    root("bind nobody", "OperateUserRole", our(username="nobody", role_name="searcher", type=milvus_pb2.AddUserToRole))
    root("bind missing", "OperateUserRole", our(username="alice", role_name="missing", type=milvus_pb2.AddUserToRole))
    root("unbind unbound", "OperateUserRole",
         our(username="alice", role_name="searcher", type=milvus_pb2.RemoveUserFromRole))  # fmt: skip
    root("grant bad privilege", "OperatePrivilege", grant("searcher", "Collection", "*", "Fly"))
    root("grant wrong object", "OperatePrivilege", grant("searcher", "Global", "*", "Search"))
    root("grant bad object", "OperatePrivilege", grant("searcher", "Galaxy", "*", "Search"))
    root("grant missing role", "OperatePrivilege", grant("missing", "Collection", "*", "Search"))
    root("revoke absent", "OperatePrivilege", grant("searcher", "Collection", "*", "Query", revoke=True))
    root("grants missing", "SelectGrant",
         milvus_pb2.SelectGrantRequest(entity=milvus_pb2.GrantEntity(role=role(name="missing"))))  # fmt: skip
    root("select missing role", "SelectRole", milvus_pb2.SelectRoleRequest(role=role(name="missing")))
    root("select missing user", "SelectUser", milvus_pb2.SelectUserRequest(user=milvus_pb2.UserEntity(name="nobody")))
    root("alice role twice", "OperateUserRole",
         our(username="bob", role_name="searcher", type=milvus_pb2.AddUserToRole))  # fmt: skip


def cleanup(root: Caller, c1: str, c2: str) -> None:
    for name in (c1, c2):
        root("cleanup drop " + name, "DropCollection", milvus_pb2.DropCollectionRequest(collection_name=name))
    for user in ("alice", "bob", "carol"):
        root("cleanup user " + user, "DeleteCredential", milvus_pb2.DeleteCredentialRequest(username=user))
    root("cleanup revoke", "OperatePrivilege", grant("searcher", "Collection", c1, "Search", revoke=True))
    root("cleanup revoke r2", "OperatePrivilege", grant("r2", "Global", "*", "DescribeCollection", revoke=True))
    for r in ("searcher", "r2"):
        root("cleanup role " + r, "DropRole", milvus_pb2.DropRoleRequest(role_name=r))


def run(address: str, c1: str = "auth_c1", c2: str = "auth_c2") -> OUTCOMES:
    """Every identity's calls against the server at `address`; the outcomes in call order."""
    with grpc.insecure_channel(address) as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        callers: dict[str, Caller] = {}

        def caller(who: str, md: list[tuple[str, str]]) -> Caller:
            callers[who] = Caller(stub, md, who)
            return callers[who]

        root = caller("root", metadata(ROOT))
        cleanup(Caller(stub, metadata(ROOT), "pre"), c1, c2)  # a previous run's leftovers
        setup(root, c1, c2)
        for who, md in (
            ("none", metadata(None)),
            ("not base64", metadata(None, raw="%%%not-base64")),
            ("no colon", metadata("rootMilvus")),
            ("wrong password", metadata("root:wrong")),
            ("unknown user", metadata("ghost:whatever")),
        ):
            c = caller(who, md)
            c("connect", "Connect", milvus_pb2.ConnectRequest())
            c("version", "GetVersion", milvus_pb2.GetVersionRequest())
            c("health", "CheckHealth", milvus_pb2.CheckHealthRequest())
            c("search c1", "Search", search_request(c1))
            c("list users", "ListCredUsers", milvus_pb2.ListCredUsersRequest())
        data_calls(root, c1, c2)
        rbac_calls(root, "root")
        validation_calls(root)
        root("recreate c2", "CreateCollection",
             milvus_pb2.CreateCollectionRequest(collection_name=c2, schema=collection_schema(c2), shards_num=2))  # fmt: skip
        for who, token in (("alice (no role)", "alice:alice-pw"), ("bob (search c1)", "bob:bob-pw1")):
            c = caller(who, metadata(token))
            data_calls(c, c1, c2)
            rbac_calls(c, token.split(":")[0])
            uc = milvus_pb2.UpdateCredentialRequest
            me, pw = token.split(":")
            c(
                "update own password",
                "UpdateCredential",
                uc(username=me, oldPassword=b64(pw), newPassword=b64(pw + "2")),
            )
            c("old password", "ListCredUsers", milvus_pb2.ListCredUsersRequest())
            caller(who + " new pw", metadata(f"{me}:{pw}2"))("new password", "ShowCollections",
                                                               milvus_pb2.ShowCollectionsRequest())  # fmt: skip
        root("remove bob from role", "OperateUserRole",
             milvus_pb2.OperateUserRoleRequest(username="bob", role_name="searcher", type=milvus_pb2.RemoveUserFromRole))  # fmt: skip
        caller("bob unbound", metadata("bob:bob-pw12"))("search c1", "Search", search_request(c1))
        root("delete alice", "DeleteCredential", milvus_pb2.DeleteCredentialRequest(username="alice"))
        caller("alice deleted", metadata("alice:alice-pw2"))("search c1", "Search", search_request(c1))
        c = caller("unimplemented", metadata(None))  # newer than 2.3.5: unknown there, credentials or not
        c("alter role", "AlterRole", milvus_pb2.AlterRoleRequest(role_name="searcher"))
        c(
            "privilege v2",
            "OperatePrivilegeV2",
            milvus_pb2.OperatePrivilegeV2Request(role=milvus_pb2.RoleEntity(name="x")),
        )
        c("backup", "BackupRBAC", milvus_pb2.BackupRBACMetaRequest())
        c("privilege group", "CreatePrivilegeGroup", milvus_pb2.CreatePrivilegeGroupRequest(group_name="g"))
        cleanup(root, c1, c2)
        return [o for c in callers.values() for o in c.outcomes]


def show(outcomes: OUTCOMES, out: Callable[[str], None] = print) -> None:
    for who, label, result in outcomes:
        out(f"{who:>18} | {label:<24} | {result}")
