"""Where an acknowledged insert spends its time: one write, stage by stage, side by side.

    .venv/bin/python -m benchmarks.write_path [--rounds 40] [--rows 1000]

One embedded cluster (1 writable instance, 1 shard). Each round sends the same batch of
`rows` x 128 float vectors four ways, in turn, and times each call:

- ``milvus_raw``: a pre-built InsertRequest straight to Milvus on a plain gRPC stub
  (Milvus's own cost plus one loopback hop);
- ``meta_append``: the same entry through meta's AppendMutations (log commit, then
  the applier's Insert to the primary, then the acknowledgement), i.e. what the router
  waits for;
- ``pymilvus_direct``: MilvusClient.insert of row dicts straight to Milvus;
- ``pymilvus_router``: the same through the router.

``pymilvus_router - pymilvus_direct`` is the router's whole cost on a write;
``meta_append - milvus_raw`` is the durable log's share of it. Medians over the rounds
(the first 5 are warm-up and dropped).

With ``--profile-meta SECONDS`` it then records meta with py-spy while inserts go through
the router for that long, and prints where meta's samples go (docs/performance.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc, schema_pb2

from benchmarks import profile
from mishards.cli.cluster import Cluster
from mishards.common.security import backend_metadata, with_metadata
from mishards.v1 import meta_pb2, meta_pb2_grpc

DIM = 128
BIG = [("grpc.max_send_message_length", 1 << 29), ("grpc.max_receive_message_length", 1 << 29)]


def insert_request(collection: str, first_id: int, vecs: np.ndarray) -> milvus_pb2.InsertRequest:
    request = milvus_pb2.InsertRequest(collection_name=collection, num_rows=len(vecs))
    ids = request.fields_data.add(type=schema_pb2.Int64, field_name="id")
    ids.scalars.long_data.data.extend(range(first_id, first_id + len(vecs)))
    vectors = request.fields_data.add(type=schema_pb2.FloatVector, field_name="vector")
    vectors.vectors.dim = DIM
    vectors.vectors.float_vector.data.extend(vecs.ravel().tolist())
    return request


def profile_meta(cluster: Cluster, seconds: float, insert: Callable[[int], object]) -> None:
    """py-spy meta while ``insert`` runs back to back for ``seconds``; print its busiest frames."""
    pid = cluster.service_pid("meta")
    assert pid is not None
    out = Path(tempfile.mkdtemp(prefix="mishards-meta-profile-")) / "meta-insert.txt"
    inserts = 0

    def workload() -> None:
        nonlocal inserts
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            insert(inserts)
            inserts += 1

    recorded = profile.record(pid, seconds, out, workload)
    if recorded is None:
        print("  py-spy is not installed (pip install py-spy): no profile")
        return
    folded = profile.fold(recorded)
    print(f"meta during {inserts} inserts through the router ({folded['samples']} samples, {out}):")
    print(
        "  idle or native: "
        + ", ".join(f"{f} {v:.0%}" for f, v in sorted(folded["idle_or_native"].items(), key=lambda x: -x[1])[:4])
    )
    for frame, share in folded["top_inclusive"][:20]:
        print(f"  {share:6.1%}  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--profile-meta", type=float, default=0.0, metavar="SECONDS",
                        help="then py-spy meta for SECONDS of inserts through the router")  # fmt: skip
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mishards-write-path-"))
    cluster = Cluster(root, writable=1, readonly=0, router_port=0, extra_env={"DEFAULT_SHARDS_NUM": "1"})
    cluster.start()
    try:
        router = MilvusClient(uri=cluster.router_uri)
        direct = MilvusClient(uri=cluster.instances[0].uri, token=cluster.instances[0].token)
        for client, name in ((router, "via_router"), (direct, "direct")):
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
            client.create_collection(name, schema=schema)
        collection_id = int(router.describe_collection("via_router")["collection_id"])
        physical = f"mishards_{collection_id}_s0"
        milvus = milvus_pb2_grpc.MilvusServiceStub(
            with_metadata(
                grpc.insecure_channel(cluster.instances[0].address, options=BIG),
                backend_metadata(cluster.instances[0].token),
            )
        )
        meta = meta_pb2_grpc.MetaStub(cluster.security.sync_channel(cluster.meta_address, options=BIG))
        vecs = np.random.default_rng(20240610).random((args.rows, DIM), dtype=np.float32)
        rows = [{"id": i, "vector": vecs[i]} for i in range(args.rows)]

        def raw(n: int) -> None:
            milvus.Insert(insert_request("direct", n * args.rows, vecs))

        def append(n: int) -> None:
            request = meta_pb2.AppendMutationsRequest(collection_id=collection_id)
            entry = insert_request(physical, n * args.rows, vecs).SerializeToString()
            request.entries.add(shard=0, method="Insert", request=entry)
            answer = meta.AppendMutations(request)
            assert not answer.status, answer.status

        stages: dict[str, Callable[[int], object]] = {
            "milvus_raw": raw,
            "meta_append": append,
            "pymilvus_direct": lambda n: direct.insert("direct", rows),
            "pymilvus_router": lambda n: router.insert("via_router", rows),
        }
        times: dict[str, list[float]] = {name: [] for name in stages}
        for n in range(args.rounds):
            for name, stage in stages.items():
                started = time.perf_counter()
                stage(n)
                times[name].append(time.perf_counter() - started)
        print(f"one insert of {args.rows} x {DIM} float vectors, median of {args.rounds - 5} rounds:")
        median = {name: 1000 * statistics.median(t[5:]) for name, t in times.items()}
        for name, ms in median.items():
            print(f"  {name:16s} {ms:6.1f} ms")
        print(
            f"  router's cost on a write: {median['pymilvus_router'] - median['pymilvus_direct']:.1f} ms, of which the"
        )
        print(f"  durable log (meta_append - milvus_raw): {median['meta_append'] - median['milvus_raw']:.1f} ms")
        if args.profile_meta > 0:
            profile_meta(cluster, args.profile_meta, lambda n: router.insert("via_router", rows))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
