"""The router's MetaClient: each method is one Meta RPC with its named timeout; the servicer, given
its parts, answers from them offline."""

from __future__ import annotations

import asyncio
from typing import Any

from pymilvus.grpc_gen import milvus_pb2

from mishards.router.meta_client import DDL_TIMEOUT, META_CALL_TIMEOUT, RBAC_TIMEOUT, MetaClient
from mishards.router.servicer import RouterServicer
from mishards.v1 import meta_pb2


class RecordingStub:
    """A Meta stub that records each call (method, request, keyword arguments) and answers `answers[method]`."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        async def call(request: Any, **kwargs: Any) -> Any:
            self.calls.append((method, request, kwargs))
            return self.answers[method]

        return call


def test_each_call_names_its_rpc_and_timeout() -> None:
    stub = RecordingStub(
        GetCatalog=meta_pb2.Catalog(version=3),
        GetTimestamp=meta_pb2.GetTimestampResponse(timestamp=42),
        AllocateIds=meta_pb2.AllocateIdsResponse(begin=7, count=5),
        GetAuthState=meta_pb2.AuthState(version=2),
        ExecuteDdl=meta_pb2.ExecuteDdlResponse(catalog_version=4),
        ExecuteRbac=meta_pb2.ExecuteRbacResponse(auth_version=5),
        AppendMutations=meta_pb2.AppendMutationsResponse(timestamp=9),
        GetReadPositions=meta_pb2.ReadPositionsResponse(),
        ListCopies=meta_pb2.ListCopiesResponse(log_entries=1),
    )
    meta = MetaClient(stub)  # type: ignore[arg-type]
    drop = milvus_pb2.DropCollectionRequest(collection_name="c")
    user = milvus_pb2.CreateCredentialRequest(username="u")

    async def run() -> None:
        assert (await meta.get_catalog()).version == 3
        assert await meta.timestamp() == 42
        assert (await meta.allocate_ids(5)).begin == 7
        assert (await meta.auth_state()).version == 2
        assert (await meta.execute_ddl("DropCollection", drop, "db1")).catalog_version == 4
        assert (await meta.execute_rbac("CreateCredential", user, "default", "root")).auth_version == 5
        assert (await meta.append_mutations(meta_pb2.AppendMutationsRequest(), 40.0)).timestamp == 9
        await meta.read_positions(meta_pb2.ReadPositionsRequest(), 3.0)
        assert (await meta.copy_states(2.0)).log_entries == 1

    asyncio.run(run())
    ready = {"wait_for_ready": True}
    assert [(m, kw) for m, _, kw in stub.calls] == [
        ("GetCatalog", {"timeout": META_CALL_TIMEOUT, **ready}),
        ("GetTimestamp", {"timeout": META_CALL_TIMEOUT, **ready}),
        ("AllocateIds", {"timeout": META_CALL_TIMEOUT, **ready}),
        ("GetAuthState", {"timeout": META_CALL_TIMEOUT, **ready}),
        ("ExecuteDdl", {"timeout": DDL_TIMEOUT, **ready}),
        ("ExecuteRbac", {"timeout": RBAC_TIMEOUT, **ready}),
        ("AppendMutations", {"timeout": 40.0, **ready}),
        ("GetReadPositions", {"timeout": 3.0, "wait_for_ready": False}),
        ("ListCopies", {"timeout": 2.0}),
    ]
    requests = {m: r for m, r, _ in stub.calls}
    assert requests["AllocateIds"].count == 5 and requests["GetTimestamp"].count == 1
    ddl = requests["ExecuteDdl"]
    assert (ddl.method, ddl.db_name, ddl.request) == ("DropCollection", "db1", drop.SerializeToString())
    rbac = requests["ExecuteRbac"]
    assert (rbac.method, rbac.caller, rbac.request) == ("CreateCredential", "root", user.SerializeToString())
    assert (META_CALL_TIMEOUT, DDL_TIMEOUT, RBAC_TIMEOUT) == (30.0, 600.0, 60.0)  # the timeouts the calls used


class _Ctx:
    def invocation_metadata(self) -> tuple[()]:
        return ()

    def time_remaining(self) -> float | None:
        return None


def test_the_servicer_answers_from_the_parts_it_is_given() -> None:
    meta = MetaClient(RecordingStub(GetTimestamp=meta_pb2.GetTimestampResponse(timestamp=77)))  # type: ignore[arg-type]
    parts: Any = None  # reads, writes and copies: not reached by AllocTimestamp
    servicer = RouterServicer(parts, meta, parts, parts, reader=parts, writer=parts, copies=parts, auth=parts)
    answer = asyncio.run(servicer.handlers()["AllocTimestamp"](milvus_pb2.AllocTimestampRequest(), _Ctx()))
    assert answer.status.code == 0 and answer.timestamp == 77
