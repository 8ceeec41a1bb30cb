"""`make bench-inflight`: the router's RSS growth under 8 concurrent 64 MB inserts (docs/security.md, Limits).

    python -m benchmarks.inflight [--max-inflight-bytes 268435456] [--clients 8] [--mb 64] [--dim 512]

Starts an embedded cluster (one writable Milvus 2.3.5) with MAX_INFLIGHT_BYTES set, resets the
router's peak-RSS mark (/proc/<pid>/clear_refs), sends the inserts at once from as many threads,
and reports the router's RSS before, its peak (VmHWM) during, the growth, and the issue's bound
clients × size × 2 + 3 × MAX_INFLIGHT_BYTES.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from benchmarks.procstat import rss_bytes
from mishards.cli.cluster import Cluster

MB = 1 << 20


def peak_rss_bytes(pid: int) -> int:
    """VmHWM of ``pid``: the peak resident set since start or the last reset."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # resets VmHWM to the current RSS


def rows_of(mb: int, dim: int, start: int) -> list[dict[str, Any]]:
    n = mb * MB // (dim * 4)
    vectors = np.random.default_rng(start).random((n, dim), dtype=np.float32)
    return [{"id": start + i, "vector": vectors[i]} for i in range(n)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mishards-inflight-") as root:
        env = {"MAX_INFLIGHT_BYTES": str(args.max_inflight_bytes), "DEFAULT_SHARDS_NUM": "2", "LOG_LEVEL": "WARNING"}
        with Cluster(root_dir=root, writable=1, router_port=0, extra_env=env) as cluster:  # started on entry
            pid = cluster.service_pid("router")
            assert pid is not None
            client = MilvusClient(uri=cluster.router_uri)
            client.create_collection("inflight", dimension=args.dim, primary_field_name="id", auto_id=False)
            batches = [rows_of(args.mb, args.dim, k * 10_000_000) for k in range(args.clients)]
            client.insert("inflight", rows_of(1, args.dim, 999_000_000))  # warm: first use of every path
            time.sleep(1)
            before = rss_bytes(pid)
            reset_peak(pid)
            outcomes: list[str] = []
            samples: list[int] = []
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    samples.append(rss_bytes(pid))
                    time.sleep(0.02)

            def insert(rows: list[dict[str, Any]]) -> None:
                c = MilvusClient(uri=cluster.router_uri)
                try:
                    outcomes.append(f"ok {c.insert('inflight', rows)['insert_count']}")
                except Exception as exc:  # noqa: BLE001 - reported, not raised
                    outcomes.append(f"error {exc}")
                finally:
                    c.close()

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            threads = [threading.Thread(target=insert, args=(b,)) for b in batches]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
            done.set()
            sampler.join()
            peak = max(peak_rss_bytes(pid), max(samples, default=0))
            client.close()
    bound = args.clients * args.mb * MB * 2 + 3 * args.max_inflight_bytes
    return {
        "max_inflight_bytes": args.max_inflight_bytes,
        "clients": args.clients,
        "insert_mb": args.mb,
        "rss_before_mb": before / MB,
        "rss_peak_mb": peak / MB,
        "growth_mb": (peak - before) / MB,
        "bound_mb": bound / MB,
        "within_bound": peak - before <= bound,
        "seconds": elapsed,
        "outcomes": sorted(outcomes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-inflight-bytes", type=int, default=256 * MB)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--mb", type=int, default=64, help="size of each insert's vectors, MB")
    parser.add_argument("--dim", type=int, default=512)
    result = run(parser.parse_args())
    for key, value in result.items():
        print(f"{key:>20}: {value:.1f}" if isinstance(value, float) else f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
