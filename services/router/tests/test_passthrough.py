"""The single-shard pass-through's wire rewrite, checked against protobuf's own parser.

Every generated backend answer is encoded, rewritten on the wire, and decoded again: the
client must get exactly what the decoding path builds from the same answer.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from pymilvus import DataType
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2

from mishards.common.backends import BackendPool
from mishards.common.errors import MilvusError
from mishards.common.interceptors import TelemetryServerInterceptor
from mishards.common.milvus_messages import EncodedAnswer, encode_answer, method_names
from mishards.router import passthrough
from mishards.router.catalog import CollectionView
from mishards.router.catalog import _view as _view_of
from mishards.router.fanout import Failover, ShardCall, call_shards
from mishards.router.passthrough import RawAnswer, WireError
from mishards.router.topology import Target
from mishards.router.wire import add_milvus_service, wrap_tolerant
from mishards.v1 import meta_pb2

SEEDS = range(300)


def _status(rng: random.Random) -> common_pb2.Status:
    if rng.random() < 0.5:
        return common_pb2.Status()
    return common_pb2.Status(code=rng.choice([0, 0, 100, 1100]), reason=rng.choice(["", "x" * rng.randint(1, 300)]))


def _field(rng: random.Random, name: str, rows: int) -> schema_pb2.FieldData:
    kind = rng.choice(["long", "string", "vector"])
    if kind == "long":
        out = schema_pb2.FieldData(field_name=name, type=DataType.INT64)
        out.scalars.long_data.data.extend(rng.randint(-(2**63), 2**63 - 1) for _ in range(rows))
    elif kind == "string":
        out = schema_pb2.FieldData(field_name=name, type=DataType.VARCHAR)
        out.scalars.string_data.data.extend("é" * rng.randint(0, 200) for _ in range(rows))
    else:
        out = schema_pb2.FieldData(field_name=name, type=DataType.FLOAT_VECTOR)
        out.vectors.dim = 4
        out.vectors.float_vector.data.extend(rng.random() for _ in range(rows * 4))
    return out


def search_answer(seed: int) -> milvus_pb2.SearchResults:
    """A backend's SearchResults: hits, output fields, sometimes an iterator token, a session_ts, big payloads."""
    rng = random.Random(seed)
    nq, topk = rng.randint(0, 5), rng.randint(1, 300)
    res = schema_pb2.SearchResultData(num_queries=nq, top_k=topk, topks=[topk] * nq, all_search_count=nq * topk)
    res.scores.extend(rng.random() for _ in range(nq * topk))
    if rng.random() < 0.5:
        res.ids.int_id.data.extend(rng.randint(0, 2**62) for _ in range(nq * topk))
    else:
        res.ids.str_id.data.extend(str(i) for i in range(nq * topk))
    for k in range(rng.randint(0, 3)):
        res.fields_data.append(_field(rng, f"f{k}", nq * topk))
        res.output_fields.append(f"f{k}")
    if rng.random() < 0.3:
        res.search_iterator_v2_results.token = "tok"
        res.search_iterator_v2_results.last_bound = 0.5
    if rng.random() < 0.3:
        res.primary_field_name = "pk"
    out = milvus_pb2.SearchResults(
        status=_status(rng), results=res, collection_name=f"mishards_{seed}_s0", session_ts=rng.randint(0, 2**63)
    )
    if rng.random() < 0.2:
        out.ClearField("status")  # a Go server leaves an empty status out
    return out


def query_answer(seed: int) -> milvus_pb2.QueryResults:
    rng = random.Random(seed)
    rows = rng.randint(0, 500)
    out = milvus_pb2.QueryResults(
        status=_status(rng), collection_name=f"mishards_{seed}_s0", session_ts=rng.randint(0, 2**63)
    )
    for k in range(rng.randint(0, 4)):
        out.fields_data.append(_field(rng, f"f{k}", rows))
        out.output_fields.append(f"f{k}")
    if rng.random() < 0.5:
        out.primary_field_name = "pk"
    return out


def decoded_search(answer: milvus_pb2.SearchResults, logical: str) -> milvus_pb2.SearchResults:
    """What the decoding path answers for one shard's search."""
    results = schema_pb2.SearchResultData()
    results.CopyFrom(answer.results)
    results.ClearField("search_iterator_v2_results")
    return milvus_pb2.SearchResults(status=common_pb2.Status(), results=results, collection_name=logical)


