"""Every MilvusService method is implemented or listed as unsupported in docs/compatibility.md."""

import asyncio
import pathlib
import re

import grpc
import pytest
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from mishards.common.milvus_messages import is_streaming, method_names, request_class, status_field
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


def test_foundation_methods_are_not_unsupported() -> None:
    _, unsupported = _tables()
    must = {
        "Connect",
        "GetVersion",
        "CheckHealth",
        "CreateCollection",
        "DescribeCollection",
        "HasCollection",
        "ShowCollections",
        "DropCollection",
        "CreateIndex",
        "DescribeIndex",
        "LoadCollection",
        "GetLoadingProgress",
        "GetLoadState",
        "Insert",
        "Flush",
        "Search",
        "Query",
        "AllocTimestamp",
    }
    assert not (must & unsupported)


class Aborted(Exception):
    pass


class _Ctx:
    def invocation_metadata(self) -> tuple[()]:
        return ()

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


def test_unsupported_method_answers_a_milvus_status_naming_mishards() -> None:
    servicer = RouterServicer.__new__(RouterServicer)
    _, unsupported = _tables()
    for name in sorted(unsupported):
        if is_streaming(name) or not status_field(name):
            # no status field to carry the answer: a gRPC error whose details name Mishards
            async def call() -> None:
                result = getattr(servicer, name)(request_class(name)(), _Ctx())
                if hasattr(result, "__anext__"):
                    await result.__anext__()
                else:
                    await result

            with pytest.raises(Aborted) as err:
                asyncio.run(call())
            assert err.value.args[0] == grpc.StatusCode.UNIMPLEMENTED and "Mishards" in err.value.args[1]
            continue
        response = asyncio.run(getattr(servicer, name)(request_class(name)(), _Ctx()))
        status = response if isinstance(response, common_pb2.Status) else getattr(response, status_field(name))
        assert status.code == 10 and "Mishards" in status.reason, name


def test_bad_request_is_an_answer_not_a_crash() -> None:
    servicer = RouterServicer.__new__(RouterServicer)  # no catalog: handlers fail inside
    response = asyncio.run(servicer.Search(milvus_pb2.SearchRequest(collection_name="x"), _Ctx()))
    assert response.status.code != 0 and response.status.reason
