"""The crash test: four writers, SIGKILLs of the router, meta, both and a writable Milvus, then every copy read directly.

Writes are acknowledged once meta's log holds them (WRITE_ACK=logged). After the crashes
and recovery, every physical copy is read on its own Milvus:
- every acknowledged write is present exactly once, on its primary and on every replica;
- each replica equals its primary, row for row;
- a write whose outcome the client did not learn is on every copy or on none.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest
from crashes import DIM, Writer, check_against_record, connect, contents_by_copy, make_collection, wait_caught_up
from pymilvus import MilvusClient

from mishards.cli.cluster import Cluster
from mishards.cli.launcher import MilvusInstance
from mishards.v1 import meta_pb2, meta_pb2_grpc

WRITERS = 4
KILLS = ["router", "meta", "meta+router", "milvus", "router", "meta"]  # shuffled: kills at random moments


@pytest.fixture(scope="module")
def crash_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """2 writable instances and 1 read-only one holding a replica of each of the 2 shards."""
    c = Cluster(
        root_dir=str(tmp_path_factory.mktemp("crash")),
        writable=2,
        readonly=1,
        router_port=0,
        extra_env={"DEFAULT_SHARDS_NUM": "2", "READ_REPLICAS": "1"},
    )
    with c:  # started; stopped by PID on the way out
        yield c


def copies(cluster: Cluster, collection_id: int) -> list[meta_pb2.CopyState]:

    with cluster.meta_channel() as channel:
        answer = meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest(), timeout=10)
    return [c for c in answer.copies if c.collection_id == collection_id]


def wait_replicas_ready(cluster: Cluster, collection_id: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        replicas = [c for c in copies(cluster, collection_id) if c.role == "replica"]
        if len(replicas) == 2 and all(c.state == "ready" for c in replicas):
            return
        time.sleep(0.5)
    raise AssertionError(f"replicas not ready: {copies(cluster, collection_id)}")


def crash(cluster: Cluster, what: str, milvus: MilvusInstance) -> None:
    """SIGKILL the named processes mid-stream, then start them again."""
    if what == "milvus":
        milvus.kill()  # the Milvus server itself: its shard's writes are logged, applied when it is back
        time.sleep(1)
        milvus.start()
        milvus.wait_ready(180)
        return
    services = what.split("+")
    for service in services:
        cluster.kill_service(service)
    time.sleep(1)
    for service in services:  # meta first when both died
        cluster.start_service(service)


def test_acknowledged_writes_survive_kills_of_router_meta_and_milvus(crash_cluster: Cluster, name: str) -> None:
    client = MilvusClient(uri=crash_cluster.router_uri)
    collection_id = make_collection(client, name)
    client.close()
    wait_replicas_ready(crash_cluster, collection_id)
    writers = [Writer(crash_cluster.router_uri, name, base=(k + 1) * 10**9) for k in range(WRITERS)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in writers]
    for t in threads:
        t.start()
    rng = random.Random(15)
    plan = rng.sample(KILLS, len(KILLS))
    try:
        for what in plan:
            time.sleep(rng.uniform(2.0, 5.0))
            crash(crash_cluster, what, rng.choice(crash_cluster.writable_instances))
        for w in writers:
            w.restarted.set()
        deadline = time.time() + 90
        while min(w.acked_after_restart for w in writers) < 5 and time.time() < deadline:
            time.sleep(0.5)
    finally:
        for w in writers:
            w.stop.set()
        for t in threads:
            t.join(120)
    assert all(w.acked_after_restart >= 5 for w in writers), "writes did not resume after the last crash"
    acked = sum(op.acked for w in writers for op in w.ops)
    assert acked > 50, f"only {acked} writes were acknowledged"
    wait_caught_up(crash_cluster, collection_id, timeout=240)
    wait_replicas_ready(crash_cluster, collection_id)

    by_copy = contents_by_copy(crash_cluster, collection_id)
    placement = {
        (f"mishards_{collection_id}_s{c.shard}", c.instance): c.role for c in copies(crash_cluster, collection_id)
    }
    primaries = {
        coll: rows for (coll, identity), rows in by_copy.items() if placement.get((coll, identity)) == "primary"
    }
    assert len(primaries) == 2, f"copies read: {sorted(by_copy)}"
    for (coll, identity), rows in by_copy.items():
        if placement.get((coll, identity)) == "replica":
            assert rows == primaries[coll], f"replica {identity} of {coll} differs from its primary"
    ops = [op for w in writers for op in w.ops]
    check_against_record(ops, list(primaries.values()))
    # the router answers the same rows, at Strong, with no write since
    reader = connect(crash_cluster.router_uri)
    total = reader.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    assert total == sum(len(rows) for rows in primaries.values())
    hits = reader.search(name, data=[[0.0] * DIM], limit=3, consistency_level="Strong")
    assert len(hits[0]) == 3
    reader.drop_collection(name)
    reader.close()