def decoded_query(answer: milvus_pb2.QueryResults, logical: str) -> milvus_pb2.QueryResults:
    out = milvus_pb2.QueryResults()
    out.CopyFrom(answer)
    out.collection_name = logical
    out.ClearField("session_ts")
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_a_rewritten_search_answer_decodes_as_the_decoding_path_builds_it(seed: int) -> None:
    answer = search_answer(seed)
    raw = answer.SerializeToString()
    got = passthrough.search_results(raw, "logical ☃")
    client = milvus_pb2.SearchResults.FromString(encode_answer(got))
    assert client == decoded_search(answer, "logical ☃")
    assert client.session_ts == 0 and not client.results.HasField("search_iterator_v2_results")
    assert got.status == common_pb2.Status()
    if not answer.results.HasField("search_iterator_v2_results"):  # the hits travel as the backend encoded them
        assert answer.results.SerializeToString() in got.data


@pytest.mark.parametrize("seed", SEEDS)
def test_a_rewritten_query_answer_decodes_as_the_decoding_path_builds_it(seed: int) -> None:
    answer = query_answer(seed)
    raw = answer.SerializeToString()
    got = passthrough.query_results(raw, "logical", RawAnswer(raw).status)
    assert milvus_pb2.QueryResults.FromString(encode_answer(got)) == decoded_query(answer, "logical")
    assert got.status == answer.status


@pytest.mark.parametrize("seed", SEEDS)
def test_the_status_is_read_off_the_wire(seed: int) -> None:
    answer = search_answer(seed) if seed % 2 else query_answer(seed)
    assert RawAnswer(answer.SerializeToString()).status == answer.status


def test_unknown_fields_and_repeated_status_occurrences_keep_protobuf_semantics() -> None:
    # field 99 (unknown to this pymilvus), then the status split over two occurrences (they merge)
    unknown = bytes([0x98, 0x06, 0x07])
    first = milvus_pb2.QueryResults(status=common_pb2.Status(code=100)).SerializeToString()
    second = milvus_pb2.QueryResults(status=common_pb2.Status(reason="gone")).SerializeToString()
    raw = unknown + first + second + milvus_pb2.QueryResults(collection_name="p", session_ts=5).SerializeToString()
    assert RawAnswer(raw).status == common_pb2.Status(code=100, reason="gone")
    out = passthrough.query_results(raw, "c").data
    parsed = milvus_pb2.QueryResults.FromString(out)
    assert parsed.collection_name == "c" and parsed.session_ts == 0
    assert parsed.status == common_pb2.Status(code=100, reason="gone")
    assert unknown in out  # kept, as the decoding path keeps unknown fields


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 20])
def test_truncated_answers_are_refused_not_misread(cut: int) -> None:
    raw = search_answer(3).SerializeToString()  # ends with session_ts (10 bytes) after the names
    with pytest.raises(WireError):
        passthrough.search_results(raw[:-cut], "c")
    with pytest.raises(WireError):
        passthrough.status_of(raw[:-cut])


def test_wire_types_milvus_never_sends_are_refused() -> None:
    with pytest.raises(WireError):
        passthrough.status_of(bytes([0x0B]))  # field 1, start group
    with pytest.raises(WireError):
        passthrough.status_of(bytes([0x00, 0x00]))  # field number 0


def test_an_empty_answer_is_ok_and_gets_the_logical_name() -> None:
    assert RawAnswer(b"").status == common_pb2.Status()
    client = milvus_pb2.SearchResults.FromString(passthrough.search_results(b"", "c").data)
    assert client == milvus_pb2.SearchResults(status=common_pb2.Status(), collection_name="c")


def test_varints_round_trip() -> None:
    for value in [0, 1, 127, 128, 300, 2**32, 2**63 - 1, 2**64 - 1]:
        encoded = passthrough.encode_varint(value)
        assert passthrough._varint(encoded, 0) == (value, len(encoded))


def test_an_encoded_answer_is_sent_as_is() -> None:
    assert encode_answer(EncodedAnswer(b"\x1a\x01c", common_pb2.Status())) == b"\x1a\x01c"
    assert encode_answer(common_pb2.Status(code=5)) == common_pb2.Status(code=5).SerializeToString()


# --- raw fan-out against in-process backends: failover and error renaming still hold ---------------


class Backend(milvus_pb2_grpc.MilvusServiceServicer):
    """Answers every Search with `answer` (and counts the calls)."""

    def __init__(self, answer: milvus_pb2.SearchResults) -> None:
        self.answer = answer
        self.calls = 0

    async def Search(self, request: Any, context: Any) -> milvus_pb2.SearchResults:
        self.calls += 1
        return self.answer


