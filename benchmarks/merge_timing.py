"""The router's search merge timed in-process: the nq 1 fast path against the general (numpy) merge.

    python -m benchmarks.merge_timing [--rounds 7] [--seconds 0.2]

Shard answers as Milvus sends them (sorted, nq 1, int64 or varchar keys, some keys on every
shard, no output fields) for 2 to 64 shards and topk 10 and 100, plus per shard count the
largest topk the fast path takes (``FAST_MAX_HITS`` hits in all) and twice that; per case the two merges run
alternately in blocks of ``--seconds``, ``--rounds`` times, and the table gives the median
time per merge of each and their ratio (fast/general < 1: the fast path is quicker). The
last column says whether ``merge_search_results`` takes the fast path for that case
(``FAST_MAX_PARTS``, ``FAST_MAX_HITS`` in services/router/src/mishards/router/merge.py).
Every case first checks that both merges give the same bytes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pymilvus.grpc_gen import schema_pb2

from mishards.router import merge

SHARDS = (2, 3, 4, 8, 16, 64)
TOPKS = (10, 100)


def cases(shards: list[int], topks: list[int]) -> list[tuple[int, int]]:
    """The grid, plus per shard count the largest topk the fast path takes and twice that."""
    out = [(s, k) for s in shards for k in topks]
    for s in shards:
        edge = merge.FAST_MAX_HITS // s
        out += [(s, k) for k in (edge, 2 * edge) if k > max(topks)]
    return sorted(set(out))


def shard_answers(shards: int, topk: int, str_pk: bool, seed: int = 18) -> list[schema_pb2.SearchResultData]:
    """``shards`` sorted COSINE answers of ``topk`` hits; a tenth of the keys also come from another shard."""
    rng = np.random.default_rng([seed, shards, topk])
    out = []
    for s in range(shards):
        scores = np.sort(rng.random(topk, dtype=np.float32))[::-1]
        keys = rng.integers(0, 2**40, topk) * 8 + s
        keys[: topk // 10] = np.arange(topk // 10)  # the same keys on every shard
        ids = (
            schema_pb2.IDs(str_id=schema_pb2.StringArray(data=[f"doc-{k}" for k in keys.tolist()]))
            if str_pk
            else schema_pb2.IDs(int_id=schema_pb2.LongArray(data=keys.tolist()))
        )
        out.append(
            schema_pb2.SearchResultData(
                num_queries=1,
                top_k=topk,
                scores=scores.tolist(),
                ids=ids,
                topks=[topk],
                all_search_count=topk,
                primary_field_name="id",
            )
        )
    return out


def _per_call(fn: Callable[[], Any], seconds: float) -> float:
    """Seconds per call of ``fn`` over a block of about ``seconds``."""
    n, t0 = 0, time.perf_counter()
    end = t0 + seconds
    while True:
        for _ in range(20):
            fn()
        n += 20
        now = time.perf_counter()
        if now >= end:
            return (now - t0) / n


def time_case(shards: int, topk: int, str_pk: bool, rounds: int, seconds: float) -> dict[str, Any]:
    parts = shard_answers(shards, topk, str_pk)
    limit = topk

    def general() -> Any:
        return merge._merge_general(parts, 1, limit, 0, "COSINE")

    def fast() -> Any:
        return merge._merge_one_query(parts, limit, 0, "COSINE", max_parts=len(parts), max_hits=shards * topk)

    fast_answer = fast()
    if fast_answer is None or fast_answer.SerializeToString() != general().SerializeToString():
        raise AssertionError(f"fast path differs from the general merge at {shards} shards, topk {topk}")
    g, f = [], []
    for _ in range(rounds):  # alternated blocks: machine noise hits both sides alike
        g.append(_per_call(general, seconds))
        f.append(_per_call(fast, seconds))
    used = merge.FAST_MAX_PARTS >= shards and merge._merge_one_query(parts, limit, 0, "COSINE") is not None
    gm, fm = statistics.median(g), statistics.median(f)
    return {
        "shards": shards,
        "topk": topk,
        "pk": "varchar" if str_pk else "int64",
        "general_us": gm * 1e6,
        "fast_us": fm * 1e6,
        "ratio": fm / gm,
        "fast_path_used": used,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="In-process timing of the nq 1 merge fast path.")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one timed block")
    parser.add_argument("--shards", default=",".join(map(str, SHARDS)))
    parser.add_argument("--topks", default=",".join(map(str, TOPKS)))
    args = parser.parse_args(argv)
    print(f"merge_search_results, nq 1, COSINE, limit = topk, offset 0; medians of {args.rounds} alternated blocks")
    print(f"{'pk':8s} {'shards':>6s} {'topk':>5s} {'general µs':>11s} {'fast µs':>9s} {'fast/general':>13s}  used")
    for str_pk in (False, True):
        grid = cases([int(x) for x in args.shards.split(",")], [int(x) for x in args.topks.split(",")])
        for shards, topk in grid:
            r = time_case(shards, topk, str_pk, args.rounds, args.seconds)
            print(
                f"{r['pk']:8s} {shards:>6d} {topk:>5d} {r['general_us']:>11.1f} {r['fast_us']:>9.1f} "
                f"{r['ratio']:>13.3f}  {'yes' if r['fast_path_used'] else 'no'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
