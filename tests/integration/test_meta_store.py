"""The meta store on SQLite and on the machine's MariaDB (which must be reachable: never skipped)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pymysql
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mishards.meta.migrations import upgrade
from mishards.meta.store import (
    COPY_READY,
    CREATING,
    READY,
    SHARD_BY_PARTITION_KEY,
    SHARD_BY_PRIMARY,
    NotFound,
    NoTimestamp,
    Store,
)
from mishards.meta.tso import TimestampOracle

SERVER_URL = os.environ.get("SQLALCHEMY_DATABASE_TEST_URI") or "mysql+pymysql://root:@127.0.0.1:3306"


@pytest.fixture(params=["sqlite", "mysql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path}/meta.db")
        s.migrate()
        yield s
        s.engine.dispose()
        return
    db = "mishards_test_" + uuid.uuid4().hex[:8]
    url = make_url(SERVER_URL)
    conn = pymysql.connect(host=url.host, user=url.username, password=url.password or "", port=url.port or 3306)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
    try:
        s = Store(url.set(database=db, query={"charset": "utf8mb4"}).render_as_string(hide_password=False))
        s.migrate()
        yield s
        s.engine.dispose()
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
        conn.close()


def test_collection_round_trip_and_versions(store: Store) -> None:
    v0 = store.catalog_version()
    spec = store.add_collection("default", "c1", b"\x01schema", 3, 2, [("k", "v")], 123, ["a:1", "b:1", "a:1"])
    assert spec.state == CREATING and spec.shards_num == 3
    assert [s.physical_name for s in spec.shards] == [f"mishards_{spec.id}_s{k}" for k in range(3)]
    assert [s.primary for s in spec.shards] == ["a:1", "b:1", "a:1"]
    assert store.collections() == []  # not READY yet
    store.set_state(spec.id, READY, schema=b"\x02described")
    got = store.get_collection("default", "c1")
    assert got.schema == b"\x02described" and got.properties == [("k", "v")] and got.partitions == ["_default"]
    assert store.catalog_version() > v0
    store.put_alias("default", "al", spec.id)
    assert store.get_collection("default", "al").id == spec.id
    store.put_index(spec.id, "vec", "vec_idx", {"index_type": "FLAT"})
    assert store.get_collection("default", "c1").indexes == [("vec", "vec_idx", {"index_type": "FLAT"})]
    store.remove_collection(spec.id)
    with pytest.raises(NotFound):
        store.get_collection("default", "c1")
    with pytest.raises(NotFound):
        store.get_collection("default", "al")


def test_same_name_in_two_databases(store: Store) -> None:
    store.create_database("db2", 1)
    a = store.add_collection("default", "same", b"s", 1, 0, [], 1, ["a:1"])
    b = store.add_collection("db2", "same", b"s", 1, 0, [], 1, ["a:1"])
    assert a.id != b.id
    assert "db2" in store.list_databases() and "default" in store.list_databases()


def test_id_blocks_never_overlap(store: Store) -> None:
    blocks = [(store.allocate_ids(n), n) for n in (1, 10, 1000, 7)]
    ranges = sorted((b, b + n) for b, n in blocks)
    for (_, end), (begin, _) in zip(ranges, ranges[1:]):
        assert end <= begin


def test_timestamp_window_is_persisted(store: Store) -> None:
    assert store.reserve_timestamp_window(100) == 0
    assert store.reserve_timestamp_window(50) == 100
    assert store.reserve_timestamp_window(200) == 100


def test_migrations_are_idempotent(store: Store) -> None:
    store.migrate()
    store.migrate()
    assert store.list_databases() == ["default"]


def test_partitions_keep_creation_order(store: Store) -> None:
    spec = store.add_collection("default", "parts", b"s", 1, 0, [], 1, ["a:1"])
    for name in ("zeta", "alpha", "mid", "alpha"):
        store.add_partition(spec.id, name)
    assert store.get_collection("default", "parts").partitions == ["_default", "zeta", "alpha", "mid"]
    store.set_partitions(spec.id, [f"_default_{i}" for i in range(12)])
    assert store.get_collection("default", "parts").partitions == [f"_default_{i}" for i in range(12)]


def test_ready_collection_follows_every_change(store: Store) -> None:
    spec = store.add_collection("default", "cached", b"s", 1, 0, [], 1, ["a:1"])
    assert store.ready_collection(spec.id) is None  # still CREATING
    store.set_state(spec.id, READY)
    first = store.ready_collection(spec.id)
    assert first is not None and first.indexes == [] and not first.loaded
    assert store.ready_collection(spec.id) is first  # unchanged catalog: from memory
    store.put_index(spec.id, "vector", "vector", {"index_type": "FLAT"})
    assert [i[1] for i in store.ready_collection(spec.id).indexes] == ["vector"]  # type: ignore[union-attr]
    store.set_loaded(spec.id, True)
    assert store.ready_collection(spec.id).loaded  # type: ignore[union-attr]
    store.rename_collection(spec.id, "default", "renamed")
    assert store.ready_collection(spec.id).name == "renamed"  # type: ignore[union-attr]
    store.remove_collection(spec.id)
    assert store.ready_collection(spec.id) is None


def test_concurrent_writers_never_share_a_log_position_or_an_id(store: Store) -> None:
    """Each log append and id block reads a position and moves it: never the same one twice.

    Each append draws its timestamp while it holds the collection's shards, so on every
    shard a later position has a later timestamp (reads map timestamps to positions).
    """
    spec = store.add_collection("default", "c", b"s", 2, 0, [], 1, ["a:1", "b:1"])
    store.set_state(spec.id, READY)
    store.allocate_ids(1)
    tso = TimestampOracle(store.reserve_timestamp_window)
    entries = [(0, "Insert", b"x"), (1, "Insert", b"y"), (0, "Delete", b"z")]

    def append(_: int) -> tuple[list[int], int]:
        while True:  # as the mutation log does: the window is persisted outside the transaction
            try:
                return store.append_mutations(spec.id, entries, tso.get_reserved)
            except NoTimestamp:
                tso.reserve_ahead()

    with ThreadPoolExecutor(8) as pool:
        appended = list(pool.map(append, range(60)))
        blocks = list(pool.map(lambda _: store.allocate_ids(10), range(60)))
    shard0 = sorted(seq for seqs, _ in appended for seq in (seqs[0], seqs[2]))
    shard1 = sorted(seqs[1] for seqs, _ in appended)
    assert shard0 == list(range(1, 121)) and shard1 == list(range(1, 61))
    assert all(seqs[2] > seqs[0] for seqs, _ in appended)  # a write's entries keep their order
    assert len({ts for _, ts in appended}) == 60
    for shard in (0, 1):
        stamps = [e.ts for e in store.entries_after(spec.id, shard, 0, limit=1000)]  # in log order
        assert stamps == sorted(stamps)
    assert sorted(blocks) == list(range(min(blocks), min(blocks) + 600, 10))


def test_log_entries_are_numbered_per_shard_and_truncated_once_every_copy_applied(store: Store) -> None:
    spec = store.add_collection("default", "c", b"s", 2, 0, [], 1, ["a:1", "b:1"])
    store.set_state(spec.id, READY)
    store.add_copy(spec.id, 0, "r:1", "replica", COPY_READY)
    entries = [(0, "Insert", b"i" * 70_000), (1, "Insert", b"j"), (0, "Upsert", b"u"), (0, "Delete", b"d")]
    assert store.append_mutations(spec.id, entries, lambda: 7) == ([1, 1, 2, 3], 7)
    got = store.entries_after(spec.id, 0, 0)
    assert [(e.shard, e.seq, e.ts, e.method, e.payload) for e in got] == [
        (0, 1, 7, "Insert", b"i" * 70_000),
        (0, 2, 7, "Upsert", b"u"),
        (0, 3, 7, "Delete", b"d"),
    ]
    assert [e.seq for e in store.entries_after(spec.id, 0, 1, limit=1)] == [2]

    def positions() -> dict[tuple[int, str], tuple[int, int]]:
        return {
            (c.shard, c.instance): (c.applied_seq, c.last_seq) for c in store.copies() if c.collection_id == spec.id
        }

    store.mark_applied(spec.id, 0, "a:1", 3)  # the primary has applied everything, the replica nothing
    assert [e.seq for e in store.entries_after(spec.id, 0, 0)] == [1, 2, 3]
    store.mark_applied(spec.id, 0, "r:1", 2)
    assert [e.seq for e in store.entries_after(spec.id, 0, 0)] == [3]
    assert positions() == {(0, "a:1"): (3, 3), (0, "r:1"): (2, 3), (1, "b:1"): (0, 1)}
    assert store.log_length() == 2  # shard 0's last entry and shard 1's, which no copy applied
    store.mark_applied(spec.id, 0, "r:1", 3)
    assert store.entries_after(spec.id, 0, 0) == [] and store.log_length() == 1
    # positions go on after a truncation; a copy without a recorded position holds the log
    assert store.append_mutations(spec.id, [(0, "Insert", b"k")], lambda: 8) == ([4], 8)
    store.add_copy(spec.id, 0, "r:2", "replica", COPY_READY)
    store.mark_applied(spec.id, 0, "a:1", 4)
    store.mark_applied(spec.id, 0, "r:1", 4)
    assert [e.seq for e in store.entries_after(spec.id, 0, 0)] == [4]
    info = store.copy_info(spec.id, 0, "r:2")
    assert info is not None and (info.applied_seq, info.last_seq, info.role) == (0, 4, "replica")
    assert store.copy_info(spec.id, 0, "nowhere:1") is None
    store.remove_collection(spec.id)
    assert store.log_length() == 0
    with pytest.raises(NotFound):
        store.append_mutations(spec.id, [(0, "Insert", b"x")], lambda: 9)


def test_shard_key_is_recorded_and_collections_from_before_are_sharded_by_primary_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Store(f"sqlite:///{tmp_path}/old.db")
    upgrade(s.engine, "0004")  # a store from before migration 0006, with a collection in it
    with s.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO collections (db_name, name, schema, shards_num, consistency_level, properties, "
                "created_ts, loaded, state) VALUES ('default', 'old', x'00', 2, 0, '[]', 1, 0, 'ready')"
            )
        )
    s.migrate()
    assert s.get_collection("default", "old").shard_key == SHARD_BY_PRIMARY
    new = s.add_collection("default", "new", b"s", 2, 0, [], 1, ["a:1", "b:1"], SHARD_BY_PARTITION_KEY)
    assert new.shard_key == SHARD_BY_PARTITION_KEY
    assert s.get_collection("default", "new").shard_key == SHARD_BY_PARTITION_KEY
    s.engine.dispose()
