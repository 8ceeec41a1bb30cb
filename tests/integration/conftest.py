"""Embedded Mishards clusters for the whole session; each test makes its own collections.

`cluster` runs on MISHARDS_TEST_BACKEND (default milvus 2.3.5). `lite` is a second cluster
of two milvus-lite instances with a third one as its single reference; `pair` gives the
differential tests both backends, each as (backend, router client, direct client, cluster).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping

import grpc
import pytest
from differential import Pair
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException
from pymilvus.grpc_gen import milvus_pb2_grpc

from mishards.cli.cluster import Cluster
from mishards.cli.launcher import LiteMilvus, MilvusInstance
from mishards.cli.ports import PortAllocator
from mishards.common.security import backend_metadata, with_metadata


def require_installed(path: str, install_hint: str, env: Mapping[str, str]) -> None:
    """Skip, with the hint, when a tool from Debian packages is missing; under CI (CI=true:
    .ci/run installs every one of them) fail instead, so that CI never skips silently."""
    if os.path.exists(path):
        return
    message = f"{path} is missing: {install_hint} (.ci/run does)"
    if env.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{message}; CI is set, so this test may not be skipped")
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: needs the session's embedded Mishards cluster")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("mishards-cluster")
    backend = os.environ.get("MISHARDS_TEST_BACKEND", "milvus")
    c = Cluster(
        root_dir=str(root),
        writable=2,
        readonly=0,
        backend=backend,
        router_port=0,
        extra_env={"DEFAULT_SHARDS_NUM": "2", "LOG_LEVEL": "INFO"},
    )
    with c:  # started; stopped by PID on the way out
        yield c


@pytest.fixture(scope="session")
def router(cluster: Cluster) -> Iterator[MilvusClient]:
    client = MilvusClient(uri=cluster.router_uri)
    yield client
    client.close()


@pytest.fixture(scope="session")
def direct(cluster: Cluster) -> Iterator[MilvusClient]:
    """A single Milvus holding the same data: the reference side of the differential tests.

    It is the cluster's first instance; its reference collections have their own names and
    never collide with Mishards' physical collections (mishards_<id>_s<k>).
    """
    client = instance_client(cluster.instances[0])
    yield client
    client.close()


@pytest.fixture(scope="session")
def stubs(cluster: Cluster) -> Iterator[tuple[milvus_pb2_grpc.MilvusServiceStub, milvus_pb2_grpc.MilvusServiceStub]]:
    """Raw gRPC stubs of the router and of the direct Milvus, for requests pymilvus would refuse."""
    channels = [grpc.insecure_channel(cluster.router_address), instance_channel(cluster.instances[0])]
    yield milvus_pb2_grpc.MilvusServiceStub(channels[0]), milvus_pb2_grpc.MilvusServiceStub(channels[1])
    for channel in channels:
        channel.close()


@pytest.fixture
def name() -> str:
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, LiteMilvus]]:
    """Two milvus-lite instances behind a router, and a third milvus-lite as the reference."""
    root = tmp_path_factory.mktemp("lite")
    cluster = Cluster(root_dir=str(root), writable=2, backend="milvus-lite", router_port=0,
                      extra_env={"DEFAULT_SHARDS_NUM": "2", "READ_REPLICAS": "0"})  # fmt: skip
    reference = LiteMilvus.open(root / "reference", "writable", PortAllocator(19800, 19899))
    cluster.start()
    try:
        reference.start()
        reference.wait_ready(60)
        yield cluster, reference
    finally:
        reference.stop()
        cluster.stop()


def connect(uri: str, token: str = "") -> MilvusClient:
    """A client, retried once: milvus-lite closes a channel left idle between tests with
    GOAWAY "too many pings" (pymilvus's keepalive), and pymilvus's shared connection to
    that address then fails its first call."""
    try:
        return MilvusClient(uri=uri, token=token)
    except MilvusException:
        time.sleep(1)
        return MilvusClient(uri=uri, token=token)


def instance_client(instance: MilvusInstance) -> MilvusClient:
    """A client of one Milvus instance, behind the router's back: with the instance's token
    (the embedded Milvus instances run with authorization on; milvus-lite has none)."""
    return connect(instance.uri, instance.token)


def instance_channel(instance: MilvusInstance) -> grpc.Channel:
    """A raw gRPC channel to one Milvus instance that presents the instance's token."""
    return with_metadata(grpc.insecure_channel(instance.address), backend_metadata(instance.token))


@pytest.fixture(params=["milvus", "milvus-lite"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    """The router and a single instance of the same backend, on each embedded backend."""
    if request.param == "milvus":
        cluster: Cluster = request.getfixturevalue("cluster")
        reference: MilvusInstance = cluster.instances[0]
    else:
        cluster, reference = request.getfixturevalue("lite")
    router = MilvusClient(uri=cluster.router_uri)
    direct = instance_client(reference)
    yield Pair(request.param, router, direct, cluster)
    router.close()
    direct.close()
