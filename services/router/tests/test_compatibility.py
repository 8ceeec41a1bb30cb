"""Every MilvusService method is implemented or listed as unsupported in docs/compatibility.md."""

import asyncio
import pathlib
import re
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from mishards.common.milvus_messages import carries_status, method_names, request_class, status_field
from mishards.router.auth import UNIMPLEMENTED_RBAC
from mishards.router.servicer import RouterServicer, implemented_methods

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "compatibility.md"


def _tables() -> tuple[set[str], set[str]]:
    text = DOC.read_text()
    supported_part, rest = text.split("## Not supported yet")
    unsupported_part = rest.split("\n## ")[0]  # later sections are about features, not methods
    pattern = re.compile(r"^\| `(\w+)` \|", re.M)
    return set(pattern.findall(supported_part)), set(pattern.findall(unsupported_part))


def test_every_method_is_in_exactly_one_place() -> None:
    supported, unsupported = _tables()
    implemented = set(implemented_methods())
    assert supported == implemented, f"doc and code disagree: {supported ^ implemented}"
    for name in method_names():
        assert (name in implemented) != (name in unsupported), f"{name} must be in exactly one table"


# Every RPC named in the foundation issue (handshake, collections, insert, search, query) and in
# the core API issue (partitions, indexes, load state, writes, flush, aliases, statistics).
MUST = {
    "Connect",
    "GetVersion",
    "CheckHealth",
    "AllocTimestamp",
    "CreateCollection",
    "DescribeCollection",
    "HasCollection",
    "ShowCollections",
    "DropCollection",
    "RenameCollection",
    "GetCollectionStatistics",
    "CreatePartition",
    "ShowPartitions",
    "HasPartition",
    "DropPartition",
    "GetPartitionStatistics",
    "LoadPartitions",
    "ReleasePartitions",
    "CreateIndex",
    "DescribeIndex",
    "DropIndex",
    "LoadCollection",
    "ReleaseCollection",
    "GetLoadState",
    "GetLoadingProgress",
    "Insert",
    "Upsert",
    "Delete",
    "Flush",
    "GetFlushState",
    "Search",
    "Query",
    "CreateAlias",
    "AlterAlias",
    "DropAlias",
    "DescribeAlias",
    "ListAliases",
}


def test_issue_methods_are_implemented_not_unsupported() -> None:
    _, unsupported = _tables()
    assert not (MUST & unsupported)
    assert MUST <= set(implemented_methods()), MUST - set(implemented_methods())


def test_describe_database_answers_from_the_catalog() -> None:
    servicer = RouterServicer.__new__(RouterServicer)
    servicer.catalog = SimpleNamespace(databases=["default", "db1"])  # type: ignore[assignment]
    describe = servicer.handlers()["DescribeDatabase"]
    found = asyncio.run(describe(milvus_pb2.DescribeDatabaseRequest(db_name="db1"), _Ctx()))
    assert found.status.code == 0 and found.db_name == "db1"
    default = asyncio.run(describe(milvus_pb2.DescribeDatabaseRequest(), _Ctx()))
    assert default.status.code == 0 and default.db_name == "default"
    missing = asyncio.run(describe(milvus_pb2.DescribeDatabaseRequest(db_name="nope"), _Ctx()))
    assert missing.status.code == 800 and missing.status.reason == "database not found[database=nope]"


class Aborted(Exception):
    pass


class _Ctx:
    def invocation_metadata(self) -> tuple[()]:
        return ()

    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


# Responses with no common.Status to carry an answer: these alone may abort with UNIMPLEMENTED.
NO_STATUS = {"Dummy", "GetReplicateInfo", "CreateReplicateStream"}


def _answer(servicer: RouterServicer, name: str) -> Any:
    async def call() -> Any:
        result = servicer.handlers()[name](request_class(name)(), _Ctx())
        if hasattr(result, "__anext__"):
            return await result.__anext__()
        return await result

    return asyncio.run(call())


def test_unsupported_method_answers_a_milvus_status_naming_mishards() -> None:
    servicer = RouterServicer.__new__(RouterServicer)
    _, unsupported = _tables()
    assert {n for n in method_names() if not carries_status(n)} == NO_STATUS
    for name in sorted(unsupported - NO_STATUS - UNIMPLEMENTED_RBAC):
        response = _answer(servicer, name)
        status = response if isinstance(response, common_pb2.Status) else getattr(response, status_field(name))
        assert status.code == 10 and "Mishards" in status.reason, name
        assert status.error_code == common_pb2.UnexpectedError, name  # pymilvus raises on it
    for name in sorted(unsupported & NO_STATUS):
        with pytest.raises(Aborted) as err:
            _answer(servicer, name)
        assert err.value.args[0] == grpc.StatusCode.UNIMPLEMENTED and "Mishards" in err.value.args[1]


def test_rbac_methods_newer_than_2_3_5_are_unknown_as_on_2_3_5() -> None:
    servicer = RouterServicer.__new__(RouterServicer)
    _, unsupported = _tables()
    assert UNIMPLEMENTED_RBAC <= unsupported
    for name in sorted(UNIMPLEMENTED_RBAC):
        with pytest.raises(Aborted) as err:
            _answer(servicer, name)
        expected = f"unknown method {name} for service milvus.proto.milvus.MilvusService"
        assert err.value.args == (grpc.StatusCode.UNIMPLEMENTED, expected), name


def test_bare_status_methods_answer_a_status() -> None:
    # AlterIndex, AlterDatabase and resource-group calls answer a bare common.Status.
    servicer = RouterServicer.__new__(RouterServicer)
    for name in ("AlterIndex", "AlterDatabase", "CreateResourceGroup", "AddCollectionField"):
        response = _answer(servicer, name)
        assert isinstance(response, common_pb2.Status) and response.code == 10, name
        assert f"{name} is not supported by Mishards" in response.reason


def test_bad_request_is_an_answer_not_a_crash() -> None:
    servicer = RouterServicer.__new__(RouterServicer)  # no catalog: handlers fail inside
    search = servicer.handlers()["Search"]
    response = asyncio.run(search(milvus_pb2.SearchRequest(collection_name="x"), _Ctx()))
    assert response.status.code != 0 and response.status.reason


def test_compaction_state_with_plans_answers_the_job_state() -> None:
    from mishards.router.aggregate import CopyState

    servicer = RouterServicer.__new__(RouterServicer)
    servicer.copies = CopyState(None, None, 1.0)  # type: ignore[arg-type]
    unknown = asyncio.run(
        servicer.GetCompactionStateWithPlans(milvus_pb2.GetCompactionPlansRequest(compactionID=5), _Ctx())
    )
    assert unknown.status.code == 0 and unknown.state == common_pb2.Completed and not unknown.mergeInfos
