"""Workload presets. ``standard`` is the fixed workload of record (issue #10): compare its figures across commits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    rows: int  # vectors in the search collection
    dim: int = 128
    seed: int = 20240610
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    hnsw_ef: int = 64
    topk: int = 10
    flat_rows: int = 10_000  # rows of the FLAT collection of the exact-recall check
    recall_queries: int = 100
    rounds: int = 5  # A, B, C repeated this many times per measurement
    read_seconds: float = 4.0  # one arm's block of a read measurement
    write_batches: int = 10  # 1000-row batches per arm and round of a write measurement
    batch_rows: int = 1000
    scaling_shards: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    scaling_seconds: float = 4.0
    synthetic_delay_ms: float = 2.0


PRESETS: dict[str, Preset] = {
    "small": Preset(
        "small",
        rows=10_000,
        flat_rows=5_000,
        rounds=3,
        read_seconds=1.5,
        write_batches=4,
        scaling_shards=(1, 4, 16, 64),
        scaling_seconds=2.0,
    ),
    "standard": Preset("standard", rows=100_000, flat_rows=20_000),
    "large": Preset("large", rows=1_000_000, flat_rows=50_000, rounds=7, read_seconds=6.0, write_batches=20),
}
