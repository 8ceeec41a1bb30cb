"""What router workers need from common: a port several processes can share, and metrics merged over processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mishards.common.server import create_server

# One "worker": counts RPCs and sets its in-flight gauge, as the telemetry interceptor does.
WORKER = """
import sys
from mishards.common import metrics
for _ in range(int(sys.argv[1])):
    metrics.RPC_REQUESTS.labels("router", "Search", "OK", "0").inc()
metrics.RPC_IN_FLIGHT.labels("router").set(int(sys.argv[2]))
metrics.COPIES.labels("ready").set(4)
"""
EXPOSE = "import sys; from mishards.common import metrics; sys.stdout.write(metrics.exposition().decode())"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_reuse_port_lets_two_servers_share_a_port_and_without_it_a_taken_port_fails() -> None:
    async def run() -> None:
        first = create_server("127.0.0.1", 0, reuse_port=True)
        second = create_server("127.0.0.1", first.port, reuse_port=True)
        assert second.port == first.port
        await first.server.start()
        await second.server.start()
        try:
            with pytest.raises((OSError, RuntimeError), match="(?i)bind"):  # grpc raises RuntimeError
                create_server("127.0.0.1", first.port)
        finally:
            await first.server.stop(None)
            await second.server.stop(None)

    asyncio.run(run())


def test_exposition_merges_the_processes_of_a_multiprocess_dir(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for count, in_flight in ((3, 1), (4, 2)):
        subprocess.run([sys.executable, "-c", WORKER, str(count), str(in_flight)], env=env, check=True, timeout=60)
    out = subprocess.run([sys.executable, "-c", EXPOSE], env=env, check=True, timeout=60, capture_output=True)
    got = samples(out.stdout.decode())
    requests = ("mishards_rpc_requests_total", (("component", "router"), ("grpc_code", "OK"), ("method", "Search"),
                                                ("milvus_code", "0")))  # fmt: skip
    assert got[requests] == 7.0  # counters: summed over the workers
    assert got[("mishards_rpc_in_flight", (("component", "router"),))] == 3.0  # livesum
    assert got[("mishards_router_copies", (("state", "ready"),))] == 4.0  # livemax: not 8
    # No per-PID series: every gauge has a mode that merges the workers.
    assert not [key for key in got if any(name == "pid" for name, _ in key[1])]


def test_exposition_without_a_multiprocess_dir_is_this_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from mishards.common import metrics

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics.RPC_REQUESTS.labels("unit-only", "Search", "OK", "0").inc()
    assert 'component="unit-only"' in metrics.exposition().decode()


def test_a_server_bound_when_ready_takes_no_connection_before_on_start_has_finished() -> None:
    import signal
    import socket

    from mishards.common.server import serve

    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    seen: dict[str, bool] = {}

    def connects() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    async def run() -> None:
        srv = create_server("127.0.0.1", port, reuse_port=True, bind_when_ready=True)

        async def on_start() -> None:
            seen["during on_start"] = connects()

        async def stop_once_serving() -> None:
            while srv.bind is not None or not connects():
                await asyncio.sleep(0.05)
            seen["serving"] = True
            signal.raise_signal(signal.SIGTERM)  # serve() handles it in the loop

        stopper = asyncio.ensure_future(stop_once_serving())
        await serve(srv, "unit", on_start=on_start, grace=0)
        await stopper
        assert srv.port == port

    asyncio.run(run())
    assert seen == {"during on_start": False, "serving": True}
