"""High-availability timings on real Milvus: replica fill, shard move, the switch's pause, the failover window.

    .venv/bin/python -m benchmarks.ha [--rows 100000] [--failover-after 30]   (make bench-ha)

One embedded cluster: 2 writable + 1 read-only instance, a 1-shard collection of `rows` x 128
vectors (HNSW). It measures, in this order:

- **replica fill**: from the read-only instance joining until its replica is ready (snapshot,
  flush, index built, loaded, caught up);
- **shard move**: `MoveShard` to the other writable instance, from the request until the copy
  is the primary, with writes going on; and how long the primary was held for the switch;
- **failover window**: the primary's Milvus is SIGKILLed under writes; from the kill until a
  Strong read succeeds again (PRIMARY_FAILOVER_AFTER, the default 30 s, is most of it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from mishards.cli.cluster import Cluster
from mishards.v1 import meta_pb2, meta_pb2_grpc

DIM = 128
RESULTS = Path(__file__).resolve().parent / "results"


def listing(cluster: Cluster) -> Any:
    with cluster.meta_channel() as channel:
        return meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest(), timeout=10)


def until(check: Any, timeout: float = 3600) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError("not in time")
        time.sleep(0.1)
    return time.monotonic() - started


def load(client: MilvusClient, rows: int) -> None:
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection("ha", schema=schema, num_shards=1)
    data = np.random.default_rng(7).random((rows, DIM), dtype=np.float32)
    for start in range(0, rows, 5000):
        client.insert("ha", [{"id": start + i, "vector": v} for i, v in enumerate(data[start : start + 5000])])
    client.flush("ha")
    params = client.prepare_index_params()
    params.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 64})
    client.create_index("ha", params)
    client.load_collection("ha")


class Writes:
    """One writer in the background; counts acknowledged writes."""

    def __init__(self, uri: str) -> None:
        self.uri, self.acked, self.errors = uri, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        client = MilvusClient(uri=self.uri)
        i = 10_000_000
        while not self.stop.is_set():
            try:
                client.insert("ha", [{"id": i + k, "vector": [0.1] * DIM} for k in range(100)], retry_times=0)
                self.acked += 1
            except MilvusException:
                self.errors += 1
                time.sleep(0.2)
            i += 100
        client.close()


def strong_ok(client: MilvusClient) -> bool:
    try:
        client.query("ha", filter="", output_fields=["count(*)"], consistency_level="Strong", timeout=5, retry_times=0)
        return True
    except MilvusException:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--failover-after", type=float, default=30.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mishards-ha-"))
    env = {"DEFAULT_SHARDS_NUM": "1", "READ_REPLICAS": "1", "REBALANCE": "manual",
           "PRIMARY_FAILOVER_AFTER": str(args.failover_after), "LOG_LEVEL": "WARNING"}  # fmt: skip
    cluster = Cluster(root, writable=2, readonly=0, router_port=0, extra_env=env)
    result: dict[str, Any] = {"rows": args.rows, "failover_after": args.failover_after}
    cluster.start()
    try:
        client = MilvusClient(uri=cluster.router_uri)
        load(client, args.rows)
        started = time.monotonic()
        cluster.add_readonly(1)
        result["readonly_start_s"] = time.monotonic() - started
        result["replica_fill_s"] = until(  # from the instance being up: found, filled, indexed, loaded, caught up
            lambda: any(c.role == "replica" and c.state == "ready" for c in listing(cluster).copies)
        )
        primary = next(c.instance for c in listing(cluster).copies if c.role == "primary")
        target = next(i.identity for i in cluster.writable_instances if i.identity != primary)
        writes = Writes(cluster.router_uri)
        writes.thread.start()
        with cluster.meta_channel() as channel:
            meta_pb2_grpc.MetaStub(channel).MoveShard(
                meta_pb2.ShardOperationRequest(collection="ha", shard=0, to=target), timeout=30
            )
        result["move_s"] = until(lambda: any(m.phase == "done" for m in listing(cluster).moves))
        done = next(m for m in listing(cluster).moves if m.phase == "done")
        result["move_switch_pause_s"] = done.switch_seconds
        time.sleep(12)  # the old copy is dropped, the replica follows the new primary
        victim = next(i for i in cluster.writable_instances if i.identity == target)
        killed = time.monotonic()
        victim.kill()
        result["failover_window_s"] = until(lambda: strong_ok(client), timeout=args.failover_after + 300)
        result["writes_acked"], result["writes_failed"] = writes.acked, writes.errors
        writes.stop.set()
        writes.thread.join(60)
        result["failover_measured_from_kill_s"] = time.monotonic() - killed
    finally:
        cluster.stop()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ha-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    for key, value in result.items():
        print(f"{key:30s} {value:.2f}" if isinstance(value, float) else f"{key:30s} {value}")
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
