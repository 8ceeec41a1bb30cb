"""Bounds on one request: shard count, nq/topk/limit, HybridSearch size, deep JSON, admission by size.

The expected errors are those a Milvus 2.3.5 (`milvus` package) answered when probed on
2026-12-02 (see docs/security.md, Limits); where 2.3.5 crashes instead (negative nq, a
DSL-type search), the router's own refusal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from pymilvus.client.prepare import Prepare
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common.errors import MilvusError
from mishards.router import limits, templates
from mishards.router.admission import Admission
from mishards.router.limits import check_search_request, go_int, query_window, search_window
from mishards.router.servicer import guarded

SCHEMA = schema_pb2.CollectionSchema(name="c").SerializeToString()


def refusal(call: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(MilvusError) as caught:
        call(*args)
    return caught.value.code, caught.value.reason


# --- shards_num -------------------------------------------------------------------------------


@pytest.mark.parametrize("shards_num", [17, 200_000, 2**31 - 1])
def test_more_than_16_shards_is_refused_with_2_3_5s_words(shards_num: int) -> None:
    req = milvus_pb2.CreateCollectionRequest(collection_name="c", schema=SCHEMA, shards_num=shards_num)
    assert refusal(limits.check_ddl, "CreateCollection", req) == (
        65535,
        "maximum shards's number should be limited to 16",
    )


@pytest.mark.parametrize("shards_num", [-(2**31), -1, 0, 1, 16])
def test_16_shards_or_fewer_pass_to_meta(shards_num: int) -> None:
    limits.check_ddl("CreateCollection", milvus_pb2.CreateCollectionRequest(schema=SCHEMA, shards_num=shards_num))


def test_an_undecodable_schema_is_left_to_meta_which_reports_it_first_as_2_3_5_does() -> None:
    limits.check_ddl("CreateCollection", milvus_pb2.CreateCollectionRequest(schema=b"\xff\xff", shards_num=17))


# --- nq, topk, offset, limit (as measured on Milvus 2.3.5) ------------------------------------


def search(nq: int = 1, dsl_type: int = common_pb2.BoolExprV1) -> milvus_pb2.SearchRequest:
    return milvus_pb2.SearchRequest(nq=nq, dsl_type=dsl_type)  # type: ignore[arg-type]


@pytest.mark.parametrize("nq", [-1, -5, -(2**63), 16385])
def test_nq_out_of_range(nq: int) -> None:
    assert refusal(check_search_request, search(nq)) == (
        65535,
        f"nq [{nq}] is invalid, nq (number of search vector per search request) should be in range [1, 16384], "
        f"but got {nq}",
    )


def test_nq_zero_is_read_from_the_placeholder_group_by_milvus() -> None:
    check_search_request(search(0))


@pytest.mark.parametrize("dsl_type", [common_pb2.Dsl, 7])
def test_a_dsl_type_search_never_reaches_a_backend(dsl_type: int) -> None:
    code, _ = refusal(check_search_request, search(1, dsl_type))
    assert code == 1100


@pytest.mark.parametrize(
    "params,expected",
    [
        ({}, "topk not found in search_params"),
        ({"topk": "-1"}, "topk [-1] is invalid, top k should be in range [1, 16384], but got -1"),
        ({"topk": "0"}, "topk [0] is invalid, top k should be in range [1, 16384], but got 0"),
        ({"topk": "16385"}, "topk [16385] is invalid, top k should be in range [1, 16384], but got 16385"),
        ({"topk": "abc"}, "topk [abc] is invalid"),
        ({"topk": ""}, "topk [] is invalid"),
        ({"topk": "3", "offset": "-1"}, "offset [-1] is invalid, top k should be in range [1, 16384], but got -1"),
        ({"topk": "3", "offset": "abc"}, "offset [abc] is invalid"),
        (
            {"topk": "16384", "offset": "1"},
            "offset+topk [16385] is invalid, top k should be in range [1, 16384], but got 16385",
        ),
    ],
)
def test_search_window_refused_as_2_3_5_refuses_it(params: dict[str, str], expected: str) -> None:
    assert refusal(search_window, params) == (65535, expected)


def test_search_window_read_as_go_reads_integers() -> None:
    assert search_window({"topk": "0x10", "offset": "010"}) == (16, 8)
    assert search_window({"topk": "3", "offset": "0"}) == (3, 0)


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"limit": "-1"}, "invalid max query result window, limit [-1] is invalid, should be greater than 0"),
        ({"limit": "0"}, "invalid max query result window, limit [0] is invalid, should be greater than 0"),
        (
            {"limit": "3", "offset": "-1"},
            "invalid max query result window, offset [-1] is invalid, should be gte than 0",
        ),
        ({"limit": "abc"}, "limit [abc] is invalid"),
        ({"limit": "3", "offset": "abc"}, "offset [abc] is invalid"),
        (
            {"limit": "16385"},
            "invalid max query result window, (offset+limit) should be in range [1, 16384], but got 16385",
        ),
    ],
)
def test_query_window_refused_as_2_3_5_refuses_it(params: dict[str, str], expected: str) -> None:
    assert refusal(query_window, params) == (65535, expected)


def test_query_without_limit_ignores_offset_as_2_3_5_does() -> None:
    assert query_window({"offset": "2"}) == (None, 0)
    assert query_window({"limit": "5", "offset": "2"}) == (5, 2)


@pytest.mark.parametrize(
    "text,value", [("12", 12), ("-3", -3), ("+4", 4), ("0x1f", 31), ("017", 15), ("0", 0), ("1_000", None)]
)
def test_go_int(text: str, value: int | None) -> None:
    expected = 1000 if text == "1_000" else value  # Go base 0 takes underscores too
    assert go_int(text) == expected
    assert go_int("9223372036854775808") is None
    assert go_int("1.5") is None


# --- HybridSearch ----------------------------------------------------------------------------


def test_hybrid_search_sub_requests_are_capped() -> None:
    limits.check_hybrid_requests(64, 64)
    code, reason = refusal(limits.check_hybrid_requests, 65, 64)
    assert code == 1100 and "MAX_HYBRID_REQUESTS" in reason and "65" in reason


# --- deep JSON and raw carriage returns ----------------------------------------------------------


def deep_json(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


class Context:
    def time_remaining(self) -> float | None:
        return None


def test_deep_json_in_template_values_gets_a_parameter_error_and_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    req = milvus_pb2.SearchRequest(dsl="meta == {m}")
    text = "[" + '{"a":' * 5000 + "1" + "}" * 5000 + "]"
    req.expr_template_values["m"].array_val.json_data.data.append(text.encode())
    assert refusal(templates.expand_request, req, "dsl")[0] == 1100

    async def handler(request: Any, context: Any) -> milvus_pb2.SearchResults:
        templates.expand_request(request, "dsl")
        return milvus_pb2.SearchResults()

    with caplog.at_level(logging.DEBUG):
        answer = asyncio.run(guarded("Search", handler, Admission(0, 0.0))(req, Context()))
    assert answer.status.code == 1100
    assert "nested too deeply" in answer.status.reason
    assert not any(r.exc_info for r in caplog.records)


def test_any_recursion_error_is_a_parameter_error_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: Any, context: Any) -> milvus_pb2.SearchResults:
        json.loads("[" * 100_000 + "]" * 100_000)
        return milvus_pb2.SearchResults()

    with caplog.at_level(logging.DEBUG):
        answer = asyncio.run(
            guarded("HybridSearch", handler, Admission(0, 0.0))(milvus_pb2.HybridSearchRequest(), Context())
        )
    assert answer.status.code == 1100
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize("value,literal", [("a\rb", '"a\\rb"'), ("a\nb", '"a\\nb"'), ("\r\n", '"\\r\\n"')])
def test_line_breaks_in_template_strings_are_escaped(value: str, literal: str) -> None:
    req = milvus_pb2.QueryRequest(expr="tag == {t}")
    for k, v in Prepare.prepare_expression_template({"t": value}).items():
        req.expr_template_values[k].CopyFrom(v)
    templates.expand_request(req, "expr")
    assert req.expr == f"tag == {literal}"
    assert "\r" not in req.expr and "\n" not in req.expr


# --- admission by size -------------------------------------------------------------------------


def test_requests_over_the_budget_wait_in_fifo_order() -> None:
    async def run() -> list[str]:
        admission = Admission(100, 5.0)
        order: list[str] = []
        release = asyncio.Event()

        async def request(name: str, size: int) -> None:
            async with admission.admit(size):
                order.append(name)
                await release.wait()

        first = asyncio.create_task(request("a60", 60))
        await asyncio.sleep(0)
        others = [asyncio.create_task(request(n, s)) for n, s in (("b50", 50), ("c10", 10))]
        await asyncio.sleep(0.05)
        assert order == ["a60"]  # c10 would fit, but b50 came first: no overtaking
        assert admission.waiting == 2 and admission.in_flight == 60
        release.set()
        await asyncio.gather(first, *others)
        assert admission.in_flight == 0 and admission.waiting == 0
        return order

    assert asyncio.run(run()) == ["a60", "b50", "c10"]


def test_a_request_larger_than_the_limit_is_admitted_alone() -> None:
    async def run() -> None:
        admission = Admission(100, 5.0)
        async with admission.admit(500):
            assert admission.in_flight == 500
        small = admission.admit(10)
        async with admission.admit(50):
            big = asyncio.create_task(_hold(admission, 500))
            await asyncio.sleep(0.05)
            assert not big.done() and admission.waiting == 1  # waits for the one in flight
        await asyncio.wait_for(big, 1)
        async with small:
            assert admission.in_flight == 10

    asyncio.run(run())


async def _hold(admission: Admission, size: int) -> None:
    async with admission.admit(size):
        await asyncio.sleep(0.01)


def test_a_request_that_waits_past_the_queue_timeout_gets_code_8_and_leaves_the_queue() -> None:
    async def run() -> None:
        admission = Admission(100, 0.1)
        async with admission.admit(90):
            started = time.monotonic()
            with pytest.raises(MilvusError) as caught:
                async with admission.admit(20):
                    pass
            assert 0.09 < time.monotonic() - started < 1
            assert caught.value.code == 8 and "MAX_INFLIGHT_BYTES=100" in caught.value.reason
            assert caught.value.to_status().error_code == common_pb2.RateLimit
            assert admission.waiting == 0
            # the client's own deadline shortens the wait
            with pytest.raises(MilvusError):
                async with admission.admit(20, deadline=time.monotonic() + 0.05):
                    pass
        assert admission.in_flight == 0
        async with admission.admit(100):
            pass

    asyncio.run(run())


def test_a_cancelled_waiter_gives_its_place_back() -> None:
    async def run() -> None:
        admission = Admission(100, 5.0)
        async with admission.admit(90):
            waiter = asyncio.create_task(_hold(admission, 50))
            await asyncio.sleep(0.02)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert admission.waiting == 0
        assert admission.in_flight == 0

    asyncio.run(run())


def test_the_guarded_entry_answers_rate_limit_in_the_methods_response() -> None:
    async def run() -> milvus_pb2.MutationResult:
        async def handler(request: Any, context: Any) -> milvus_pb2.MutationResult:
            await asyncio.sleep(0.3)
            return milvus_pb2.MutationResult()

        insert = guarded("Insert", handler, Admission(10, 0.05))
        big = milvus_pb2.InsertRequest(collection_name="x" * 20)
        first = asyncio.create_task(insert(big, Context()))
        await asyncio.sleep(0.01)
        second = await insert(big, Context())
        assert (await first).status.code == 0
        return second

    assert asyncio.run(run()).status.code == 8
