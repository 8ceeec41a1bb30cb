"""One embedded Mishards cluster for the whole session; each test makes its own collections."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from pymilvus import MilvusClient

from mishards.cli.cluster import Cluster


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
    c.start()
    try:
        yield c
    finally:
        c.stop()


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
    client = MilvusClient(uri=f"http://{cluster.instances[0].address}")
    yield client
    client.close()


@pytest.fixture
def name() -> str:
    return "t_" + uuid.uuid4().hex[:12]
