"""Read-only replicas: reads served by them, scale-out under load, failover (real Milvus)."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from mishards.cli.cluster import Cluster
from mishards.cli.launcher import MilvusInstance
from mishards.cli.ports import port_accepts
from mishards.common.settings import load_settings
from mishards.router.strategies import ConsistentHashRouter
from mishards.v1 import meta_pb2, meta_pb2_grpc

DIM = 8


@pytest.fixture(scope="module")
def rcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """1 writable + 2 read-only instances, 2 shards, a replica of each shard on every read-only instance."""
    c = Cluster(
        root_dir=str(tmp_path_factory.mktemp("replicas")),
        writable=1,
        readonly=2,
        router_port=0,
        # every read-only instance holds a replica of every shard, so one that joins gets replicas for sure
        extra_env={"DEFAULT_SHARDS_NUM": "2", "READ_REPLICAS": "3", "MAX_RETRY": "3"},
    )
    with c:  # started; stopped by PID on the way out
        yield c


def requests_served(inst: MilvusInstance, method: str) -> int:
    """The instance's own count of `method` requests (Milvus's /metrics, not the router's view)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{inst.ports['metrics_port']}/metrics", timeout=5).read().decode()
    pattern = re.compile(
        rf'^milvus_proxy_req_count{{function_name="{method}",node_id="\d+",status="total"}} (\S+)$', re.M
    )
    return int(sum(float(m) for m in pattern.findall(text)))


def copies(cluster: Cluster, collection_id: int) -> list[Any]:
    with cluster.meta_channel() as channel:
        answer = meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest(), timeout=5)
    return [c for c in answer.copies if c.collection_id == collection_id]


