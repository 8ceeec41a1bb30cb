"""Router scaling without Milvus: synthetic backends with a fixed search delay, 1…64 shards."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from pymilvus import MilvusClient

from benchmarks import profile
from benchmarks.measure import alternate, latency_block, throughput_block
from benchmarks.presets import Preset
from benchmarks.procstat import rss_bytes
from benchmarks.synthetic import search_answer
from benchmarks.synthetic_cluster import SyntheticCluster
from benchmarks.workload import SEARCH_COLLECTION, Arm, Operations, WriteCursor, create_collection, index_params


def merge_micros(shards: int, topk: int, reps: int = 300) -> float:
    """In-process time of the router's merge of ``shards`` answers of nq=1 (what one search costs)."""
    from mishards.router.merge import merge_search_results  # the router's own code, measured alone

    parts = [search_answer(k, 1, topk) for k in range(shards)]
    merge_search_results(parts, 1, topk, 0, "COSINE")
    t0 = time.perf_counter()
    for _ in range(reps):
        merge_search_results(parts, 1, topk, 0, "COSINE")
    return (time.perf_counter() - t0) / reps * 1e6


def run_scaling(preset: Preset, out_dir: Path, stamp: str, profile_at_max: bool = True) -> list[dict[str, Any]]:
    ops = Operations(preset)
    search = ops.search(1)
    rows: list[dict[str, Any]] = []
    for shards in preset.scaling_shards:
        print(f"\n[scaling] {shards} synthetic shard(s), search delay {preset.synthetic_delay_ms} ms")
        with tempfile.TemporaryDirectory(prefix=f"mishards-bench-syn{shards}-") as root:
            cluster = SyntheticCluster(root, shards, preset.synthetic_delay_ms)
            cluster.start()
            try:
                client = MilvusClient(uri=cluster.router_uri)
                create_collection(client, SEARCH_COLLECTION, preset, shards)
                client.create_index(SEARCH_COLLECTION, index_params(preset, "HNSW"))
                client.load_collection(SEARCH_COLLECTION)
                arm = Arm("router", client, WriteCursor())
                pid = cluster.service_pid("router")
                fleet = cluster.fleet.pid if cluster.fleet else None
                pids = {"router": pid, "synthetic": fleet}
                rss0 = rss_bytes(pid) if pid else 0
                c1 = alternate(
                    [arm], 1, lambda a, r: latency_block(a, search, preset.scaling_seconds),
                    lambda a: latency_block(a, search, 0.5), pids,
                )["router"]  # fmt: skip
                c8 = alternate(
                    [arm], 1, lambda a, r: throughput_block(a, search, preset.scaling_seconds, 8),
                    lambda a: None, pids,
                )["router"]  # fmt: skip
                merge_us = merge_micros(shards, preset.topk)
                row: dict[str, Any] = {
                    "shards": shards,
                    "p50_ms": c1["p50_ms"],
                    "p99_ms": c1["p99_ms"],
                    "router_cpu_ms_per_search_c1": c1["cpu_ms_per_unit"].get("router", 0.0),
                    "synthetic_cpu_ms_per_search_c1": c1["cpu_ms_per_unit"].get("synthetic", 0.0),
                    "qps_c8": c8["rate_median"],
                    "router_cpu_ms_per_search_c8": c8["cpu_ms_per_unit"].get("router", 0.0),
                    "merge_us_in_process": merge_us,
                    "router_rss_mb": (rss_bytes(pid) if pid else 0) / 2**20,
                    "router_rss_mb_start": rss0 / 2**20,
                }
                row["merge_share_of_router_cpu"] = merge_us / 1000.0 / max(row["router_cpu_ms_per_search_c1"], 1e-9)
                if profile_at_max and shards == max(preset.scaling_shards) and pid:
                    spy_out = out_dir / f"{stamp}-router-{shards}shards.txt"
                    recorded = profile.record(
                        pid, preset.scaling_seconds * 2, spy_out,
                        lambda: throughput_block(arm, search, preset.scaling_seconds * 2, 8),
                    )  # fmt: skip
                    if recorded:
                        folded = profile.fold(recorded)
                        row["pyspy_samples"] = folded["samples"]
                        row["pyspy_merge_share"] = profile.share_of(folded, "merge_search_results")
                        row["pyspy_top_self"] = folded["top_self"][:10]
                        row["pyspy_top_inclusive"] = folded["top_inclusive"][:15]
                client.close()
            finally:
                cluster.stop()
        print(
            f"  p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  router CPU {row['router_cpu_ms_per_search_c1']:.2f} ms/search"
            f"  c8 {row['qps_c8']:.0f}/s  merge {merge_us:.0f} µs ({100 * row['merge_share_of_router_cpu']:.1f}% of router CPU)"
        )
        rows.append(row)
    return rows
