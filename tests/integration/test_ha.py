"""High availability and elastic writes on real Milvus 2.3.5: staleness in time, make-before-break
replicas, a planned promote, shard moves and drains under load, and a primary lost for good.

One cluster for the module (2 writable + 2 read-only instances at the start); the tests run in
file order and change its membership as they go (an instance added, drained, one lost for good).
PRIMARY_FAILOVER_AFTER is 5 s here (30 s by default) to keep CI short; the window measured
goes in docs/replication.md.
"""

from __future__ import annotations

import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from crashes import DIM, Writer, check_against_record, connect, make_collection, read_copy, wait_caught_up
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from mishards.cli.cluster import Cluster
from mishards.cli.launcher import MilvusInstance
from mishards.cli.main import main as mishards_cli
from mishards.v1 import meta_pb2, meta_pb2_grpc

FAILOVER_AFTER = 5.0
STALENESS_MS = 2000


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(
        root_dir=str(tmp_path_factory.mktemp("ha")),
        writable=2,
        readonly=2,
        router_port=0,
        extra_env={
            "DEFAULT_SHARDS_NUM": "2",
            "READ_REPLICAS": "1",
            "PRIMARY_FAILOVER_AFTER": str(FAILOVER_AFTER),
            "BOUNDED_STALENESS_MS": str(STALENESS_MS),
            "REBALANCE": "auto",
        },
    )
    with c:  # started; stopped by PID on the way out
        yield c


def listing(cluster: Cluster) -> Any:
    with cluster.meta_channel() as channel:
        return meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest(), timeout=10)


def copies(cluster: Cluster, collection_id: int) -> list[Any]:
    return [c for c in listing(cluster).copies if c.collection_id == collection_id]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 180) -> float:
    started = time.time()
    while not check():
        if time.time() - started > timeout:
            raise AssertionError(f"{what}: not after {timeout:.0f}s")
        time.sleep(0.2)
    return time.time() - started


def settled(cluster: Cluster, collection_id: int, replicas: int = 1) -> bool:
    """Every shard has its primary ready and `replicas` ready replicas, and no move is in flight."""
    mine = copies(cluster, collection_id)
    by_shard: dict[int, list[Any]] = {}
    for c in mine:
        by_shard.setdefault(c.shard, []).append(c)
    moving = [m for m in listing(cluster).moves if m.collection_id == collection_id and m.phase != "done"]
    return (
        bool(by_shard)
        and not moving
        and all(
            sum(c.role == "replica" and c.state == "ready" for c in cs) >= replicas
            and sum(c.role == "replica" for c in cs) == replicas
            and all(c.role in ("primary", "replica") for c in cs)
            for cs in by_shard.values()
        )
    )


def instance(cluster: Cluster, identity: str) -> MilvusInstance:
    return next(i for i in cluster.instances if i.identity == identity)


def requests_served(inst: MilvusInstance, method: str) -> int:
    import re

    text = urllib.request.urlopen(f"http://127.0.0.1:{inst.ports['metrics_port']}/metrics", timeout=5).read().decode()
    pattern = re.compile(
        rf'^milvus_proxy_req_count{{function_name="{method}",node_id="\d+",status="total"}} (\S+)$', re.M
    )
    return int(sum(float(m) for m in pattern.findall(text)))


@dataclass
class Load:
    """Writers that record every outcome and Bounded searchers that record every error, over one collection."""

    uri: str
    name: str
    writers: list[Writer] = field(default_factory=list)
    search_errors: list[tuple[float, str]] = field(default_factory=list)
    searches: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, writers: int, searchers: int) -> Load:
        self.writers = [Writer(self.uri, self.name, base=(k + 1) * 10**9) for k in range(writers)]
        self.threads = [threading.Thread(target=w.run, daemon=True) for w in self.writers]
        self.threads += [threading.Thread(target=self._search, daemon=True) for _ in range(searchers)]
        for t in self.threads:
            t.start()
        return self

    def _search(self) -> None:
        client = connect(self.uri)
        rng = np.random.default_rng(3)
        while not self.stop.is_set():
            try:
                client.search(self.name, data=[rng.random(DIM).tolist()], limit=3, consistency_level="Bounded",
                              retry_times=0)  # fmt: skip
                self.searches += 1
            except MilvusException as exc:
                self.search_errors.append((time.time(), str(exc)))
                time.sleep(0.2)
            time.sleep(0.05)
        client.close()

    def finish(self) -> list[Any]:
        for w in self.writers:
            w.stop.set()
        self.stop.set()
        for t in self.threads:
            t.join(120)
        return [op for w in self.writers for op in w.ops]


