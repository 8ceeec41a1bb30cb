"""Router CPU per search at 1 shard beside the bare forwarding hop's, on a synthetic backend.

No Milvus: one synthetic instance (benchmarks.synthetic, no search delay) holds the only
shard; the forwarder (benchmarks.forwarder) points at the same instance. One client searches
through the forwarder (the physical collection) and through the router (the logical one),
alternating blocks; each block's CPU of the router and of the forwarder is read from /proc.
What is left is what each proxy costs per search, side by side in one run. A third arm,
`decoding`, is a second router over the same cluster with READ_PASSTHROUGH=false: the
pass-through's own effect, measured in the same run.

    python -m benchmarks.hop [--rounds 5] [--seconds 3] [--nq 1] [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from benchmarks import profile
from benchmarks.measure import alternate, latency_block, throughput_block
from benchmarks.presets import PRESETS
from benchmarks.processes import Child
from benchmarks.synthetic_cluster import SyntheticCluster
from benchmarks.workload import SEARCH_COLLECTION, Arm, WriteCursor, create_collection, index_params
from mishards.cli.launcher import grpc_milvus_healthy
from mishards.cli.ports import LOCALHOST, ephemeral_allocator


def _search_op(collection: str, nq: int, dim: int) -> Any:
    queries = np.random.default_rng(7).random((256, dim), dtype=np.float32)

    def op(arm: Arm, i: int) -> int:
        start = (i * nq) % (len(queries) - nq)
        arm.client.search(
            collection, data=queries[start : start + nq], limit=10,
            search_params={"metric_type": "COSINE"}, consistency_level="Bounded",
        )  # fmt: skip
        return 1

    return op


def run(rounds: int, seconds: float, nq: int, concurrency: int, spy_dir: Path | None) -> dict[str, Any]:
    preset = PRESETS["small"]
    with tempfile.TemporaryDirectory(prefix="mishards-bench-hop-") as root:
        cluster = SyntheticCluster(root, 1, 0.0)
        cluster.start()
        forwarder: Child | None = None
        try:
            router = MilvusClient(uri=cluster.router_uri)
            create_collection(router, SEARCH_COLLECTION, preset, 1)
            router.create_index(SEARCH_COLLECTION, index_params(preset, "HNSW"))
            router.load_collection(SEARCH_COLLECTION)
            physical = f"mishards_{router.describe_collection(SEARCH_COLLECTION)['collection_id']}_s0"
            inst = cluster.instances[0]
            port = ephemeral_allocator().allocate_one()
            forwarder = Child(
                "forwarder", "benchmarks.forwarder", ["--port", str(port), "--upstream", inst.address],
                Path(root) / "forwarder.out",
            )  # fmt: skip
            forwarder.start(lambda: grpc_milvus_healthy(f"{LOCALHOST}:{port}", 1.0))
            hop = MilvusClient(uri=f"http://{LOCALHOST}:{port}")
            decoding_router = cluster.start_extra_router(overrides={"READ_PASSTHROUGH": "false"})
            decoding = MilvusClient(uri=f"http://{decoding_router.address}")
            arms = [
                Arm("forwarder", hop, WriteCursor()),
                Arm("router", router, WriteCursor()),
                Arm("decoding", decoding, WriteCursor()),
            ]
            ops = {
                "forwarder": _search_op(physical, nq, preset.dim),
                "router": _search_op(SEARCH_COLLECTION, nq, preset.dim),
                "decoding": _search_op(SEARCH_COLLECTION, nq, preset.dim),
            }
            pids = {
                "router": cluster.service_pid("router"),
                "forwarder": forwarder.pid,
                "decoding": decoding_router.pid,
            }

            def block(arm: Arm, _r: int, secs: float = seconds) -> Any:
                if concurrency == 1:
                    return latency_block(arm, ops[arm.name], secs)
                return throughput_block(arm, ops[arm.name], secs, concurrency)

            result = alternate(arms, rounds, block, lambda a: block(a, 0, 0.5), pids)
            out = {
                "nq": nq,
                "concurrency": concurrency,
                "router_cpu_ms": result["router"]["cpu_ms_per_unit"]["router"],
                "forwarder_cpu_ms": result["forwarder"]["cpu_ms_per_unit"]["forwarder"],
                "decoding_cpu_ms": result["decoding"]["cpu_ms_per_unit"]["decoding"],
                "router_rate": result["router"]["rate_median"],
                "forwarder_rate": result["forwarder"]["rate_median"],
            }
            out["ratio"] = out["router_cpu_ms"] / out["forwarder_cpu_ms"]
            out["decoding_ratio"] = out["decoding_cpu_ms"] / out["forwarder_cpu_ms"]
            if spy_dir is not None:
                spy_dir.mkdir(parents=True, exist_ok=True)
                stamp = time.strftime("%Y%m%d-%H%M%S")
                for arm in arms:
                    path = spy_dir / f"{stamp}-hop-{arm.name}.txt"
                    pid = pids[arm.name]
                    if pid and profile.record(pid, seconds * 2, path, lambda arm=arm: block(arm, 0, seconds * 2)):
                        folded = profile.fold(path)
                        out[f"pyspy_{arm.name}"] = {k: folded[k] for k in ("samples", "top_self", "top_inclusive")}
            hop.close()
            router.close()
            decoding.close()
            return out
        finally:
            if forwarder is not None:
                forwarder.stop()
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="one arm's block")
    parser.add_argument("--nq", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy both proxies; folded stacks go here")
    args = parser.parse_args(argv)
    out = run(args.rounds, args.seconds, args.nq, args.concurrency, args.profile)
    print(
        f"nq {out['nq']} c{out['concurrency']}: router {out['router_cpu_ms']:.3f} ms CPU/search, "
        f"forwarder {out['forwarder_cpu_ms']:.3f} ms; router/forwarder {out['ratio']:.3f}; "
        f"READ_PASSTHROUGH=false router {out['decoding_cpu_ms']:.3f} ms ({out['decoding_ratio']:.3f}) "
        f"(searches/s router {out['router_rate']:.0f}, forwarder {out['forwarder_rate']:.0f})"
    )
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
