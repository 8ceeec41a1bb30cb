"""ROUTER_WORKERS=2 on a small milvus-lite cluster: two router processes serve one port.

Shows, by PID, that both workers listen on the router port and answer connections on it,
that the one /metrics sums the workers' request counters, that the topology page answers,
that SIGTERM to the router (the supervisor) leaves no worker behind, and that a worker
killed on its own takes the router down with it (exit 1) instead of leaving half a router.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import connect
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from benchmarks.procstat import children
from mishards.cli.cluster import Cluster

CONNECTIONS = 16
DIM = 8


@pytest.fixture(scope="module")
def workers_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(
        tmp_path_factory.mktemp("workers"),
        writable=1,
        backend="milvus-lite",
        router_port=0,
        router_workers=2,
        extra_env={"DEFAULT_SHARDS_NUM": "2", "READ_REPLICAS": "0", "GRACE_PERIOD": "1"},
    )
    with cluster:  # started; stopped by PID on the way out
        yield cluster


def sockets_on_port(port: int, state: str) -> set[int]:
    """Inodes of TCP sockets with local port `port` in `state` (0A listen, 01 established)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(int(fields[9]))
    return inodes


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def http_get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        body: bytes = r.read()
        return body


def requests_total(port: int, method: str) -> float:
    text = http_get(port, "/metrics").decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "mishards_rpc_requests_total"
        and s.labels.get("component") == "router"
        and s.labels.get("method") == method
    )


def wait_until(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def test_two_workers_serve_one_port_with_one_metrics_endpoint_and_stop_together(workers_cluster: Cluster) -> None:
    cluster = workers_cluster
    supervisor = cluster.service_pid("router")
    assert supervisor is not None
    workers = children(supervisor)
    assert len(workers) == 2
    port = cluster.router_port
    # The router answers once one worker serves; each worker listens only once it can serve.
    wait_until(lambda: all(socket_inodes(w) & sockets_on_port(port, "0A") for w in workers), 60)

    client = connect(cluster.router_uri)
    client.create_collection("workers", dimension=DIM)
    rng = np.random.default_rng(7)
    client.insert("workers", [{"id": i, "vector": rng.random(DIM).tolist()} for i in range(100)])
    client.close()

    # Separate connections (no shared subchannel), which the kernel spreads over the workers.
    channels = [
        grpc.insecure_channel(cluster.router_address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]
    try:
        stubs = [milvus_pb2_grpc.MilvusServiceStub(c) for c in channels]
        describe = milvus_pb2.DescribeCollectionRequest(collection_name="workers")
        # Every worker's catalog follows meta: wait until each connection knows the new collection.
        wait_until(lambda: all(s.DescribeCollection(describe, timeout=10).status.code == 0 for s in stubs), 30)
        for channel in channels:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING

        established = sockets_on_port(port, "01")
        served_by = {w: len(socket_inodes(w) & established) for w in workers}
        assert all(n > 0 for n in served_by.values()), f"connections per worker: {served_by}"
        assert sum(served_by.values()) >= CONNECTIONS  # ours, and any other client still connected

        metrics_port = cluster.ports["router_metrics"]
        before = requests_total(metrics_port, "DescribeCollection")
        for stub in stubs:
            assert stub.DescribeCollection(describe, timeout=10).status.code == 0
        assert requests_total(metrics_port, "DescribeCollection") - before == CONNECTIONS  # both workers counted
    finally:
        for channel in channels:
            channel.close()

    page = json.loads(http_get(cluster.ports["router_metrics"], "/topology.json"))
    assert [c["name"] for c in page["collections"]] == ["workers"]
    assert b"<title>Mishards topology</title>" in http_get(cluster.ports["router_metrics"], "/")

    # SIGTERM to the supervisor alone (not its process group): it stops both workers and exits 0.
    router = cluster.services["router"]
    os.kill(supervisor, signal.SIGTERM)
    wait_until(lambda: not router.is_running(), 60)
    assert router._proc is not None and router._proc.returncode == 0
    assert not [w for w in workers if alive(w)]


def test_a_worker_that_dies_takes_the_router_down(workers_cluster: Cluster) -> None:
    cluster = workers_cluster
    cluster.start_service("router")
    supervisor = cluster.service_pid("router")
    assert supervisor is not None
    workers = children(supervisor)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    router = cluster.services["router"]
    wait_until(lambda: not router.is_running(), 60)
    assert router._proc is not None and router._proc.returncode == 1
    assert not alive(workers[0])
