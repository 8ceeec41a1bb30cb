"""Durable, ordered writes: crash safety, a writable instance down, read-your-writes."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from mishards.cli.cluster import Cluster
from mishards.cli.ports import port_accepts
from mishards.common.hashing import shard_of
from mishards.v1 import discovery_pb2, discovery_pb2_grpc, meta_pb2, meta_pb2_grpc

DIM = 4


@dataclass
class Op:
    kind: str  # insert | upsert | delete
    pks: list[int]
    tag: int
    acked: bool = False
    error: str = ""


@dataclass
class Writer:
    """Writes a stream of multi-shard inserts, upserts and deletes and records each answer."""

    uri: str
    name: str
    ops: list[Op] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    acked_after_restart: int = 0
    restarted: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(7)
        client = MilvusClient(uri=self.uri, timeout=30)
        upsertable: list[int] = []  # rows of acked inserts no other op has touched
        deletable: list[int] = []
        i = 0
        while not self.stop.is_set():
            i += 1
            kind = "insert" if i % 3 or len(upsertable) < 20 else ("upsert" if i % 2 else "delete")
            if kind == "insert":
                op = Op("insert", list(range(i * 1000, i * 1000 + 12)), tag=i)
            elif kind == "upsert":
                op = Op("upsert", [upsertable.pop(rng.randrange(len(upsertable))) for _ in range(6)], tag=i)
            else:
                op = Op("delete", [upsertable.pop(rng.randrange(len(upsertable))) for _ in range(6)], tag=i)
            rows = [{"id": pk, "vector": [float(pk % 7)] * DIM, "tag": op.tag} for pk in op.pks]
            try:
                if kind == "insert":
                    client.insert(self.name, rows)
                elif kind == "upsert":
                    client.upsert(self.name, rows)
                else:
                    client.delete(self.name, ids=op.pks)
                op.acked = True
                if self.restarted.is_set():
                    self.acked_after_restart += 1
            except MilvusException as exc:
                op.error = str(exc)
                client.close()
                time.sleep(0.2)
                client = MilvusClient(uri=self.uri, timeout=30)
            self.ops.append(op)
            if op.acked and kind == "insert":
                half = len(op.pks) // 2
                upsertable.extend(op.pks[:half])
                deletable.extend(op.pks[half:])
            elif not op.acked and kind != "insert":
                pass  # its rows stay out of later ops: their state is ambiguous
        client.close()


def wait_caught_up(cluster: Cluster, collection_id: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    with grpc.insecure_channel(cluster.meta_address) as channel:
        stub = meta_pb2_grpc.MetaStub(channel)
        while time.time() < deadline:
            try:
                copies = [
                    c
                    for c in stub.ListCopies(meta_pb2.ListCopiesRequest(), timeout=5).copies
                    if c.collection_id == collection_id
                ]
                if copies and all(c.applied_seq == c.last_seq and c.state == "ready" for c in copies):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
    raise AssertionError("copies did not catch up with the log")


def copy_contents(cluster: Cluster, collection_id: int) -> list[dict[int, list[int]]]:
    """pk -> [tag of each row with that pk] on every physical copy (duplicates show as 2 tags)."""
    out = []
    for inst in cluster.instances:
        client = MilvusClient(uri=f"http://{inst.address}")
        for coll in client.list_collections():
            if coll.startswith(f"mishards_{collection_id}_s"):
                client.load_collection(coll)
                rows: dict[int, list[int]] = {}
                for r in client.query(coll, filter="id >= 0", output_fields=["tag"], consistency_level="Strong"):
                    rows.setdefault(r["id"], []).append(r["tag"])
                out.append(rows)
        client.close()
    return out


def check_against_record(ops: list[Op], contents: list[dict[int, list[int]]]) -> None:
    """Every acknowledged write applied exactly once; no write half applied."""
    merged: dict[int, list[int]] = {}
    for rows in contents:
        for pk, tags in rows.items():
            assert pk not in merged, f"pk {pk} is on two shards"
            merged[pk] = tags
    for pk, tags in merged.items():
        assert len(tags) == 1, f"pk {pk} applied {len(tags)} times"
    deleted = set()
    upserted: dict[int, int] = {}
    for op in ops:
        if op.kind == "delete":
            gone = [pk not in merged for pk in op.pks]
            assert all(gone) or not any(gone), f"delete {op.tag} half applied"
            assert all(gone) or not op.acked, f"acknowledged delete {op.tag} lost"
            if all(gone):
                deleted.update(op.pks)
        elif op.kind == "upsert":
            done = [merged.get(pk) == [op.tag] for pk in op.pks]
            assert all(done) or not any(done), f"upsert {op.tag} half applied"
            assert all(done) or not op.acked, f"acknowledged upsert {op.tag} lost"
            if all(done):
                upserted.update(dict.fromkeys(op.pks, op.tag))
    for op in ops:
        if op.kind != "insert":
            continue
        live = [pk for pk in op.pks if pk not in deleted]
        present = [pk in merged for pk in live]
        assert all(present) or not any(present), f"insert {op.tag} half applied"
        assert all(present) or not op.acked, f"acknowledged insert {op.tag} lost"
        for pk in live:
            if pk in merged and pk not in upserted:
                assert merged[pk] == [op.tag]


def make_collection(client: MilvusClient, name: str) -> int:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    from pymilvus import DataType

    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.INT64)
    client.create_collection(name, schema=schema)
    params = client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_index(name, params)
    client.load_collection(name)
    return int(client.describe_collection(name)["collection_id"])


# Meta alone: the router keeps writing, so writes reach meta while it is still starting.
@pytest.mark.parametrize("killed", [("meta", "router"), ("meta",)], ids=["meta+router", "meta"])
def test_crash_of_meta_and_router_loses_no_acknowledged_write(
    cluster: Cluster, router: MilvusClient, name: str, killed: tuple[str, ...]
) -> None:
    collection_id = make_collection(router, name)
    writer = Writer(cluster.router_uri, name)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    time.sleep(4)
    assert any(op.acked for op in writer.ops), "no write went through before the crash"
    for service in killed:
        cluster.kill_service(service)  # SIGKILL of the processes themselves, mid-stream
    time.sleep(1)
    for service in killed:
        cluster.start_service(service)
    writer.restarted.set()
    deadline = time.time() + 60
    while writer.acked_after_restart < 5 and time.time() < deadline:
        time.sleep(0.5)
    writer.stop.set()
    thread.join(60)
    assert writer.acked_after_restart >= 5, "writes did not resume after the restart"
    wait_caught_up(cluster, collection_id)
    check_against_record(writer.ops, copy_contents(cluster, collection_id))
    # the router answers the same rows
    client = MilvusClient(uri=cluster.router_uri)
    total = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    assert total == sum(len(rows) for rows in copy_contents(cluster, collection_id))
    client.drop_collection(name)
    client.close()


def _membership(cluster: Cluster) -> dict[str, Any]:
    with grpc.insecure_channel(cluster.discovery_address) as channel:
        m = discovery_pb2_grpc.DiscoveryStub(channel).ListInstances(discovery_pb2.ListInstancesRequest(), timeout=5)
    return {i.identity: i for i in m.instances}


def test_writable_instance_down_fails_its_shards_clearly(cluster: Cluster, name: str) -> None:
    client = MilvusClient(uri=cluster.router_uri)
    collection_id = make_collection(client, name)
    with grpc.insecure_channel(cluster.meta_address) as channel:
        copies = meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest()).copies
    primary_of = {c.shard: c.instance for c in copies if c.collection_id == collection_id}
    victim = next(inst for inst in cluster.instances if inst.identity == primary_of[1])
    keys = {0: [k for k in range(5000) if shard_of(k, 2) == 0], 1: [k for k in range(5000) if shard_of(k, 2) == 1]}
    rows = lambda ks, tag: [{"id": k, "vector": [0.5] * DIM, "tag": tag} for k in ks]  # noqa: E731
    client.insert(name, rows(keys[0][:10] + keys[1][:10], 1))
    acked = set(keys[0][:10] + keys[1][:10])

    victim.kill()  # the Milvus server process itself
    assert not port_accepts(victim.port), "the killed instance still accepts connections"
    deadline = time.time() + 30
    while _membership(cluster)[victim.identity].health != discovery_pb2.DOWN and time.time() < deadline:
        time.sleep(0.3)
    started = time.time()
    with pytest.raises(MilvusException) as err:
        client.insert(name, rows(keys[1][10:20], 2))
    assert time.time() - started < 10, "the write did not fail fast"
    assert "shard 1" in err.value.message and victim.identity in err.value.message
    client.insert(name, rows(keys[0][10:20], 3))  # the other shard keeps taking writes
    acked |= set(keys[0][10:20])

    victim.start()
    victim.wait_ready(180)
    deadline = time.time() + 60
    while _membership(cluster)[victim.identity].health != discovery_pb2.HEALTHY and time.time() < deadline:
        time.sleep(0.3)
    client.insert(name, rows(keys[1][20:30], 4))  # writes resume
    acked |= set(keys[1][20:30])
    wait_caught_up(cluster, collection_id)
    contents = copy_contents(cluster, collection_id)
    present = [pk for rows_ in contents for pk, tags in rows_.items() for _ in tags]
    assert len(present) == len(set(present)), "a row was applied twice"
    assert acked <= set(present)
    assert not set(keys[1][10:20]) & set(present), "a write refused before it was logged was applied"
    client.drop_collection(name)
    client.close()


# "default": the collection's level is Session and reads name none (pymilvus then sends
# use_default_consistency with the timestamp of its last write).
@pytest.mark.parametrize("level", ["Session", "Strong", "default"])
def test_reads_see_own_writes(cluster: Cluster, name: str, level: str) -> None:
    client = MilvusClient(uri=cluster.router_uri)
    client.create_collection(name, dimension=DIM, consistency_level="Session" if level == "default" else "Bounded")
    at: dict[str, Any] = {} if level == "default" else {"consistency_level": level}
    for round_ in range(3):
        ids = list(range(round_ * 100, round_ * 100 + 50))
        client.insert(name, [{"id": i, "vector": [1.0, float(i), float(i * i % 17), 3.0]} for i in ids])
        count = client.query(name, filter="", output_fields=["count(*)"], **at)[0]["count(*)"]
        assert count == (round_ + 1) * 50
        last = ids[-1]
        hits = client.search(name, data=[[1.0, float(last), float(last * last % 17), 3.0]], limit=1, **at)
        assert hits[0][0]["id"] == ids[-1]
    client.delete(name, ids=list(range(10)))
    count = client.query(name, filter="", output_fields=["count(*)"], **at)[0]["count(*)"]
    assert count == 140
    # Eventually may lag; it must still answer
    client.query(name, filter="", output_fields=["count(*)"], consistency_level="Eventually")
    client.drop_collection(name)
    client.close()


def test_rejected_entry_marks_the_copy_failed_until_repaired(
    cluster: Cluster, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pymilvus.grpc_gen import milvus_pb2, schema_pb2

    from mishards.cli.main import main as mishards_cli

    client = MilvusClient(uri=cluster.router_uri)
    collection_id = make_collection(client, name)
    keys0 = [k for k in range(1000) if shard_of(k, 2) == 0]
    # An entry the router's validation would have refused, logged behind its back: wrong dimension.
    bad = milvus_pb2.InsertRequest(collection_name=f"mishards_{collection_id}_s0", num_rows=1)
    bad.fields_data.add(type=schema_pb2.Int64, field_name="id").scalars.long_data.data.append(keys0[0])
    vec = bad.fields_data.add(type=schema_pb2.FloatVector, field_name="vector")
    vec.vectors.dim = DIM + 1
    vec.vectors.float_vector.data.extend([0.0] * (DIM + 1))
    bad.fields_data.add(type=schema_pb2.Int64, field_name="tag").scalars.long_data.data.append(0)
    with grpc.insecure_channel(cluster.meta_address) as channel:
        stub = meta_pb2_grpc.MetaStub(channel)
        answer = stub.AppendMutations(
            meta_pb2.AppendMutationsRequest(
                collection_id=collection_id,
                entries=[meta_pb2.MutationEntry(shard=0, method="Insert", request=bad.SerializeToString())],
            ),
            timeout=60,
        )
        assert answer.status, "the backend accepted a malformed entry"
        failed = [
            c
            for c in stub.ListCopies(meta_pb2.ListCopiesRequest()).copies
            if c.collection_id == collection_id and c.shard == 0
        ]
        assert failed[0].state == "failed" and "rejected" in failed[0].reason
    # the shard takes no writes until an operator acts; the other shard does
    with pytest.raises(MilvusException) as err:
        client.insert(name, [{"id": keys0[1], "vector": [0.0] * DIM, "tag": 1}])
    assert "shard 0" in err.value.message and "repair" in err.value.message
    keys1 = [k for k in range(1000) if shard_of(k, 2) == 1]
    client.insert(name, [{"id": keys1[0], "vector": [0.0] * DIM, "tag": 1}])
    assert (
        mishards_cli(
            [
                "repair",
                "--meta",
                cluster.meta_address,
                "--collection-id",
                str(collection_id),
                "--shard",
                "0",
                "--instance",
                failed[0].instance,
                "--action",
                "skip",
            ]
        )
        == 0
    )
    client.insert(name, [{"id": keys0[1], "vector": [0.0] * DIM, "tag": 2}])
    rows = client.query(name, filter="id >= 0", output_fields=["tag"], consistency_level="Strong")
    assert sorted(r["id"] for r in rows) == sorted([keys0[1], keys1[0]])
    client.drop_collection(name)
    client.close()
