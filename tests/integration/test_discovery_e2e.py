"""Discovery end to end through the router, with the consul and kubernetes back ends on their fakes.

Each back end gets its own embedded cluster (milvus-lite instances, discovery, meta,
router as processes) whose discovery reads a fake Consul agent or a fake Kubernetes
API server running in this test process. The tests then change the fake the way an
operator (or Kubernetes) would and watch the router follow.
"""

from __future__ import annotations

import abc
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymilvus import MilvusClient, MilvusException

from mishards.cli.cluster import Cluster
from mishards.cli.launcher import MilvusInstance, open_instances
from mishards.common.hashing import shard_of
from mishards.discovery.fakes import FakeConsul, FakeKubernetes, make_pod
from mishards.v1 import discovery_pb2, discovery_pb2_grpc

SHARDS = 3
DIM = 4


class Source(abc.ABC):
    """Registers Milvus instances in a back end's fake, as Consul agents or Kubernetes would."""

    env: dict[str, str]

    @abc.abstractmethod
    def add(self, inst: MilvusInstance) -> None: ...

    @abc.abstractmethod
    def remove(self, inst: MilvusInstance) -> None: ...

    @abc.abstractmethod
    def identity(self, inst: MilvusInstance) -> str: ...

    @abc.abstractmethod
    def stop(self) -> None: ...


class ConsulSource(Source):
    def __init__(self) -> None:
        self.fake = FakeConsul().start()
        self.env = {
            "DISCOVERY_CLASS_NAME": "consul",
            "DISCOVERY_CONSUL_HOST": "127.0.0.1",
            "DISCOVERY_CONSUL_PORT": str(self.fake.port),
        }

    def add(self, inst: MilvusInstance) -> None:
        service = "milvus-wo" if inst.role == "writable" else "milvus-ro"
        self.fake.register(service, self.identity(inst), "127.0.0.1", inst.port)

    def remove(self, inst: MilvusInstance) -> None:
        self.fake.deregister(self.identity(inst))

    def identity(self, inst: MilvusInstance) -> str:
        return f"milvus-{inst.port}"  # the Consul service ID

    def stop(self) -> None:
        self.fake.stop()


class KubernetesSource(Source):
    def __init__(self, folder: Path) -> None:
        self.fake = FakeKubernetes().start()
        self.env = {
            "DISCOVERY_CLASS_NAME": "kubernetes",
            "KUBECONFIG": self.fake.write_kubeconfig(folder / "kubeconfig", namespace="milvus"),
            "DISCOVERY_KUBERNETES_NAMESPACE": "milvus",
            "DISCOVERY_KUBERNETES_POLL_INTERVAL": "2",
        }

    def add(self, inst: MilvusInstance) -> None:
        self.fake.put_pod(make_pod(self.identity(inst), "127.0.0.1", inst.port, inst.role))

    def remove(self, inst: MilvusInstance) -> None:
        self.fake.delete_pod(self.identity(inst))

    def identity(self, inst: MilvusInstance) -> str:
        return f"milvus-{inst.role}-{inst.port}"  # the pod name

    def stop(self) -> None:
        self.fake.stop()


class Env:
    def __init__(self, cluster: Cluster, source: Source, spare: MilvusInstance) -> None:
        self.cluster = cluster
        self.source = source
        self.spare = spare
        self.client = MilvusClient(uri=cluster.router_uri)

    def membership(self) -> dict[str, discovery_pb2.Instance]:
        with self.cluster.discovery_channel() as channel:
            reply = discovery_pb2_grpc.DiscoveryStub(channel).ListInstances(
                discovery_pb2.ListInstancesRequest(), timeout=5
            )
        return {i.identity: i for i in reply.instances}

    def wait_health(self, identity: str, health: int | None, timeout: float = 30.0) -> None:
        """Until discovery reports `identity` with `health` (None: absent)."""
        deadline = time.monotonic() + timeout
        seen: object = None
        while time.monotonic() < deadline:
            inst = self.membership().get(identity)
            seen = inst.health if inst is not None else None
            if seen == health:
                # Meta and the router follow discovery's watch stream; give them a moment.
                time.sleep(1.5)
                return
            time.sleep(0.2)
        raise AssertionError(f"{identity}: expected health {health}, discovery says {seen}")

    def physical_shards(self, inst: MilvusInstance) -> set[str]:
        client = MilvusClient(uri=inst.uri, token=inst.token)
        try:
            return {c for c in client.list_collections() if c.startswith("mishards_")}
        finally:
            client.close()

    def create(self) -> str:
        name = "e2e_" + uuid.uuid4().hex[:10]
        self.client.create_collection(name, dimension=DIM, shards_num=SHARDS, auto_id=False)
        return name

    def create_and_find_spare_shard(self) -> tuple[str, int]:
        """A new collection and the index of its shard whose primary is on the spare."""
        before = self.physical_shards(self.spare)
        name = self.create()
        (physical,) = self.physical_shards(self.spare) - before
        return name, int(physical.rsplit("_s", 1)[1])