def primaries_contents(cluster: Cluster, collection_id: int) -> list[dict[int, list[int]]]:
    """Each shard's rows on its primary, read directly; every ready replica must hold the same rows."""
    wait_caught_up(cluster, collection_id, timeout=240)
    placed = [c for c in copies(cluster, collection_id) if c.role in ("primary", "replica") and c.state == "ready"]
    instance = {i.identity: i for i in cluster.instances}
    physical = {c.shard: f"mishards_{collection_id}_s{c.shard}" for c in placed}
    primaries = {c.shard: read_copy(instance[c.instance], physical[c.shard]) for c in placed if c.role == "primary"}
    for c in placed:
        if c.role == "replica":
            rows = read_copy(instance[c.instance], physical[c.shard])
            assert rows == primaries[c.shard], f"replica {c.instance} of shard {c.shard} differs from its primary"
    return list(primaries.values())


def settled_and_intact(
    ha: Cluster, client: MilvusClient, name: str, collection_id: int, load: Load, ops: list[Any], count: bool
) -> None:
    """After a load: writes were acknowledged, the copies settled, no search failed, every
    acknowledged row is on its primary exactly once (and, with `count`, a Strong count agrees); then drop."""
    assert sum(op.acked for op in ops) > 10
    wait_until(lambda: settled(ha, collection_id), "settled")
    assert not load.search_errors, load.search_errors[:3]
    check_against_record(ops, primaries_contents(ha, collection_id))
    if count:
        assert strong_count(client, name) == sum(len(r) for r in primaries_contents(ha, collection_id))
    client.drop_collection(name)
    client.close()


def strong_count(client: MilvusClient, name: str) -> int:
    return int(
        client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong", timeout=120)[0][
            "count(*)"
        ]
    )


def test_a_replica_more_than_the_staleness_behind_stops_serving_bounded_reads(ha: Cluster, name: str) -> None:
    client = connect(ha.router_uri)
    collection_id = make_collection(client, name)
    client.insert(name, [{"id": i, "vector": [0.1 * i] * DIM, "tag": 0} for i in range(20)])
    wait_until(lambda: settled(ha, collection_id), "replicas ready")
    paused = next(c.instance for c in copies(ha, collection_id) if c.role == "replica")
    meta = ha.services["meta"]
    ha.stop_service("meta")
    meta.env["MISHARDS_TEST_PAUSE_APPLY"] = paused  # the replica's applier stops: it lags on demand
    try:
        ha.start_service("meta")
        for k in range(5):
            client.insert(name, [{"id": 1000 + k, "vector": [0.5] * DIM, "tag": 1}])
        time.sleep(STALENESS_MS / 1000 + 1.5)  # past the staleness bound (and one positions refresh)
        before = requests_served(instance(ha, paused), "Search")
        for _ in range(20):
            hits = client.search(name, data=[[0.5] * DIM], limit=25, consistency_level="Bounded")
            assert {h["id"] for h in hits[0]} >= {1000 + k for k in range(5)}, "a Bounded read missed old writes"
        assert requests_served(instance(ha, paused), "Search") == before, "the lagging replica still served"
    finally:
        ha.stop_service("meta")
        del meta.env["MISHARDS_TEST_PAUSE_APPLY"]
        ha.start_service("meta")
    wait_until(lambda: settled(ha, collection_id), "the replica catches up")
    client.drop_collection(name)
    client.close()


def test_replicas_move_make_before_break(ha: Cluster, name: str) -> None:
    client = connect(ha.router_uri)
    collection_id = make_collection(client, name)
    client.insert(name, [{"id": i, "vector": [0.1] * DIM, "tag": 0} for i in range(50)])
    wait_until(lambda: settled(ha, collection_id), "replicas ready")
    lowest: list[int] = []
    stop = threading.Event()

    def watch() -> None:  # the fewest ready replicas any shard had at any moment
        while not stop.is_set():
            ready: dict[int, int] = {0: 0, 1: 0}
            for c in copies(ha, collection_id):
                if c.role == "replica" and c.state == "ready":
                    ready[c.shard] += 1
            lowest.append(min(ready.values()))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        (added,) = ha.add_readonly(1)  # read-only 2 -> 3: rendezvous may move a replica onto it
        wait_until(lambda: settled(ha, collection_id), "placement settles with 3 read-only instances")
        assert mishards_cli(["drain", added.identity, "--meta", ha.meta_address, "--data", str(ha.root_dir)]) == 0
        wait_until(
            lambda: all(c.instance != added.identity for c in copies(ha, collection_id)) and settled(ha, collection_id),
            "the drained instance holds no copy",
        )
        drain = next(d for d in listing(ha).draining if d.instance == added.identity)
        assert drain.copies_left == 0
        ha.remove_instance(added)
    finally:
        stop.set()
        watcher.join(10)
    assert lowest and min(lowest) >= 1, "a shard's ready replicas dropped below READ_REPLICAS"
    assert strong_count(client, name) == 50
    client.drop_collection(name)
    client.close()


