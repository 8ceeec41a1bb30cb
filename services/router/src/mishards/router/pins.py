"""The shards a read's filter pins: `key == v` or `key in [...]` on the shard key, alone or under a top-level `and`.

A collection sharded by its partition key keeps each key value on one shard, so a filter that
restricts the key to some values can only match rows on those values' shards. Anything the
reader is not sure of gives None, and the read fans out to every shard as before:

- the filter is split into conjuncts at `and` / `&&` outside strings, parentheses and brackets
  (a conjunct wholly in parentheses is split again); any `or`, `||`, `not` or `!` at that level,
  in any case, leaves the whole filter unpinned (operator precedence is then not ours to guess);
- a pin is a conjunct that is exactly `key == literal`, `literal == key` or `key in [literals]`,
  whose literals both backends read to the same values (`literals.literal_keys` with Milvus
  2.3.5's and milvus-lite's rules) and whose type is the key's (int64 or varchar);
- several pins intersect.
"""

from __future__ import annotations

import functools
from typing import Any

from pymilvus.grpc_gen import schema_pb2

from mishards.common.hashing import shard_of
from mishards.router import literals
from mishards.router.catalog import CollectionView

_WORD_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_WORD_CHARS = _WORD_START | frozenset("0123456789")
_OPEN = "(["
# Filters up to this length have their pinned shards cached (a tenant's filter repeats on every
# search; reading it costs 11-38 µs, a cache hit 0.6 µs). Longer ones are read each time: the cache stays small.
PIN_CACHE_MAX_EXPR = 512
PIN_CACHE_SIZE = 4096
_CLOSE = ")]"


class _Unsure(Exception):
    """The filter is not one the pin reader understands."""


def conjuncts(expr: str) -> list[str]:
    """The top-level conjuncts of `expr` (parenthesised conjunctions flattened).

    Raises _Unsure on an `or`, `||`, `not` or `!` (not `!=`) at the top level, unbalanced
    brackets or an unterminated string.
    """
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(expr)
    while i < n:
        ch = expr[i]
        if ch in "\"'":
            i = _string_end(expr, i)
            continue
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth < 0:
                raise _Unsure
        elif depth == 0:
            if ch in _WORD_START:
                j = i
                while j < n and expr[j] in _WORD_CHARS:
                    j += 1
                word = expr[i:j]
                if word == "and":
                    parts.append(expr[start:i])
                    start = j
                elif word.lower() in ("or", "not", "and"):  # `AND` may be `and` to one backend: unsure
                    raise _Unsure
                i = j
                continue
            if expr.startswith("&&", i):
                parts.append(expr[start:i])
                start = i + 2
                i += 2
                continue
            if expr.startswith("||", i) or (ch == "!" and not expr.startswith("!=", i)):
                raise _Unsure
        i += 1
    if depth != 0:
        raise _Unsure
    parts.append(expr[start:])
    out: list[str] = []
    for part in parts:
        inner = _unwrap(part)
        if inner is not None and inner.strip():
            out.extend(conjuncts(inner))
        else:
            out.append(part)
    return out


def _string_end(expr: str, i: int) -> int:
    """The index just past the string literal opening at `i` (backslash escapes skipped)."""
    quote = expr[i]
    j = i + 1
    while j < len(expr):
        if expr[j] == "\\":
            j += 2
            continue
        if expr[j] == quote:
            return j + 1
        j += 1
    raise _Unsure


def _unwrap(part: str) -> str | None:
    """The inside of `part` when one pair of parentheses encloses all of it, else None."""
    text = part.strip()
    if not (text.startswith("(") and text.endswith(")")):
        return None
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            i = _string_end(text, i)
            continue
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return None  # `(a) and (b)`-like: the first parenthesis closes early
        i += 1
    return text[1:-1]


def _pin(conjunct: str, key: schema_pb2.FieldSchema) -> set[Any] | None:
    """The values `conjunct` restricts the key to, or None when it is not such a pin."""
    if key.name not in conjunct:
        return None
    read = literals.literal_keys(conjunct, key.name, literals.MILVUS)
    if read is None or read != literals.literal_keys(conjunct, key.name, literals.LITE):
        return None
    if key.data_type == schema_pb2.Int64:
        if not all(type(v) is int and -(2**63) <= v <= literals.INT64_MAX for v in read):
            return None
    elif key.data_type == schema_pb2.VarChar:
        if not all(type(v) is str for v in read):
            return None
    else:
        return None
    return set(read)


def pinned_values(expr: str, key: schema_pb2.FieldSchema) -> set[Any] | None:
    """The key values `expr` restricts rows to (maybe none), or None when it does not pin the key."""
    try:
        parts = conjuncts(expr)
    except _Unsure:
        return None
    values: set[Any] | None = None
    for part in parts:
        pin = _pin(part, key)
        if pin is not None:
            values = pin if values is None else values & pin
    return values


def pinned_shards(view: CollectionView, expr: str) -> tuple[int, ...] | None:
    """The shards holding every row `expr` can match, in order, when the collection is sharded by
    its partition key and `expr` pins it; None: every shard. A pin to no value names shard 0 alone
    (its empty answer is the collection's)."""
    if not view.sharded_by_partition_key or view.shards_num <= 1 or not expr:
        return None
    key = view.shard_field
    if len(expr) <= PIN_CACHE_MAX_EXPR:
        return _cached_shards(expr, key.name, key.data_type, view.shards_num)
    return _shards_of(expr, key, view.shards_num)


def _shards_of(expr: str, key: schema_pb2.FieldSchema, shards_num: int) -> tuple[int, ...] | None:
    values = pinned_values(expr, key)
    if values is None:
        return None
    shards = sorted({shard_of(v, shards_num) for v in values})
    return tuple(shards) if shards else (0,)


@functools.lru_cache(maxsize=PIN_CACHE_SIZE)
def _cached_shards(expr: str, key_name: str, key_type: int, shards_num: int) -> tuple[int, ...] | None:
    """``_shards_of`` for short filters; a pin depends only on the key's name and type."""
    return _shards_of(expr, schema_pb2.FieldSchema(name=key_name, data_type=key_type), shards_num)


def route(view: CollectionView, expr: str) -> CollectionView:
    """`view` reduced to the shards `expr` pins (itself when it pins none)."""
    shards = pinned_shards(view, expr)
    if shards is None or len(shards) == view.shards_num:
        return view
    return view.only_shards(shards)
