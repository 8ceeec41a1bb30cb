"""Row -> shard: murmur3_x86_32 (seed 0) of the primary key, mod S. Stable forever."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import mmh3
import numpy as np


def key_hash(key: int | str) -> int:
    """Unsigned murmur3_x86_32 of an int64 key's 8 little-endian bytes or a varchar's UTF-8."""
    if isinstance(key, str):
        data = key.encode("utf-8")
    else:
        data = struct.pack("<q", int(key))
    return mmh3.hash(data, 0, signed=False)


def shard_of(key: int | str, shards_num: int) -> int:
    """The shard a row with this primary key belongs to."""
    return key_hash(key) % shards_num


def shards_of(keys: Sequence[int] | Sequence[str] | Iterable[int | str], shards_num: int) -> np.ndarray:
    """Shard index of every key, as an int32 array (same values as `shard_of`)."""
    if shards_num == 1:
        keys = list(keys)
        return np.zeros(len(keys), dtype=np.int32)
    hashes = np.fromiter((key_hash(k) for k in keys), dtype=np.uint64)
    return (hashes % np.uint64(shards_num)).astype(np.int32)
