"""Shard placement: balanced primaries over writable instances, rendezvous-hash tie breaks."""

from __future__ import annotations

import math

import mmh3


def rendezvous_score(collection_key: str, shard: int, identity: str) -> int:
    """Stable score of an instance for a shard; the highest wins ties."""
    return mmh3.hash(f"{collection_key}/{shard}/{identity}".encode(), 0, signed=False)


def place_primaries(collection_key: str, shards_num: int, writable: list[str]) -> list[str]:
    """Primary identity of each shard.

    No instance gets more than ceil(S/W) primaries; within that bound each shard goes to
    the least loaded instance, ties broken by rendezvous hashing over identities.
    """
    if not writable:
        raise ValueError("no writable instance is available")
    instances = sorted(set(writable))
    cap = math.ceil(shards_num / len(instances))
    load = dict.fromkeys(instances, 0)
    placement = []
    for shard in range(shards_num):
        candidates = [i for i in instances if load[i] < cap]
        best = min(candidates, key=lambda i: (load[i], -rendezvous_score(collection_key, shard, i)))
        load[best] += 1
        placement.append(best)
    return placement