@pytest.fixture(scope="module", params=["consul", "kubernetes"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp(f"discovery-e2e-{request.param}")
    source: Source = ConsulSource() if request.param == "consul" else KubernetesSource(root)
    cluster = Cluster(
        root_dir=str(root),
        writable=2,
        readonly=0,
        backend="milvus-lite",
        router_port=0,
        extra_env={**source.env, "DISCOVERY_PROBE_INTERVAL": "0.5", "LOG_LEVEL": "INFO"},
        start_timeout=60,
    )
    spare: MilvusInstance | None = None
    try:
        cluster.start()
        spare = open_instances(root, 3, 0, "milvus-lite")[2]  # a third writable instance, not yet known
        spare.start()
        spare.wait_ready(60)
        e = Env(cluster, source, spare)
        for inst in cluster.writable_instances:
            source.add(inst)
        for inst in cluster.writable_instances:
            e.wait_health(source.identity(inst), discovery_pb2.HEALTHY)
        yield e
        e.client.close()
    finally:
        if spare is not None:
            spare.stop()
        cluster.stop()
        source.stop()


def rows(ids: list[int]) -> list[dict[str, object]]:
    return [{"id": i, "vector": [float(i), 0.0, 1.0, 0.5]} for i in ids]


def test_added_writable_instance_gets_shards_of_new_collections(env: Env) -> None:
    before = env.create()
    assert not env.physical_shards(env.spare), "the spare is not known yet"
    env.source.add(env.spare)
    env.wait_health(env.source.identity(env.spare), discovery_pb2.HEALTHY)
    held_before = env.physical_shards(env.spare)
    name = env.create()
    held = env.physical_shards(env.spare) - held_before
    assert len(held) == 1, f"3 shards over 3 writable instances: one each, got {held}"
    env.client.insert(name, rows(list(range(30))))
    assert (
        env.client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"] == 30
    )
    env.client.insert(before, rows(list(range(10))))  # older collections keep their placement


def strong_count(env: Env, name: str, **kw: Any) -> int:
    return int(
        env.client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong", **kw)[0]["count(*)"]
    )


def test_removed_instance_fails_its_shards_reads_clearly_others_keep_working(env: Env) -> None:
    env.source.add(env.spare)
    env.wait_health(env.source.identity(env.spare), discovery_pb2.HEALTHY)
    name, lost = env.create_and_find_spare_shard()
    env.source.remove(env.spare)
    env.wait_health(env.source.identity(env.spare), None)
    try:
        healthy_ids = [i for i in range(200) if shard_of(i, SHARDS) != lost][:20]
        lost_ids = [i for i in range(200) if shard_of(i, SHARDS) == lost][:5]
        assert env.client.insert(name, rows(healthy_ids))["insert_count"] == 20
        # logged and acknowledged, applied when the instance is back (or its shard has another copy)
        assert env.client.insert(name, rows(lost_ids))["insert_count"] == 5
        with pytest.raises(MilvusException) as info:
            strong_count(env, name, retry_times=0)
        message = str(info.value)
        assert f"shard {lost} of collection" in message and info.value.code == 2, message
        assert env.source.identity(env.spare) in message, message
    finally:
        env.source.add(env.spare)
        env.wait_health(env.source.identity(env.spare), discovery_pb2.HEALTHY)
    assert strong_count(env, name, timeout=60) == 25


def test_instance_failing_probes_leaves_the_serving_membership_and_returns_after_recovery(env: Env) -> None:
    env.source.add(env.spare)
    identity = env.source.identity(env.spare)
    env.wait_health(identity, discovery_pb2.HEALTHY)
    name, lost = env.create_and_find_spare_shard()
    lost_ids = [i for i in range(200) if shard_of(i, SHARDS) == lost][:5]
    env.spare.stop()  # still registered in the back end, but its health probes fail
    try:
        env.wait_health(identity, discovery_pb2.DOWN)
        assert env.membership()[identity].reason, "a DOWN instance says why"
        assert env.client.insert(name, rows(lost_ids))["insert_count"] == 5  # logged, applied on its return
        with pytest.raises(MilvusException, match=f"shard {lost} of collection"):
            strong_count(env, name, retry_times=0)
        # Out of the serving membership: a collection created now gets no shard on it.
        others = env.cluster.writable_instances
        before = set().union(*(env.physical_shards(inst) for inst in others))
        env.create()
        placed = set().union(*(env.physical_shards(inst) for inst in others)) - before
        assert len(placed) == SHARDS, f"every shard on the healthy instances, got {placed}"
    finally:
        env.spare.start()
        env.spare.wait_ready(60)
    env.wait_health(identity, discovery_pb2.HEALTHY)
    assert strong_count(env, name, timeout=60) == 5  # the rows logged while it was down
    env.create_and_find_spare_shard()  # back in the serving membership: new collections place a shard on it
