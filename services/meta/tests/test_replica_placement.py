from mishards.meta.replicas import place_replicas


def test_replicas_capped_by_read_only_instances() -> None:
    assert len(place_replicas(1, 0, ["a", "b"], 3)) == 2
    assert place_replicas(1, 0, [], 2) == []


def test_adding_an_instance_moves_few_replicas() -> None:
    ro = [f"ro-{i}:19530" for i in range(4)]
    before = {(c, k): set(place_replicas(c, k, ro, 2)) for c in range(20) for k in range(8)}
    after = {(c, k): set(place_replicas(c, k, ro + ["ro-new:19530"], 2)) for c in range(20) for k in range(8)}
    moved = sum(len(before[key] - after[key]) for key in before)
    total = sum(len(v) for v in before.values())
    # consistent hashing: about 2/5 of shards gain the newcomer, each moving one replica
    assert 0 < moved < total * 0.55
    for key in before:
        assert after[key] - before[key] <= {"ro-new:19530"}


def test_placement_is_deterministic() -> None:
    assert place_replicas(7, 3, ["x", "y", "z"], 2) == place_replicas(7, 3, ["z", "x", "y"], 2)
