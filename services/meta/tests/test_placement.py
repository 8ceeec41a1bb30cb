import math

import pytest

from mishards.meta.placement import place_primaries


@pytest.mark.parametrize("shards", [1, 2, 3, 5, 8, 17])
@pytest.mark.parametrize("writable", [1, 2, 3, 4])
def test_no_instance_holds_more_than_ceil_s_over_w(shards: int, writable: int) -> None:
    instances = [f"10.0.0.{i}:19530" for i in range(writable)]
    placement = place_primaries("default/c", shards, instances)
    assert len(placement) == shards
    cap = math.ceil(shards / writable)
    assert max(placement.count(i) for i in instances) <= cap
    assert set(placement) <= set(instances)


def test_placement_is_stable_and_order_independent() -> None:
    a = place_primaries("db/x", 4, ["b:1", "a:1", "c:1"])
    assert a == place_primaries("db/x", 4, ["c:1", "b:1", "a:1"])


def test_two_shards_on_two_instances_use_both() -> None:
    assert sorted(place_primaries("default/t", 2, ["a:1", "b:1"])) == ["a:1", "b:1"]


def test_no_writable_instance_is_an_error() -> None:
    with pytest.raises(ValueError):
        place_primaries("x", 2, [])
