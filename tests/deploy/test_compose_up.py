"""deploy/all_in_one/up.py's start order, offline: what it computes from the compose file."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from conftest import REPO

spec = importlib.util.spec_from_file_location("compose_up", REPO / "deploy/all_in_one/up.py")
assert spec and spec.loader
up = importlib.util.module_from_spec(spec)
spec.loader.exec_module(up)


def test_the_all_in_one_starts_each_service_after_what_it_waits_for():
    services = yaml.safe_load((REPO / "deploy/all_in_one/docker-compose.yml").read_text())["services"]
    order = up.start_order(services, without=["jaeger"])
    assert set(order) == set(services) - {"jaeger"}
    for name in order:
        for dependency, condition in up.dependencies(services[name]).items():
            assert condition == "service_healthy", (name, dependency)
            assert order.index(dependency) < order.index(name)
    assert order[-1] == "router"


def test_dependencies_short_and_long_forms():
    assert up.dependencies({"depends_on": ["a", "b"]}) == {"a": "service_started", "b": "service_started"}
    long = {"depends_on": {"a": {"condition": "service_healthy"}, "b": None}}
    assert up.dependencies(long) == {"a": "service_healthy", "b": "service_started"}
    assert up.dependencies({}) == {}


def test_start_order_rejects_cycles_and_missing_dependencies():
    with pytest.raises(up.ComposeError, match="cycle"):
        up.start_order({"a": {"depends_on": ["b"]}, "b": {"depends_on": ["a"]}})
    with pytest.raises(up.ComposeError, match="'db', which is not started"):
        up.start_order({"app": {"depends_on": ["db"]}, "db": {}}, without=["db"])
    with pytest.raises(up.ComposeError, match="'nowhere'"):
        up.start_order({"app": {"depends_on": ["nowhere"]}})
