"""Fuzzing the router over real Milvus: every implemented RPC, random messages and random bytes.

Messages are built field by field from each request's protobuf descriptor (hypothesis), with
names and search parameters drawn partly from a real, loaded collection so that the requests
reach the backends. Asserted: every call returns within its deadline; a well-formed message
never gets gRPC UNKNOWN or INTERNAL, nor the router's own "unexpected error" status (code 5
"mishards router: ..."); bytes that do not decode get INTERNAL, as Milvus 2.3.5 answers
("grpc: error unmarshalling request"); no service or Milvus instance dies; afterwards a good
write and a search still work.

MISHARDS_FUZZ_EXAMPLES sets the examples per test (`make test`: 300; `make fuzz`: 5000).
Requests that would destroy the target collection (drop, rename, release) get random names
only, so that the rest keep reaching a loaded collection. Timestamps are kept small: a
guarantee timestamp in the future makes a read wait for its client's deadline, by design.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as D
from google.protobuf import message as pb_message
from google.protobuf import message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymilvus import MilvusClient

from mishards.cli.cluster import Cluster
from mishards.common.milvus_messages import SERVICE, is_streaming, request_class, status_field
from mishards.router.servicer import implemented_methods

EXAMPLES = int(os.environ.get("MISHARDS_FUZZ_EXAMPLES", "300"))
CALL_TIMEOUT = 20.0  # seconds; every call must answer within it
DIM = 4
TARGET = "fuzz_target"
# Methods whose success would take the target collection away from the rest of the run.
DESTRUCTIVE = {"DropCollection", "RenameCollection", "ReleaseCollection", "ReleasePartitions", "DropIndex",
               "DropPartition", "DropAlias", "AlterAlias", "DropDatabase", "AlterCollection"}  # fmt: skip
METHODS = [m for m in implemented_methods() if not is_streaming(m)]
TRIED = {"messages": 0, "bytes": 0}

INT_RANGES = {
    D.FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    D.FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    D.FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    D.FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    D.FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    D.FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    D.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    D.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    D.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    D.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
PARAM_KEYS = ["topk", "offset", "limit", "metric_type", "params", "anns_field", "round_decimal", "group_by_field",
              "group_size", "ignore_growing", "iterator", "reduce_stop_for_best", "dim", "index_type", "strategy",
              "nprobe", "radius", "range_filter", "search_iter_v2"]  # fmt: skip
PARAM_VALUES = ["-1", "0", "1", "3", "16384", "16385", "-9223372036854775808", "abc", "", "{}", '{"nprobe": -1}',
                "L2", "IP", "COSINE", "vector", "id", "true", "1e309", "[" * 50, "0x10"]  # fmt: skip
EXPRS = ["", "id > 0", "id in [1, 2, 3]", "id ==", "vector > 1", "id in {x}", 'json["a"] == 1', "(" * 200]


def ints(kind: int) -> st.SearchStrategy[int]:
    lo, hi = INT_RANGES[kind]
    edges = [v for v in (0, 1, -1, 2, 16, 17, 16384, 16385, lo, hi) if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def scalar(field: D.FieldDescriptor, target: bool) -> st.SearchStrategy[Any]:
    t = field.type
    name = field.name
    if t in INT_RANGES:
        if name in ("guarantee_timestamp", "travel_timestamp", "timestamp", "flush_ts", "ts"):
            return st.sampled_from([0, 1, 2])
        return ints(t)
    if t == D.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (D.FieldDescriptor.TYPE_FLOAT, D.FieldDescriptor.TYPE_DOUBLE):
        return st.floats(width=32 if t == D.FieldDescriptor.TYPE_FLOAT else 64)
    if t == D.FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-5, 300))
    if t == D.FieldDescriptor.TYPE_STRING:
        if name in ("collection_name", "collectionName") and target:
            return st.one_of(st.just(TARGET), st.text(max_size=12))
        if name == "db_name":
            return st.sampled_from(["", "default", "nope"])
        if name in ("expr", "dsl"):
            return st.one_of(st.sampled_from(EXPRS), st.text(max_size=30))
        if name in ("key", "field_name", "anns_field", "index_name", "partition_name"):
            return st.one_of(st.sampled_from(PARAM_KEYS + ["vector", "id", "_default"]), st.text(max_size=10))
        if name == "value":
            return st.one_of(st.sampled_from(PARAM_VALUES), st.text(max_size=20))
        return st.text(max_size=16)
    if t == D.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    raise AssertionError(f"no strategy for field {field.full_name} of type {t}")


def message(desc: D.Descriptor, target: bool, depth: int = 0) -> st.SearchStrategy[pb_message.Message]:
    """A message of type `desc` with any subset of its fields set to random values."""
    cls = message_factory.GetMessageClass(desc)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in desc.fields:
        if f.type == D.FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            if f.message_type.GetOptions().map_entry:
                key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
                if value.type == D.FieldDescriptor.TYPE_MESSAGE:
                    inner = message(value.message_type, target, depth + 1)
                else:
                    inner = scalar(value, target)
                fields[f.name] = st.dictionaries(scalar(key, target), inner, max_size=3)
                continue
            element = st.deferred(lambda f=f: message(f.message_type, target, depth + 1))
        else:
            element = scalar(f, target)
        repeated = f.is_repeated
        fields[f.name] = st.lists(element, max_size=4) if repeated else element

    def build(values: dict[str, Any]) -> pb_message.Message:
        out = cls()
        for name, value in values.items():
            f = desc.fields_by_name[name]
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                target_map = getattr(out, name)
                for k, v in value.items():
                    if isinstance(v, pb_message.Message):
                        target_map[k].CopyFrom(v)
                    else:
                        target_map[k] = v
            elif f.is_repeated:
                getattr(out, name).extend(value)
            elif f.type == D.FieldDescriptor.TYPE_MESSAGE:
                getattr(out, name).CopyFrom(value)
            else:
                setattr(out, name, value)
        return out

    return st.fixed_dictionaries({}, optional=fields).map(build)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, pb_message.Message]:
    method = draw(st.sampled_from(METHODS))
    desc = SERVICE.methods_by_name[method].input_type
    return method, draw(message(desc, method not in DESTRUCTIVE))


@pytest.fixture(scope="module")
def fuzz_target(cluster: Cluster) -> Iterator[MilvusClient]:
    client = MilvusClient(uri=cluster.router_uri)
    if client.has_collection(TARGET):
        client.drop_collection(TARGET)
    client.create_collection(TARGET, dimension=DIM, primary_field_name="id", auto_id=False)
    client.insert(TARGET, [{"id": i, "vector": [random.random() for _ in range(DIM)]} for i in range(20)])
    before, databases = set(client.list_collections()), set(client.list_databases())
    yield client
    for name in set(client.list_collections()) - before:  # what the fuzzer created
        client.drop_collection(name)
    for db in set(client.list_databases()) - databases:
        for name in client.list_collections(db_name=db):
            client.drop_collection(name, db_name=db)
        client.drop_database(db)
    client.close()


@pytest.fixture(scope="module")
def channel(cluster: Cluster) -> Iterator[grpc.Channel]:
    ch = grpc.insecure_channel(cluster.router_address)
    yield ch
    ch.close()


def assert_alive(cluster: Cluster) -> None:
    down = [name for name, s in cluster.services.items() if not s.is_running()]
    down += [i.identity for i in cluster.instances if not i.is_running()]
    assert not down, f"processes died: {down}"


def call(channel: grpc.Channel, method: str, payload: bytes) -> tuple[grpc.StatusCode, bytes | None, str]:
    stub = channel.unary_unary(f"/milvus.proto.milvus.MilvusService/{method}")  # identity (de)serializers
    started = time.monotonic()
    try:
        answer = stub(payload, timeout=CALL_TIMEOUT)
        return grpc.StatusCode.OK, answer, ""
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        assert code != grpc.StatusCode.DEADLINE_EXCEEDED, (
            f"{method} did not answer within {CALL_TIMEOUT}s ({time.monotonic() - started:.1f}s)"
        )
        return code, None, str(exc.details())  # type: ignore[attr-defined]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    database=None,
)
@given(requests())
def test_well_formed_messages(
    cluster: Cluster, fuzz_target: MilvusClient, channel: grpc.Channel, case: tuple[str, pb_message.Message]
) -> None:
    method, request = case
    TRIED["messages"] += 1
    code, answer, details = call(channel, method, request.SerializeToString())
    assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), f"{method}: {code} {details}\n{request}"
    if answer is not None and status_field(method):
        response = SERVICE.methods_by_name[method].output_type
        status = getattr(message_factory.GetMessageClass(response).FromString(answer), status_field(method))
        assert not status.reason.startswith("mishards router:"), f"{method}: {status}\n{request}"
    assert_alive(cluster)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.sampled_from(METHODS), st.binary(max_size=96))
def test_random_bytes(
    cluster: Cluster, fuzz_target: MilvusClient, channel: grpc.Channel, method: str, raw: bytes
) -> None:
    TRIED["bytes"] += 1
    try:
        request_class(method).FromString(raw)
        decodes = True
    except pb_message.DecodeError:
        decodes = False
    code, _, details = call(channel, method, raw)
    if decodes:
        assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), f"{method}: {code} {details} {raw!r}"
    else:  # Milvus 2.3.5: INTERNAL "grpc: error unmarshalling request: proto: cannot parse invalid wire-format data"
        assert code == grpc.StatusCode.INTERNAL, f"{method}: {code} {details} {raw!r}"
    assert_alive(cluster)


def test_after_fuzzing_a_good_write_and_a_search_work(
    cluster: Cluster, fuzz_target: MilvusClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_alive(cluster)
    client = fuzz_target
    name = "after_fuzz_" + uuid.uuid4().hex[:8]
    client.create_collection(name, dimension=DIM, primary_field_name="id", auto_id=False)
    try:
        rows = [{"id": i, "vector": [float(i), 1.0, 0.0, 0.0]} for i in range(1, 11)]
        assert client.insert(name, rows)["insert_count"] == 10
        hits = client.search(name, [[10.0, 1.0, 0.0, 0.0]], limit=3, consistency_level="Strong")
        assert [h["id"] for h in hits[0]] == [10, 9, 8]
    finally:
        client.drop_collection(name)
    with capsys.disabled():
        print(f"\nfuzz: {TRIED['messages']} well-formed messages and {TRIED['bytes']} random byte strings tried")
