"""The integration smoke test on the testcontainers driver: runs only where Docker answers."""

from __future__ import annotations

import pytest
from containers import ContainerCluster, docker_available

AVAILABLE, WHY = docker_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"testcontainers driver needs Docker: {WHY}")


def test_insert_and_search_through_the_router_image():
    from pymilvus import MilvusClient

    cluster = ContainerCluster(writable=2)
    cluster.start()
    try:
        client = MilvusClient(uri=cluster.router_uri)
        client.create_collection("tc_smoke", dimension=4, auto_id=False, consistency_level="Strong")
        rows = [{"id": i, "vector": [float(i), 0.0, 0.0, 1.0]} for i in range(20)]
        assert client.insert("tc_smoke", rows)["insert_count"] == 20
        hits = client.search("tc_smoke", data=[rows[5]["vector"]], limit=1)[0]
        assert hits[0]["id"] == 5
        client.close()
    finally:
        cluster.stop()
