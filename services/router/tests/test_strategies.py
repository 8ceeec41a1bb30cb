"""Read routing strategies and copy choice (offline)."""

import pytest

from mishards.common.plugins import PluginError
from mishards.common.settings import load_settings
from mishards.router.strategies import ConsistentHashRouter, LeastOutstandingRouter, create_read_strategy
from mishards.router.topology import Topology
from mishards.v1 import discovery_pb2, meta_pb2

SETTINGS = load_settings({}, None)


def test_consistent_hash_keeps_a_shard_on_one_replica() -> None:
    router = ConsistentHashRouter(SETTINGS)
    replicas = ["ro-a:1", "ro-b:1", "ro-c:1"]
    first = {k: router.order(f"mishards_1_s{k}", replicas)[0] for k in range(50)}
    assert first == {k: router.order(f"mishards_1_s{k}", list(reversed(replicas)))[0] for k in range(50)}
    assert len(set(first.values())) == 3  # shards spread over the replicas


def test_consistent_hash_moves_few_shards_when_a_replica_joins() -> None:
    router = ConsistentHashRouter(SETTINGS)
    before = {k: router.order(f"s{k}", ["a", "b", "c"])[0] for k in range(300)}
    after = {k: router.order(f"s{k}", ["a", "b", "c", "d"])[0] for k in range(300)}
    moved = [k for k in before if before[k] != after[k]]
    assert all(after[k] == "d" for k in moved)  # only shards that now prefer the newcomer move
    assert 30 < len(moved) < 120  # about a quarter


def test_least_outstanding_prefers_the_idle_replica() -> None:
    router = LeastOutstandingRouter(SETTINGS)
    router.started("a")
    router.started("a")
    router.started("b")
    assert router.order("s0", ["a", "b", "c"])[0] == "c"
    router.finished("a")
    router.finished("a")
    router.started("c")
    assert router.order("s0", ["a", "b", "c"])[0] == "a"


def test_names_aliases_and_user_plugins(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(create_read_strategy(SETTINGS), ConsistentHashRouter)
    assert isinstance(create_read_strategy(SETTINGS, "FileBasedHashRingRouter"), ConsistentHashRouter)
    assert isinstance(create_read_strategy(SETTINGS, "LeastOutstandingRouter"), LeastOutstandingRouter)
    with pytest.raises(PluginError) as err:
        create_read_strategy(SETTINGS, "Nope")
    assert "LeastOutstandingRouter" in str(err.value)
    (tmp_path / "mine.py").write_text(
        "from mishards.router.strategies import ReadStrategy\n"
        "class FirstRouter(ReadStrategy):\n"
        "    def order(self, shard_key, replicas):\n"
        "        return sorted(replicas)\n"
    )
    user = create_read_strategy(load_settings({"ROUTER_PLUGIN_PATH": str(tmp_path)}, None), "FirstRouter")
    assert user.order("x", ["b", "a"]) == ["a", "b"]


class FakeMembership:
    def __init__(self, instances: list[discovery_pb2.Instance]) -> None:
        self.membership = discovery_pb2.Membership(version=1, instances=instances)

    def by_identity(self) -> dict[str, discovery_pb2.Instance]:
        return {i.identity: i for i in self.membership.instances}


def _inst(identity: str, role: int, health: int = discovery_pb2.HEALTHY) -> discovery_pb2.Instance:
    return discovery_pb2.Instance(identity=identity, address=identity, role=role, health=health)


def test_read_targets_replicas_first_primary_last_and_strong_on_primary() -> None:
    members = FakeMembership([
        _inst("wo:1", discovery_pb2.WRITABLE),
        _inst("ro1:1", discovery_pb2.READONLY),
        _inst("ro2:1", discovery_pb2.READONLY, discovery_pb2.DOWN),
    ])  # fmt: skip
    topo = Topology(members, ConsistentHashRouter(SETTINGS))  # type: ignore[arg-type]
    shard = meta_pb2.ShardPlacement(index=0, physical_name="p", primary="wo:1", replicas=["ro1:1", "ro2:1"])
    targets = topo.read_targets(shard, "c", primary_only=False)
    assert [(t.address, t.role) for t in targets] == [("ro1:1", "replica"), ("wo:1", "primary")]
    assert [t.address for t in topo.read_targets(shard, "c", primary_only=True)] == ["wo:1"]
    topo.suspect("ro1:1")  # did not answer: last choice for a while
    assert [t.address for t in topo.read_targets(shard, "c", primary_only=False)] == ["wo:1", "ro1:1"]


def test_no_copy_that_can_serve_is_a_clear_error() -> None:
    members = FakeMembership([_inst("wo:1", discovery_pb2.WRITABLE, discovery_pb2.DOWN)])
    topo = Topology(members, ConsistentHashRouter(SETTINGS))  # type: ignore[arg-type]
    shard = meta_pb2.ShardPlacement(index=3, physical_name="p", primary="wo:1")
    with pytest.raises(Exception) as err:
        topo.read_targets(shard, "coll", primary_only=False)
    assert "shard 3 of collection coll" in str(err.value)


def test_outstanding_requests_are_counted_by_the_replica_targets_identity() -> None:
    roles = {"wo": discovery_pb2.WRITABLE, "ro1": discovery_pb2.READONLY, "ro2": discovery_pb2.READONLY}
    members = FakeMembership([
        discovery_pb2.Instance(identity=i, address=f"10.0.0.{n}:1", role=role, health=discovery_pb2.HEALTHY)
        for n, (i, role) in enumerate(roles.items())
    ])  # fmt: skip
    strategy = LeastOutstandingRouter(SETTINGS)
    topo = Topology(members, strategy)  # type: ignore[arg-type]
    shard = meta_pb2.ShardPlacement(index=0, physical_name="p", primary="wo", replicas=["ro1", "ro2"])
    first, second, primary = topo.read_targets(shard, "c", primary_only=False)
    assert (first.identity, primary.identity, primary.role) == (strategy.order("p", ["ro1", "ro2"])[0], "wo", "primary")
    topo.started(first)
    topo.started(primary)  # the strategy orders replicas: the primary's requests are not its to count
    assert [t.identity for t in topo.read_targets(shard, "c", primary_only=False)] == [
        second.identity,
        first.identity,
        "wo",
    ]
    topo.finished(first)
    topo.finished(primary)
    assert topo.read_targets(shard, "c", primary_only=False)[0] == first
