"""Row -> shard: pinned golden values; they must never change between releases."""

import struct

import numpy as np
import pytest

from mishards.common.hashing import key_hash, shard_of, shards_of

GOLDEN = [
    (0, 1669671676),
    (1, 1392991556),
    (-1, 1651860712),
    (42, 1871679806),
    (2**63 - 1, 2188461247),
    (-(2**63), 1366273829),
    ("", 0),
    ("a", 1009084850),
    ("abc", 3017643002),
    ("ключ", 2589532226),
    ("key-00001", 3974474778),
]


def murmur3_x86_32(data: bytes, seed: int = 0) -> int:
    """Reference implementation (Austin Appleby's MurmurHash3_x86_32), independent of mmh3."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed
    n = len(data) // 4
    for i in range(n):
        (k,) = struct.unpack_from("<I", data, i * 4)
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
        h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail = data[n * 4 :]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if tail:
        k ^= tail[0]
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


@pytest.mark.parametrize("key,expected", GOLDEN)
def test_golden_values(key: int | str, expected: int) -> None:
    assert key_hash(key) == expected
    data = key.encode() if isinstance(key, str) else struct.pack("<q", key)
    assert murmur3_x86_32(data) == expected


def test_shard_is_hash_mod_s() -> None:
    for key, h in GOLDEN:
        for s in (1, 2, 3, 7, 64):
            assert shard_of(key, s) == h % s


def test_vectorised_matches_scalar() -> None:
    keys = list(np.random.default_rng(1).integers(-(2**62), 2**62, size=500))
    for s in (1, 2, 5):
        assert shards_of(keys, s).tolist() == [shard_of(int(k), s) for k in keys]
    words = [f"w{i}" for i in range(300)]
    assert shards_of(words, 4).tolist() == [shard_of(w, 4) for w in words]