def test_a_planned_promote_switches_a_healthy_primary_without_losing_a_write(ha: Cluster, name: str) -> None:
    client = connect(ha.router_uri)
    collection_id = make_collection(client, name)
    wait_until(lambda: settled(ha, collection_id), "replicas ready")
    load = Load(ha.router_uri, name).start(writers=2, searchers=1)
    try:
        time.sleep(2)
        replica = next(c.instance for c in copies(ha, collection_id) if c.shard == 0 and c.role == "replica")
        assert mishards_cli(["promote", name, "0", "--meta", ha.meta_address, "--data", str(ha.root_dir)]) == 0
        assert next(c.role for c in copies(ha, collection_id) if c.shard == 0 and c.instance == replica) == "primary"
        # on a read-only instance now: REBALANCE=auto moves it back to a writable one (a shard move)
        wait_until(
            lambda: (
                next(c.instance for c in copies(ha, collection_id) if c.shard == 0 and c.role == "primary")
                in {i.identity for i in ha.writable_instances}
            ),
            "the promoted primary moves back to a writable instance",
        )
        time.sleep(2)
    finally:
        ops = load.finish()
    settled_and_intact(ha, client, name, collection_id, load, ops, count=False)


def test_shards_move_to_a_new_writable_instance_and_off_a_drained_one_under_load(ha: Cluster, name: str) -> None:
    client = connect(ha.router_uri)
    collection_id = make_collection(client, name, shards=3)  # 2 + 1 over two writable instances
    wait_until(lambda: settled(ha, collection_id), "replicas ready")
    load = Load(ha.router_uri, name).start(writers=2, searchers=2)
    try:
        time.sleep(2)
        (added,) = ha.add_writable(1)  # 3 writable instances: at most ceil(3/3) = 1 primary each
        wait_until(
            lambda: (
                sum(c.role == "primary" and c.instance == added.identity for c in copies(ha, collection_id)) == 1
                and settled(ha, collection_id)
            ),
            "rebalancing moves a shard onto the new instance",
        )
        assert mishards_cli(["drain", added.identity, "--meta", ha.meta_address, "--data", str(ha.root_dir)]) == 0
        wait_until(
            lambda: next(d for d in listing(ha).draining if d.instance == added.identity).copies_left == 0,
            "the drained instance is empty",
        )
        ha.remove_instance(added)
        time.sleep(2)
    finally:
        ops = load.finish()
    settled_and_intact(ha, client, name, collection_id, load, ops, count=True)


def test_a_primary_lost_for_good_is_replaced_by_its_replica(ha: Cluster, name: str) -> None:
    client = connect(ha.router_uri)
    collection_id = make_collection(client, name)
    wait_until(lambda: settled(ha, collection_id), "replicas ready")
    load = Load(ha.router_uri, name).start(writers=4, searchers=2)
    try:
        time.sleep(3)
        lost = instance(ha, next(c.instance for c in copies(ha, collection_id) if c.shard == 0 and c.role == "primary"))
        killed_at = time.time()
        lost.kill()
        shutil.rmtree(lost.data_dir, ignore_errors=True)  # for good: nothing of it comes back
        ddl_refused = wait_until(lambda: _ddl_refused(client, name), "DDL names the lost shard", timeout=FAILOVER_AFTER)
        promoted_after = wait_until(
            lambda: (
                next(c.instance for c in copies(ha, collection_id) if c.shard == 0 and c.role == "primary")
                != lost.identity
            ),
            "a replica is promoted",
            timeout=FAILOVER_AFTER + 60,
        )
        reader = connect(ha.router_uri)
        # Strong reads of the lost shard see every acknowledged write, within the bound
        wait_until(lambda: _strong_ok(reader, name), "a Strong read succeeds", timeout=FAILOVER_AFTER + 60)
        window = time.time() - killed_at
        time.sleep(3)
    finally:
        ops = load.finish()
    acked = sum(op.acked for op in ops)
    assert acked > 10
    print(f"failover: promoted {promoted_after:.1f}s after the kill; Strong reads served again {window:.1f}s after it")
    contents = [rows for rows in primaries_contents(ha, collection_id)]
    check_against_record(ops, contents)
    assert strong_count(reader, name) == sum(len(r) for r in contents)
    assert ddl_refused < FAILOVER_AFTER
    # Bounded searches failed only inside the failover window
    late = [e for e in load.search_errors if e[0] > killed_at + window + 5]
    assert not late, late[:3]
    reader.drop_collection(name)
    reader.close()
    client.close()


def _ddl_refused(client: MilvusClient, name: str) -> bool:
    """A DDL on the collection fails naming the lost shard (until the promotion)."""
    try:
        client.create_partition(name, "p_while_lost", retry_times=0)
        client.drop_partition(name, "p_while_lost")
        return False
    except MilvusException as exc:
        return "shard 0 of collection" in exc.message and "has lost its primary" in exc.message


def _strong_ok(client: MilvusClient, name: str) -> bool:
    try:
        client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong", timeout=10, retry_times=0)
        return True
    except MilvusException:
        return False