def _view() -> CollectionView:
    schema = schema_pb2.CollectionSchema(
        name="logical",
        fields=[schema_pb2.FieldSchema(fieldID=100, name="pk", data_type=DataType.INT64, is_primary_key=True)],
    )
    shard = meta_pb2.ShardPlacement(index=0, physical_name="mishards_7_s0")
    return _view_of(
        meta_pb2.Collection(id=7, name="logical", shards_num=1, shards=[shard], schema=schema.SerializeToString())
    )


async def _with_backends(answers: list[milvus_pb2.SearchResults | None], body: Any) -> Any:
    """Backends answering `answers` (None: an address nobody listens on); `body(pool, targets, backends)`."""
    servers, backends, targets = [], [], []
    for answer in answers:
        server = grpc.aio.server()
        port = server.add_insecure_port("127.0.0.1:0")
        if answer is None:
            targets.append(Target(f"127.0.0.1:{port}"))  # bound, then never started: refused
            continue
        backend = Backend(answer)
        milvus_pb2_grpc.add_MilvusServiceServicer_to_server(backend, server)
        await server.start()
        servers.append(server)
        backends.append(backend)
        targets.append(Target(f"127.0.0.1:{port}"))
    pool = BackendPool()
    try:
        return await body(pool, targets, backends)
    finally:
        await pool.close()
        for server in servers:
            await server.stop(0)


def test_raw_answers_come_back_as_sent_and_a_copy_that_cannot_serve_is_left_for_the_next() -> None:
    ok = search_answer(5)
    ok.status.Clear()
    not_loaded = milvus_pb2.SearchResults(status=common_pb2.Status(code=101, reason="mishards_7_s0 not loaded"))
    failed: list[str] = []

    async def body(pool: BackendPool, targets: list[Target], backends: list[Backend]) -> Any:
        failover = Failover(retries=2, backoff=0.0, on_failure=failed.append)
        request = milvus_pb2.SearchRequest(collection_name="mishards_7_s0")
        return await call_shards(
            pool, _view(), "Search", [ShardCall(_view().shards[0], targets, request)], 5.0, failover, raw=True
        )

    (answer,) = asyncio.run(_with_backends([None, not_loaded, ok], body))
    assert isinstance(answer, RawAnswer) and answer.data == ok.SerializeToString()
    assert len(failed) == 2  # the refused address, then the copy whose collection is not loaded


def test_a_backend_error_reaches_the_client_with_the_logical_name() -> None:
    bad = milvus_pb2.SearchResults(
        status=common_pb2.Status(code=1100, reason="field vec of collection mishards_7_s0 has dim 4")
    )

    async def body(pool: BackendPool, targets: list[Target], backends: list[Backend]) -> Any:
        request = milvus_pb2.SearchRequest(collection_name="mishards_7_s0")
        await call_shards(pool, _view(), "Search", [ShardCall(_view().shards[0], targets, request)], 5.0, raw=True)

    with pytest.raises(MilvusError) as caught:
        asyncio.run(_with_backends([bad], body))
    assert caught.value.code == 1100 and caught.value.reason == "field vec of collection logical has dim 4"


# --- the server side: handlers registered once, EncodedAnswer sent as is, telemetry still counts -----


class Answers(milvus_pb2_grpc.MilvusServiceServicer):
    async def Search(self, request: Any, context: Any) -> EncodedAnswer:
        raw = search_answer(11).SerializeToString()
        return passthrough.search_results(raw, request.collection_name)


def _requests(method: str, milvus_code: str) -> float:
    labels = {"component": "passthrough-test", "method": method, "grpc_code": "OK", "milvus_code": milvus_code}
    return REGISTRY.get_sample_value("mishards_rpc_requests_total", labels) or 0.0


def test_an_encoded_answer_reaches_the_client_and_is_counted_with_its_status() -> None:
    telemetry = TelemetryServerInterceptor("passthrough-test")

    async def run() -> tuple[milvus_pb2.SearchResults, grpc.StatusCode]:
        server = grpc.aio.server()
        answers = Answers()
        behaviors = {name: getattr(answers, name) for name in method_names()}
        add_milvus_service(server, behaviors, [telemetry.wrap, wrap_tolerant])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = milvus_pb2_grpc.MilvusServiceStub(channel)
                answer = await stub.Search(milvus_pb2.SearchRequest(collection_name="logical"))
                garbage = channel.unary_unary("/milvus.proto.milvus.MilvusService/Search")
                try:
                    await garbage(b"\xff\xff")
                    code = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                return answer, code
        finally:
            await server.stop(0)

    before = _requests("Search", "0")
    answer, undecodable = asyncio.run(run())
    assert answer == decoded_search(search_answer(11), "logical")
    assert _requests("Search", "0") == before + 1
    assert undecodable == grpc.StatusCode.INTERNAL  # the tolerant decoder still stands in front
