"""Settings the router reads at start: each one reaches the part it configures."""

from __future__ import annotations

import asyncio

from mishards.common.settings import load_settings
from mishards.router.main import RouterService
from mishards.router.strategies import ConsistentHashRouter, LeastOutstandingRouter


def build(env: dict[str, str]) -> RouterService:
    async def inside_a_loop() -> RouterService:
        service = RouterService(load_settings(env, None), port=0, metrics_port=0)
        await service.server.server.stop(None)
        await service.catalog.stop()
        return service

    return asyncio.run(inside_a_loop())


def test_max_retry_is_the_number_of_further_copies_a_failed_read_tries() -> None:
    assert build({"MAX_RETRY": "5"}).servicer.reader.failover.retries == 5
    assert build({"MAX_RETRY": "0"}).servicer.reader.failover.retries == 0


def test_router_class_name_chooses_the_read_strategy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(build({}).topology.strategy, ConsistentHashRouter)
    assert isinstance(build({"ROUTER_CLASS_NAME": "LeastOutstandingRouter"}).topology.strategy, LeastOutstandingRouter)
    (tmp_path / "mine.py").write_text(
        "from mishards.router.strategies import ReadRouter\n"
        "class FirstRouter(ReadRouter):\n"
        "    def order(self, shard_key, replicas):\n"
        "        return sorted(replicas)\n"
    )
    mine = build({"ROUTER_PLUGIN_PATH": str(tmp_path), "ROUTER_CLASS_NAME": "FirstRouter"}).topology.strategy
    assert type(mine).__name__ == "FirstRouter" and mine.order("x", ["b", "a"]) == ["a", "b"]


def test_router_workers_is_bounded() -> None:
    import pytest

    from mishards.common.settings import SettingsError

    assert load_settings({}, None).ROUTER_WORKERS == 1
    assert load_settings({"ROUTER_WORKERS": "4"}, None).ROUTER_WORKERS == 4
    for bad in ("0", "65", "two"):
        with pytest.raises(SettingsError, match="ROUTER_WORKERS"):
            load_settings({"ROUTER_WORKERS": bad}, None)


def test_only_worker_0_serves_the_metrics_port() -> None:
    async def inside_a_loop(worker: int | None) -> RouterService:
        service = RouterService(load_settings({}, None), port=0, metrics_port=0, worker=worker)
        await service.server.server.stop(None)
        await service.catalog.stop()
        return service

    assert asyncio.run(inside_a_loop(None)).http is not None
    assert asyncio.run(inside_a_loop(0)).http is not None
    assert asyncio.run(inside_a_loop(1)).http is None
