"""Two routers over one meta: a read through router B after a write through router A.

Every test writes through both routers of the session cluster (2 writable Milvus, a
2-shard collection: one primary on each): x through B into shard 0, then y through A into
shard 0, then z through B into shard 1. B has then issued a timestamp newer than y's, and
the newest write *B itself* made to shard 0 is x, which is older than y. A read through B
at a timestamp not older than y's must see y, right after the writes (no waiting: y was
acknowledged, so its primary had applied it). A router that mapped a client timestamp to
the backend timestamp of its own last write per shard (the former per-router
reads.SessionClock) read shard 0 at x and missed y; the log positions meta maps
timestamps to (docs/durability.md#consistency) do not.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymilvus import MilvusClient
from pymilvus.client import ts_utils

from mishards.cli.cluster import Cluster, ServiceProcess
from mishards.common.hashing import shard_of

DIM = 4
SHARDS = 2
ROUNDS = 10


@dataclass
class Router:
    """One router as the tests see it: its address and a client."""

    uri: str
    client: MilvusClient

    @property
    def address(self) -> str:
        """``host:port``, the key of pymilvus's per-server timestamp cache."""
        return self.uri.removeprefix("http://")


@pytest.fixture(scope="module")
def second_router(cluster: Cluster) -> Iterator[ServiceProcess]:
    """Router B: a second router process over the cluster's meta and discovery, stopped by PID."""
    extra = cluster.start_extra_router()
    try:
        yield extra
    finally:
        extra.stop(cluster.stop_timeout)


@pytest.fixture(scope="module")
def routers(cluster: Cluster, second_router: ServiceProcess) -> Iterator[tuple[Router, Router]]:
    """(A, B): the cluster's router and the second one."""
    assert second_router.port != cluster.router_port
    uri_b = f"http://{second_router.address}"
    a, b = Router(cluster.router_uri, MilvusClient(uri=cluster.router_uri)), Router(uri_b, MilvusClient(uri=uri_b))
    yield a, b
    a.client.close()
    b.client.close()


