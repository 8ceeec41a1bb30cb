"""Crash-test pieces: writers that record each write's outcome, and checks of every physical copy against that record."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import grpc
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from mishards.cli.cluster import Cluster
from mishards.cli.launcher import MilvusInstance
from mishards.v1 import meta_pb2, meta_pb2_grpc

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
    base: int = 0  # keys and tags of this writer start here (several writers share a collection)
    ops: list[Op] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    acked_after_restart: int = 0
    restarted: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(7 + self.base)
        client = MilvusClient(uri=self.uri)
        upsertable: list[int] = []  # rows of acked inserts no other op has touched
        deletable: list[int] = []
        i = 0
        while not self.stop.is_set():
            i += 1
            kind = "insert" if i % 3 or len(upsertable) < 20 else ("upsert" if i % 2 else "delete")
            if kind == "insert":
                op = Op("insert", list(range(self.base + i * 1000, self.base + i * 1000 + 12)), tag=self.base + i)
            elif kind == "upsert":
                op = Op("upsert", [upsertable.pop(rng.randrange(len(upsertable))) for _ in range(6)], tag=self.base + i)
            else:
                op = Op("delete", [upsertable.pop(rng.randrange(len(upsertable))) for _ in range(6)], tag=self.base + i)
            rows = [{"id": pk, "vector": [float(pk % 7)] * DIM, "tag": op.tag} for pk in op.pks]
            # No client-side retry: pymilvus would resend a write whose answer a killed router lost,
            # and a resent insert adds its rows again (on one Milvus too). Each outcome is recorded.
            once = {"retry_times": 0, "retry_on_rate_limit": False}
            try:
                if kind == "insert":
                    client.insert(self.name, rows, **once)
                elif kind == "upsert":
                    client.upsert(self.name, rows, **once)
                else:
                    client.delete(self.name, ids=op.pks, **once)
                op.acked = True
                if self.restarted.is_set():
                    self.acked_after_restart += 1
            except MilvusException as exc:
                op.error = str(exc)
                client.close()
                time.sleep(0.2)
                client = connect(self.uri)
            self.ops.append(op)
            if op.acked and kind == "insert":
                half = len(op.pks) // 2
                upsertable.extend(op.pks[:half])
                deletable.extend(op.pks[half:])
            elif not op.acked and kind != "insert":
                pass  # its rows stay out of later ops: their state is ambiguous
        client.close()


def connect(uri: str, timeout: float = 60) -> MilvusClient:
    """A client of a router that may be restarting."""
    deadline = time.time() + timeout
    while True:
        try:
            return MilvusClient(uri=uri)
        except MilvusException:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def wait_caught_up(cluster: Cluster, collection_id: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    with cluster.meta_channel() as channel:
        stub = meta_pb2_grpc.MetaStub(channel)
        while time.time() < deadline:
            try:
                copies = [
                    c
                    for c in stub.ListCopies(meta_pb2.ListCopiesRequest(), timeout=5).copies
                    if c.collection_id == collection_id and c.role not in ("fenced", "retired")
                ]
                if copies and all(c.applied_seq == c.last_seq and c.state == "ready" for c in copies):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
    raise AssertionError("copies did not catch up with the log")


def read_copy(instance: MilvusInstance, physical: str) -> dict[int, list[int]]:
    """pk -> [tag of each row with that pk] of one physical copy, read on its own Milvus (duplicates show as 2 tags)."""
    client = MilvusClient(uri=instance.uri, token=instance.token)
    try:
        client.load_collection(physical)
        rows: dict[int, list[int]] = {}
        for r in client.query(physical, filter="id >= 0", output_fields=["tag"], consistency_level="Strong"):
            rows.setdefault(r["id"], []).append(r["tag"])
        return rows
    finally:
        client.close()


def contents_by_copy(cluster: Cluster, collection_id: int) -> dict[tuple[str, str], dict[int, list[int]]]:
    """(physical collection, instance identity) -> its rows, for every copy of the collection on every instance."""
    out: dict[tuple[str, str], dict[int, list[int]]] = {}
    for inst in cluster.instances:
        try:
            client = MilvusClient(uri=inst.uri, token=inst.token)
        except MilvusException:  # an instance lost for good holds nothing to read
            continue
        names = [c for c in client.list_collections() if c.startswith(f"mishards_{collection_id}_s")]
        client.close()
        for coll in names:
            out[(coll, inst.identity)] = read_copy(inst, coll)
    return out


def copy_contents(cluster: Cluster, collection_id: int) -> list[dict[int, list[int]]]:
    """The rows of every physical copy (a cluster without replicas: one per shard)."""
    return list(contents_by_copy(cluster, collection_id).values())


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


def make_collection(client: MilvusClient, name: str, shards: int | None = None) -> int:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.INT64)
    client.create_collection(name, schema=schema, **({"num_shards": shards} if shards else {}))
    params = client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_index(name, params)
    client.load_collection(name)
    return int(client.describe_collection(name)["collection_id"])