def wait_replicas_ready(cluster: Cluster, collection_id: int, replicas: int, timeout: float = 180) -> list[Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        cs = copies(cluster, collection_id)
        ready = [c for c in cs if c.role == "replica" and c.state == "ready" and c.applied_seq == c.last_seq]
        if len(ready) >= replicas and len([c for c in cs if c.role == "replica"]) == len(ready):
            return cs
        time.sleep(0.5)
    raise AssertionError(f"replicas not ready: {copies(cluster, collection_id)}")


def make_collection(client: MilvusClient, name: str) -> int:
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("group", DataType.INT64)
    client.create_collection(name, schema=schema, consistency_level="Bounded")
    params = client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_index(name, params)
    client.load_collection(name)
    return int(client.describe_collection(name)["collection_id"])


def rows(start: int, n: int) -> list[dict[str, Any]]:
    vecs = np.random.default_rng(start).normal(size=(n, DIM)).astype(np.float32)
    return [{"id": start + i, "vector": vecs[i].tolist(), "group": (start + i) % 5, "extra": i % 3} for i in range(n)]


def wait_visible(client: MilvusClient, name: str, count: int, level: str = "Bounded", timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = client.query(name, filter="", output_fields=["count(*)"], consistency_level=level)[0]["count(*)"]
        if got == count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{level} reads never saw {count} rows")


def wait_router_reads_replicas(cluster: Cluster, client: MilvusClient, name: str, timeout: float = 15) -> None:
    """Wait until the router's catalog (followed from meta) shows the ready replicas."""
    writable = cluster.writable_instances[0]
    deadline = time.time() + timeout
    while time.time() < deadline:
        before = requests_served(writable, "Search")
        client.search(name, data=[[0.0] * DIM], limit=1, consistency_level="Bounded")
        if requests_served(writable, "Search") == before:
            return
        time.sleep(0.2)
    raise AssertionError("the router still sends Bounded searches to the writable instance")


def test_reads_are_served_by_read_only_copies(rcluster: Cluster) -> None:
    client = MilvusClient(uri=rcluster.router_uri)
    name = "replica_reads"
    collection_id = make_collection(client, name)
    data = rows(0, 2000)
    client.insert(name, data)
    state = wait_replicas_ready(rcluster, collection_id, replicas=2)
    assert {c.instance for c in state if c.role == "replica"} <= {i.identity for i in rcluster.readonly_instances}
    wait_visible(client, name, 2000)
    wait_router_reads_replicas(rcluster, client, name)
    writable = rcluster.writable_instances[0]
    before = {i.identity: (requests_served(i, "Search"), requests_served(i, "Query")) for i in rcluster.instances}
    queries = [d["vector"] for d in data[:5]]
    bounded = [client.search(name, data=queries, limit=10, consistency_level="Bounded") for _ in range(10)]
    grouped = [client.query(name, filter="group == 3", output_fields=["extra"], consistency_level="Bounded")
               for _ in range(10)]  # fmt: skip
    after = {i.identity: (requests_served(i, "Search"), requests_served(i, "Query")) for i in rcluster.instances}
    assert after[writable.identity] == before[writable.identity], "the writable instance served Bounded reads"
    served = sum(after[i.identity][0] - before[i.identity][0] for i in rcluster.readonly_instances)
    assert served == 10 * 2, f"read-only instances served {served} shard searches, expected 20"
    assert sum(after[i.identity][1] - before[i.identity][1] for i in rcluster.readonly_instances) == 20
    # and the answers equal those of the primaries (Strong reads go there)
    strong = client.search(name, data=queries, limit=10, consistency_level="Strong")
    for res in bounded:
        assert [[h["id"] for h in q] for q in res] == [[h["id"] for h in q] for q in strong]
    expected = sorted(d["id"] for d in data if d["group"] == 3)
    for res in grouped:
        assert sorted(r["id"] for r in res) == expected
    client.drop_collection(name)
    client.close()


@pytest.mark.parametrize("level", ["Session", "Strong"])
def test_reads_that_must_see_writes_use_replicas_that_have_applied_them(rcluster: Cluster, level: str) -> None:
    """A Session or Strong read sees the client's write at once (the primary serves it while the
    replicas apply it); once the replicas have applied it, they serve those reads, not the primary."""
    client = MilvusClient(uri=rcluster.router_uri)
    name = f"replica_{level.lower()}_reads"
    collection_id = make_collection(client, name)
    client.insert(name, rows(0, 500))
    wait_replicas_ready(rcluster, collection_id, replicas=2)
    wait_visible(client, name, 500)
    wait_router_reads_replicas(rcluster, client, name)
    client.insert(name, rows(500, 7))  # the client's Session timestamp is now this write's
    assert client.query(name, filter="", output_fields=["count(*)"], consistency_level=level)[0]["count(*)"] == 507
    assert [r["id"] for r in client.query(name, filter="id >= 500", consistency_level=level)] == list(range(500, 507))
    wait_replicas_ready(rcluster, collection_id, replicas=2)
    writable = rcluster.writable_instances[0]
    before = {i.identity: requests_served(i, "Query") for i in rcluster.instances}
    counts = [
        client.query(name, filter="", output_fields=["count(*)"], consistency_level=level)[0]["count(*)"]
        for _ in range(10)
    ]
    after = {i.identity: requests_served(i, "Query") for i in rcluster.instances}
    assert counts == [507] * 10
    assert after[writable.identity] == before[writable.identity], f"the primary served {level} reads replicas could"
    assert sum(after[i.identity] - before[i.identity] for i in rcluster.readonly_instances) == 10 * 2
    client.drop_collection(name)
    client.close()


def test_scale_out_under_load(rcluster: Cluster) -> None:
    client = MilvusClient(uri=rcluster.router_uri)
    name = "replica_scale"
    collection_id = make_collection(client, name)
    client.insert(name, rows(0, 500))
    wait_replicas_ready(rcluster, collection_id, replicas=2)
    acked: list[int] = []
    reader_errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        w = MilvusClient(uri=rcluster.router_uri)
        start = 10_000
        while not stop.is_set():
            batch = rows(start, 50)
            w.insert(name, batch)
            acked.extend(r["id"] for r in batch)
            start += 50
            time.sleep(0.05)
        w.close()

    def reader() -> None:
        r = MilvusClient(uri=rcluster.router_uri)
        q = rows(0, 1)[0]["vector"]
        while not stop.is_set():
            try:
                r.search(name, data=[q], limit=5, consistency_level="Bounded")
                r.query(name, filter="group == 1", limit=10, consistency_level="Bounded")
            except MilvusException as exc:
                reader_errors.append(str(exc))
        r.close()

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        (new,) = rcluster.add_readonly(1)
        with rcluster.meta_channel() as channel:
            stub = meta_pb2_grpc.MetaStub(channel)
            deadline = time.time() + 180
            while time.time() < deadline:
                cs = [
                    c for c in stub.ListCopies(meta_pb2.ListCopiesRequest()).copies if c.collection_id == collection_id
                ]
                if any(c.instance == new.identity and c.state == "ready" for c in cs):
                    break
                time.sleep(0.5)
            else:
                raise AssertionError("the new instance got no ready replica")
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not reader_errors, reader_errors[:3]
    wait_replicas_ready(rcluster, collection_id, replicas=2)
    # the new replica serves: find a collection with a shard whose first choice it is
    probe_name, probe_id = name, collection_id
    for attempt in range(12):
        ready = [c for c in copies(rcluster, probe_id) if c.role == "replica" and c.state == "ready"]
        firsts = {
            ConsistentHashRouter(load_settings({}, None)).order(
                f"mishards_{probe_id}_s{k}", sorted(c.instance for c in ready if c.shard == k)
            )[0]
            for k in (0, 1)
        }
        if new.identity in firsts:
            break
        probe_name = f"{name}_probe{attempt}"
        probe_id = make_collection(client, probe_name)
        client.insert(probe_name, rows(0, 50))
        wait_replicas_ready(rcluster, probe_id, replicas=6)
    assert new.identity in firsts, "no shard prefers the new instance (hashing)"
    wait_visible(client, probe_name, 50 if probe_name != name else 500 + len(acked))
    before = requests_served(new, "Search")
    q = rows(0, 1)[0]["vector"]
    for _ in range(10):
        client.search(probe_name, data=[q], limit=5, consistency_level="Bounded")
    assert requests_served(new, "Search") > before, "the new replica does not serve"
    total = 500 + len(acked)
    wait_visible(client, name, total)
    got = client.query(name, filter="id >= 0", output_fields=["id"], consistency_level="Strong")
    ids = [r["id"] for r in got]
    assert len(ids) == len(set(ids)) == total and set(acked) <= set(ids)
    client.drop_collection(name)
    client.close()


def test_failover_when_a_read_only_instance_dies(rcluster: Cluster) -> None:
    client = MilvusClient(uri=rcluster.router_uri)
    name = "replica_failover"
    collection_id = make_collection(client, name)
    client.insert(name, rows(0, 800))
    state = wait_replicas_ready(rcluster, collection_id, replicas=2)
    wait_visible(client, name, 800)
    # the victim is the replica shard 0's reads go to first, so it must serve again after its restart
    ready0 = sorted(c.instance for c in state if c.role == "replica" and c.shard == 0)
    first = ConsistentHashRouter(load_settings({}, None)).order(f"mishards_{collection_id}_s0", ready0)[0]
    victim = next(i for i in rcluster.readonly_instances if i.identity == first)
    errors_seen: list[str] = []
    done = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal done
        r = MilvusClient(uri=rcluster.router_uri)
        q = rows(0, 1)[0]["vector"]
        while not stop.is_set():
            try:
                res = r.search(name, data=[q], limit=5, consistency_level="Bounded")
                assert res[0][0]["id"] == 0
                done += 1
            except (MilvusException, AssertionError) as exc:
                errors_seen.append(str(exc))
        r.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        time.sleep(1.5)
        victim.kill()  # the Milvus server process listening on its gRPC port
        assert not port_accepts(victim.port), "the killed instance still accepts connections"
        time.sleep(5)
    finally:
        stop.set()
        thread.join(60)
    assert done > 10 and not errors_seen, errors_seen[:3]
    client.insert(name, rows(5000, 100))  # written while the replica is away: it must catch up
    victim.start()
    victim.wait_ready(180)
    state = wait_replicas_ready(rcluster, collection_id, replicas=2)
    assert any(c.instance == victim.identity and c.state == "ready" for c in state)
    wait_visible(client, name, 900)
    before = requests_served(victim, "Search")
    q = rows(0, 1)[0]["vector"]
    deadline = time.time() + 30
    while requests_served(victim, "Search") == before and time.time() < deadline:
        client.search(name, data=[q], limit=5, consistency_level="Bounded")
    assert requests_served(victim, "Search") > before, "the restarted replica did not return to rotation"
    client.drop_collection(name)
    client.close()