class Keys:
    """Fresh primary keys of a chosen shard (`mishards.common.hashing.shard_of`)."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def of(self, shard: int) -> int:
        for pk in self._next:
            if shard_of(pk, SHARDS) == shard:
                return pk
        raise AssertionError("unreachable")


def _row(pk: int) -> dict[str, Any]:
    return {"id": pk, "vector": [1.0, float(pk), float(pk % 13), 2.0]}


def _insert(router: Router, name: str, pk: int) -> int:
    """Insert one row through `router`; return the write's (Mishards) timestamp.

    MilvusClient.insert does not return MutationResult.timestamp; pymilvus records it in its
    per-server cache (what Session reads send), and it is the newest there: every test writes
    its own collection from one thread.
    """
    result = router.client.insert(name, [_row(pk)])
    assert list(result["ids"]) == [pk]
    ts = ts_utils.get_collection_ts(name, router.address)
    assert ts > 0
    return int(ts)


def _create(a: Router, b: Router, name: str) -> None:
    a.client.create_collection(name, dimension=DIM, shards_num=SHARDS, consistency_level="Bounded")
    assert b.client.describe_collection(name)["num_shards"] == SHARDS  # B sees A's DDL through meta


@dataclass
class Round:
    name: str  # the collection
    x: int  # B's newest write to shard 0
    y: int  # through A, shard 0
    z: int  # through B, shard 1
    ts_x: int
    ts_a: int
    ts_z: int


def _writes(a: Router, b: Router, name: str, keys: Keys, last: Round | None) -> Round:
    """x through B into shard 0 (first round only), then y through A into shard 0, z through B into shard 1.

    x is written once: B's newest write to shard 0 then stays well in the past, as it is for
    a router that mostly writes other shards. (With a fresh x each round, Milvus waits for
    a time tick past x before it reads, and that tick often comes after y too.)
    """
    if last is None:
        x = keys.of(0)
        ts_x = _insert(b, name, x)
    else:
        x, ts_x = last.x, last.ts_x
    y, z = keys.of(0), keys.of(1)
    ts_a = _insert(a, name, y)
    ts_z = _insert(b, name, z)
    # meta's timestamps are monotonic across the cluster: B has issued one newer than y's
    assert ts_x < ts_a < ts_z, (ts_x, ts_a, ts_z)
    return Round(name, x, y, z, ts_x, ts_a, ts_z)


def _misses(router: Router, name: str, pk: int, **level: Any) -> list[str]:
    """What a query and a search for row `pk` through `router` at `level` failed to find."""
    missed = []
    rows = router.client.query(name, filter=f"id in [{pk}]", output_fields=["id"], **level)
    if [r["id"] for r in rows] != [pk]:
        missed.append(f"query id in [{pk}] -> {list(rows)}")
    hits = router.client.search(name, data=[_row(pk)["vector"]], filter=f"id == {pk}", limit=3, **level)
    if [h["id"] for h in hits[0]] != [pk]:
        missed.append(f"search id == {pk} -> {list(hits[0])}")
    return missed


def _rounds(a: Router, b: Router, check: Callable[[Round], list[str]], rounds: int = ROUNDS) -> list[str]:
    """`rounds` rounds of writes on a fresh collection, each followed at once by `check` (through B)."""
    name = "t_" + uuid.uuid4().hex[:12]
    _create(a, b, name)
    keys = Keys()
    failures: list[str] = []
    last = None
    try:
        for round_ in range(rounds):
            last = _writes(a, b, name, keys, last)
            failures += [f"round {round_} ({last}): {m}" for m in check(last)]
    finally:
        a.client.drop_collection(name)
    return failures


def _report(what: str, failures: list[str], rounds: int = ROUNDS) -> str:
    shown = failures[:8] + ([f"... and {len(failures) - 8} more"] if len(failures) > 8 else [])
    return f"{what} in {len(failures)} reads of {2 * rounds}:\n" + "\n".join(shown)


@pytest.mark.cluster
def test_another_routers_write_is_seen_at_its_timestamp(routers: tuple[Router, Router]) -> None:
    """Customized: through B with guarantee_timestamp = the timestamp A returned for y.

    pymilvus sends guarantee_timestamp as given only with consistency_level="Customized"
    (client/ts_utils.construct_guarantee_ts; Session would replace it by its own cache).
    """
    a, b = routers

    def check(w: Round) -> list[str]:
        return _misses(b, w.name, w.y, consistency_level="Customized", guarantee_timestamp=w.ts_a)

    failures = _rounds(a, b, check)
    assert not failures, _report("router B missed router A's write at that write's timestamp", failures)


@pytest.mark.cluster
def test_session_read_through_another_router_sees_the_older_write(routers: tuple[Router, Router]) -> None:
    """Session: one process, a connection to each router, a Session read through B.

    pymilvus keeps its Session timestamp per (server address, database, collection)
    (client/ts_utils, GlobalCache.collection_ts), so a Session read through B carries the
    newest timestamp of this process's writes *through B*: z's, not y's. Since z was issued
    after y was acknowledged, z's timestamp is newer than y's, and a read at it must see y
    as well. (A client behind one address in front of both routers would carry y's own
    timestamp; the Customized test above sends exactly that.)
    """
    a, b = routers

    def check(w: Round) -> list[str]:
        # pymilvus sends its cache entry for B's address: z's timestamp (see _insert)
        return _misses(b, w.name, w.y, consistency_level="Session")

    failures = _rounds(a, b, check)
    assert not failures, _report("a Session read through router B missed router A's write", failures)


@pytest.mark.cluster
def test_strong_read_through_another_router_sees_the_write(routers: tuple[Router, Router]) -> None:
    a, b = routers

    def check(w: Round) -> list[str]:
        return _misses(b, w.name, w.y, consistency_level="Strong")

    failures = _rounds(a, b, check, rounds=3)
    assert not failures, _report("a Strong read through router B missed router A's write", failures, rounds=3)
