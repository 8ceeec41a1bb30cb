"""A second start on the same data folder finds the same instances and data (as `mishards up` twice).

Its own small cluster (one writable instance, two shards): started, written to, stopped whole,
started again on the same folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pymilvus import MilvusClient

from mishards.cli.cluster import Cluster
from mishards.cli.ports import port_accepts

NAME = "kept"
ROWS = 60
QUERY = [[3.0, 1.0, 0.5, 2.0]]


def start(root: Path) -> Cluster:
    backend: Any = os.environ.get("MISHARDS_TEST_BACKEND", "milvus")
    return Cluster(root, writable=1, backend=backend, router_port=0, extra_env={"DEFAULT_SHARDS_NUM": "2"}).start()


def observe(client: MilvusClient) -> tuple[int, list[tuple[int, float]], list[dict[str, Any]]]:
    """count(*), the search hits (id, distance) and a filtered query, all Strong."""
    count = client.query(NAME, output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    hits = client.search(NAME, data=QUERY, limit=5, consistency_level="Strong")[0]
    rows = client.query(NAME, filter="id in [7, 8, 59]", output_fields=["id", "tag"], consistency_level="Strong")
    return count, [(h["id"], round(h["distance"], 4)) for h in hits], sorted(rows, key=lambda r: r["id"])


def test_second_start_on_the_same_folder_finds_the_same_instances_and_data(tmp_path: Path) -> None:
    first = start(tmp_path)
    try:
        addresses = [(i.role, i.address) for i in first.instances]
        ports = dict(first.ports)
        client = MilvusClient(uri=first.router_uri)
        client.create_collection(NAME, dimension=4, consistency_level="Strong")
        client.insert(NAME, [{"id": i, "vector": [i % 7, 1.0, i / 10, 2.0], "tag": i * 3} for i in range(ROWS)])
        before = observe(client)
        client.close()
        pids = [first.service_pid(s) for s in ("router", "meta", "discovery")] + [i.pid for i in first.instances]
    finally:
        first.stop()
    assert before[0] == ROWS and len(before[1]) == 5
    assert [r["tag"] for r in before[2]] == [21, 24, 177]
    # every process of the first start is gone and nothing listens on its ports
    assert len(pids) == 4 and None not in pids
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived stop()"
    assert not [p for p in ports.values() if port_accepts(p)]
    assert not [i.address for i in first.instances if port_accepts(i.port)]

    second = start(tmp_path)
    try:
        assert [(i.role, i.address) for i in second.instances] == addresses
        assert second.ports == ports
        client = MilvusClient(uri=second.router_uri)
        assert NAME in client.list_collections()
        assert client.describe_collection(NAME)["num_shards"] == 2
        assert observe(client) == before
        client.drop_collection(NAME)
        client.close()
    finally:
        second.stop()
