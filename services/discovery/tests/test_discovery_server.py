"""The gRPC service in-process: ListInstances, WatchInstances, health, shutdown, main()."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mishards.common.settings import Settings
from mishards.discovery.backends import InstanceSpec, MemoryBackend
from mishards.discovery.main import DiscoveryService
from mishards.discovery.prober import ProbeResult
from mishards.v1 import discovery_pb2 as pb
from mishards.v1 import discovery_pb2_grpc

WO = InstanceSpec("wo:19601", "10.0.0.1:19601", "writable")
RO = InstanceSpec("ro:19602", "10.0.0.2:19602", "readonly")

# A long interval: the tests drive rounds themselves with prober.run_round(); no damping,
# so that one round announces a join.
SETTINGS = Settings(DISCOVERY_PROBE_INTERVAL=3600, DISCOVERY_PROBE_TIMEOUT=1, DISCOVERY_HEALTHY_AFTER=1)


async def healthy(address: str) -> ProbeResult:
    return ProbeResult(True)


async def start(backend: MemoryBackend, probe=healthy) -> DiscoveryService:  # type: ignore[no-untyped-def]
    service = DiscoveryService(SETTINGS, backend=backend, probe=probe, host="127.0.0.1", port=0)
    await service.start()
    return service


def test_list_and_watch_in_version_order() -> None:
    async def run() -> None:
        backend = MemoryBackend(instances=[WO])
        service = await start(backend)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = discovery_pb2_grpc.DiscoveryStub(channel)
            listed = await stub.ListInstances(pb.ListInstancesRequest())
            assert listed.version == 2 and listed.backend_ok
            assert [(i.identity, i.address, i.role, i.health) for i in listed.instances] == [
                ("wo:19601", "10.0.0.1:19601", pb.WRITABLE, pb.HEALTHY)
            ]

            watch = stub.WatchInstances(pb.WatchInstancesRequest())
            first = await watch.read()
            assert first == listed  # the current snapshot, at once

            backend.set_instances([WO, RO])
            await service.prober.run_round()  # v3: RO unknown, v4: RO healthy
            backend.fail("consul down")
            await service.prober.run_round()  # v5: backend_ok false
            got = [await watch.read() for _ in range(3)]
            assert [m.version for m in got] == [3, 4, 5]
            assert [i.health for i in got[0].instances] == [
                pb.HEALTH_UNKNOWN,
                pb.HEALTHY,
            ]
            assert [i.identity for i in got[1].instances] == ["ro:19602", "wo:19601"]
            assert (got[2].backend_ok, got[2].backend_error) == (False, "consul down")
            assert len(got[2].instances) == 2  # the last known list is kept

            # A watcher that joins later starts from the current snapshot.
            late = stub.WatchInstances(pb.WatchInstancesRequest())
            assert (await late.read()).version == 5

            # Stopping the server ends the streams cleanly (status OK), at once.
            await asyncio.wait_for(service.stop(grace=5), 3)
            assert await watch.read() is grpc.aio.EOF
            assert await watch.code() == grpc.StatusCode.OK
            assert await late.read() is grpc.aio.EOF
        assert backend.closed

    asyncio.run(run())


def test_serving_only_after_the_first_round() -> None:
    async def run() -> None:
        gate = asyncio.Event()

        async def gated(address: str) -> ProbeResult:
            await gate.wait()
            return ProbeResult(True)

        service = DiscoveryService(
            SETTINGS,
            backend=MemoryBackend(instances=[WO]),
            probe=gated,
            host="127.0.0.1",
            port=0,
        )
        starting = asyncio.create_task(service.start())
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(50):  # wait until the server answers at all
                try:
                    status = (await health.Check(health_pb2.HealthCheckRequest(), timeout=1)).status
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.02)
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            gate.set()
            await starting
            status = (await health.Check(health_pb2.HealthCheckRequest())).status
            assert status == health_pb2.HealthCheckResponse.SERVING
            await service.stop()

    asyncio.run(run())


def test_joins_are_damped_by_the_setting_and_serving_waits_for_the_verdicts() -> None:
    async def run() -> None:
        probes: list[str] = []

        async def probe(address: str) -> ProbeResult:
            probes.append(address)
            return ProbeResult(address == WO.address, "connection refused")

        settings = SETTINGS.replace(DISCOVERY_PROBE_INTERVAL=0.2, DISCOVERY_HEALTHY_AFTER=3)
        service = DiscoveryService(
            settings, backend=MemoryBackend(instances=[WO, RO]), probe=probe, host="127.0.0.1", port=0
        )
        assert service.prober.healthy_after == 3
        started = time.monotonic()
        await service.start()
        try:
            # Three rounds, an interval apart: WO healthy after three good probes, RO down at its first.
            assert time.monotonic() - started >= 0.4
            assert service.prober.rounds == 3 and probes.count(WO.address) == 3
            current = service.board.current()
            assert {i.identity: i.health for i in current.instances} == {"wo:19601": pb.HEALTHY, "ro:19602": pb.DOWN}
        finally:
            await service.stop()

    asyncio.run(run())


def test_many_watchers_and_a_cancelled_one() -> None:
    async def run() -> None:
        backend = MemoryBackend(instances=[WO])
        service = await start(backend)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = discovery_pb2_grpc.DiscoveryStub(channel)
            watches = [stub.WatchInstances(pb.WatchInstancesRequest()) for _ in range(5)]
            assert [(await w.read()).version for w in watches] == [2] * 5
            watches[0].cancel()
            backend.set_instances([])
            await service.prober.run_round()
            assert [(await w.read()).version for w in watches[1:]] == [3] * 4
            for _ in range(50):
                if service.board.watcher_count == 4:
                    break
                await asyncio.sleep(0.02)
            assert service.board.watcher_count == 4  # the cancelled watcher was removed
            await service.stop()

    asyncio.run(run())


def _main(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from mishards.discovery.main import main; main()"],
        env={**os.environ, **env, "LOG_PATH": str(cwd)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DISCOVERY_CLASS_NAME": "zookeeper"}, "zookeeper"),
        ({"DISCOVERY_PROBE_INTERVAL": "soon"}, "DISCOVERY_PROBE_INTERVAL"),
        ({"DISCOVERY_CLASS_NAME": "static", "WOSERVER": "a:b"}, "WOSERVER"),
        (
            {"DISCOVERY_CLASS_NAME": "file", "DISCOVERY_FILE_PATH": ""},
            "DISCOVERY_FILE_PATH",
        ),
    ],
)
def test_main_exits_2_naming_the_bad_setting(env: dict[str, str], named: str, tmp_path: Path) -> None:
    result = _main(env, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and lines[0].startswith("mishards-discovery: ")


def test_main_serves_and_drains_on_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DISCOVERY_CLASS_NAME": "memory",
        "DISCOVERY_SERVER_PORT": "0",
        "SERVER_HOST": "127.0.0.1",
        "GRACE_PERIOD": "1",
        "LOG_PATH": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mishards.discovery.main import main; main()"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "discovery serving on port" in line:
                break
        else:
            pytest.fail("the service never said it was serving")
        time.sleep(0.5)  # serve() logs just before it installs its signal handlers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "discovery stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
