"""The mutation log's appliers against a real SQLite store and an in-memory Milvus.

`FakeMilvus` keeps rows per primary key the way one Milvus 2.3.5 collection does: an
insert adds a row even when the key is there (two rows), an upsert replaces, a delete
by `id in [...]` removes. Its failures are scripted per call: a gRPC error raised before
or after the row is applied, or a status in the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from mishards.common.errors import MilvusError
from mishards.common.logs import REQUEST_ID
from mishards.meta import mutations
from mishards.meta.mutations import MutationLog, ShardTimeline
from mishards.meta.store import COPY_FAILED, COPY_READY, READY, Store
from mishards.meta.tso import TimestampOracle, physical_ms

PRIMARY = "wo:19530"


def insert(*ids: int) -> tuple[int, str, bytes]:
    field = schema_pb2.FieldData(field_name="id", type=schema_pb2.DataType.Int64)
    field.scalars.long_data.data.extend(ids)
    request = milvus_pb2.InsertRequest(collection_name="mishards_1_s0", num_rows=len(ids), fields_data=[field])
    return 0, "Insert", request.SerializeToString()


def delete(*ids: int) -> tuple[int, str, bytes]:
    request = milvus_pb2.DeleteRequest(collection_name="mishards_1_s0", expr=f"id in {list(ids)}")
    return 0, "Delete", request.SerializeToString()


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="scripted")


# A scripted failure: (when, what) with when "before" (nothing applied) or "after" (applied,
# then the answer is lost), and what a gRPC code or a common.Status to answer with.
Failure = tuple[str, Any]


class FakeMilvus:
    def __init__(self) -> None:
        self.rows: Counter[int] = Counter()
        self.calls: list[tuple[str, list[int]]] = []
        self.request_ids: list[str] = []  # the logging request id each call was made under
        self.failures: list[Failure] = []  # consumed one per call, front first
        self.down = False  # every call fails UNAVAILABLE, nothing applied
        self.others: dict[str, FakeMilvus] = {}  # other instances by address (this one answers the rest)
        self.clock = 1000  # the instance's own timestamps, returned with each applied mutation

    def stub(self, address: str) -> FakeMilvus:
        return self.others.get(address, self)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    async def AllocTimestamp(self, request: milvus_pb2.AllocTimestampRequest, **_: Any) -> Any:
        if self.down:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE)
        self.clock += 1
        return milvus_pb2.AllocTimestampResponse(status=common_pb2.Status(), timestamp=self.clock)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method not in ("Insert", "Upsert", "Delete"):
            raise AttributeError(method)

        async def call(request: Any, **_: Any) -> milvus_pb2.MutationResult:
            self.request_ids.append(REQUEST_ID.get())
            ids = _ids(request)
            self.calls.append((method, ids))
            if self.down:
                raise rpc_error(grpc.StatusCode.UNAVAILABLE)
            when, what = self.failures.pop(0) if self.failures else ("", None)
            if when == "before":
                if isinstance(what, common_pb2.Status):
                    return milvus_pb2.MutationResult(status=what)
                raise rpc_error(what)
            self._apply(method, ids)
            if when == "after":
                raise rpc_error(what)
            self.clock += 10
            return milvus_pb2.MutationResult(status=common_pb2.Status(), insert_cnt=len(ids), timestamp=self.clock)

        return call

    def _apply(self, method: str, ids: list[int]) -> None:
        for key in ids:
            if method == "Insert":
                self.rows[key] += 1
            elif method == "Upsert":
                self.rows[key] = 1
            else:
                self.rows.pop(key, None)


def _ids(request: Any) -> list[int]:
    if isinstance(request, milvus_pb2.DeleteRequest):
        return [int(x) for x in request.expr.split("[")[1].rstrip("]").split(",")]
    return list(request.fields_data[0].scalars.long_data.data)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path}/meta.db")
    s.migrate()
    spec = s.add_collection("default", "c", b"", 1, 0, [], 1, [PRIMARY])
    s.set_state(spec.id, READY)
    assert spec.id == 1
    return s


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mutations, "BACKOFF_FIRST", 0.01)
    monkeypatch.setattr(mutations, "BACKOFF_MAX", 0.05)


@contextlib.asynccontextmanager
async def mutation_log(store: Store, milvus: FakeMilvus, timeout: float = 5.0) -> AsyncIterator[MutationLog]:
    log = MutationLog(store, milvus, lambda identity: identity, timeout)  # type: ignore[arg-type]
    try:
        yield log
    finally:
        await log.stop()


class Oracle(TimestampOracle):
    """A real oracle whose window lives in memory; `at` scripts the timestamps given under the append's lock."""

    def __init__(self, *at: int) -> None:
        self.bound = 0
        self.at = list(at)
        super().__init__(self.reserve)

    def reserve(self, upto_ms: int) -> int:
        previous, self.bound = self.bound, max(self.bound, upto_ms)
        return previous

    def get_reserved(self, count: int = 1) -> int | None:
        return self.at.pop(0) if self.at else super().get_reserved(count)


ORACLE = Oracle()


async def append(log: MutationLog, *entries: tuple[int, str, bytes]) -> dict[int, list[tuple[int, bytes]]]:
    _, results = await log.append(1, {0: PRIMARY}, list(entries), ORACLE)
    return results


async def append_or_fail_fast(log: MutationLog, entry: tuple[int, str, bytes], reason: str) -> None:
    """The write fails fast naming the shard, or succeeds when the retry won the race with the waiter."""
    try:
        await append(log, entry)
    except MilvusError as exc:
        assert (
            f"shard 0 of collection mishards_1_s0 is unavailable (its primary {PRIMARY} is not applying writes: {reason}"
            in exc.reason
        )


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_write_before_start_resumes_from_the_recorded_position(store: Store) -> None:
    """Meta serves while it starts: the first write must not replay the log as plain inserts."""
    # The previous meta appended 1..3, applied all three, recorded only 1, then died.
    store.append_mutations(1, [insert(1), insert(2), insert(3)], lambda: 1)
    store.mark_applied(1, 0, PRIMARY, 1)
    milvus = FakeMilvus()
    milvus.rows.update({1: 1, 2: 1, 3: 1})

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:  # start() has not run
            await append(log, insert(4))
            log.start()  # the start-up catching up finds the applier and leaves it be
            await append(log, insert(5))
            await eventually(lambda: store.copy_info(1, 0, PRIMARY).applied_seq == 5)  # type: ignore[union-attr]

    asyncio.run(scenario())
    assert milvus.rows == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    assert milvus.calls == [("Upsert", [2]), ("Upsert", [3]), ("Insert", [4]), ("Insert", [5])]


def test_a_write_before_start_keeps_a_failed_copy_failed(store: Store) -> None:
    store.append_mutations(1, [insert(1)], lambda: 1)
    store.set_copy_state(1, 0, PRIMARY, COPY_FAILED, "entry 1 (Insert) rejected by wo:19530: schema")
    milvus = FakeMilvus()

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            with pytest.raises(MilvusError, match="shard 0 is failed .*: entry 1 .*schema"):
                await append(log, insert(2))

    asyncio.run(scenario())
    assert milvus.calls == []
    assert [e.seq for e in store.entries_after(1, 0, 0)] == [1]  # nothing appended after the failed entry


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED]
)
def test_an_insert_that_may_have_been_applied_is_resent_as_an_upsert(store: Store, code: grpc.StatusCode) -> None:
    milvus = FakeMilvus()
    milvus.failures = [("after", code)]  # applied, but the answer is lost

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            await append_or_fail_fast(log, insert(1, 2), reason=code.name)
            await eventually(lambda: log.applier(1, 0, PRIMARY).applied_seq == 1)  # type: ignore[union-attr]
            await append(log, insert(3))  # later entries are new: plain inserts

    asyncio.run(scenario())
    assert milvus.rows == {1: 1, 2: 1, 3: 1}
    assert milvus.calls == [("Insert", [1, 2]), ("Upsert", [1, 2]), ("Insert", [3])]


def test_writes_fail_fast_naming_the_shard_while_the_primary_does_not_answer(store: Store) -> None:
    milvus = FakeMilvus()
    milvus.down = True

    async def scenario() -> None:
        async with mutation_log(store, milvus, timeout=30.0) as log:
            started = time.monotonic()
            with pytest.raises(MilvusError) as failed:
                await append(log, insert(1))
            assert time.monotonic() - started < 2.0  # not the 30 s backend timeout
            assert failed.value.code == 2  # SERVICE_UNAVAILABLE, as Milvus says for a node it cannot reach
            assert "shard 0 of collection mishards_1_s0" in failed.value.reason
            assert f"primary {PRIMARY} is not applying writes: UNAVAILABLE" in failed.value.reason
            with pytest.raises(MilvusError, match="not applying writes"):  # the next write too, just as fast
                await append(log, insert(2))
            assert time.monotonic() - started < 4.0
            milvus.down = False
            await append(log, insert(3))  # back: writes resume, logged ones first, in order

    asyncio.run(scenario())
    assert milvus.rows == {1: 1, 2: 1, 3: 1}
    assert milvus.calls[0] == ("Insert", [1])
    assert milvus.calls[-3:] == [("Upsert", [1]), ("Insert", [2]), ("Insert", [3])]


def test_a_write_that_times_out_names_the_shard_and_instance(store: Store) -> None:
    milvus = FakeMilvus()

    async def hang(request: Any, **_: Any) -> Any:
        await asyncio.sleep(10)

    async def scenario() -> None:
        async with mutation_log(store, milvus, timeout=0.3) as log:
            milvus.__dict__["Insert"] = hang  # an instance that accepts the call and never answers
            with pytest.raises(MilvusError, match=f"shard 0 of collection mishards_1_s0: its primary {PRIMARY} did"):
                await append(log, insert(1))

    asyncio.run(scenario())


def test_a_rejection_with_a_retry_code_marks_the_copy_failed_in_the_end(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mutations, "REFUSAL_LIMIT", 4)
    milvus = FakeMilvus()
    refusal = common_pb2.Status(code=1, error_code=common_pb2.UnexpectedError, reason="field x: schema mismatch")
    milvus.failures = [("before", refusal)] * 4

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            with pytest.raises(MilvusError, match="schema mismatch"):
                await append(log, insert(1))
            # the store first, then the applier: a write is refused once the applier knows
            await eventually(lambda: bool(log.applier(1, 0, PRIMARY).failed))  # type: ignore[union-attr]
            assert store.copy_info(1, 0, PRIMARY).state == COPY_FAILED  # type: ignore[union-attr]
            with pytest.raises(MilvusError, match="shard 0 is failed and takes no writes"):
                await append(log, insert(2))
            # an operator retries once the backend is fixed: the entry goes through, once
            assert "ready again" in await log.repair(1, 0, PRIMARY, "retry")
            await append(log, insert(3))

    asyncio.run(scenario())
    reason = store.copy_info(1, 0, PRIMARY).reason  # type: ignore[union-attr]
    assert reason == ""  # repaired
    assert [m for m, _ in milvus.calls].count("Insert") == 1 + 1  # the first try, then seq 3
    assert milvus.rows == {1: 1, 3: 1}


def test_the_failure_reason_is_recorded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mutations, "REFUSAL_LIMIT", 3)
    milvus = FakeMilvus()
    milvus.failures = [("before", common_pb2.Status(code=1, reason="schema mismatch"))] * 3

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            with pytest.raises(MilvusError):
                await append(log, insert(1))
            await eventually(lambda: store.copy_info(1, 0, PRIMARY).state == COPY_FAILED)  # type: ignore[union-attr]

    asyncio.run(scenario())
    reason = store.copy_info(1, 0, PRIMARY).reason  # type: ignore[union-attr]
    assert reason == "entry 1 (Insert) rejected by wo:19530: code 1: schema mismatch (refused 3 times running)"
    assert len(milvus.calls) == 3


def test_a_not_ready_answer_is_retried_and_counts_from_zero_after_a_success(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mutations, "REFUSAL_LIMIT", 3)
    milvus = FakeMilvus()
    not_ready = ("before", common_pb2.Status(code=1, reason="service not ready"))
    milvus.failures = [not_ready, not_ready, ("", None), not_ready, not_ready]

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            await append_or_fail_fast(log, insert(1), reason="code 1: service not ready")
            await eventually(lambda: log.applier(1, 0, PRIMARY).applied_seq == 1)  # type: ignore[union-attr]
            await append_or_fail_fast(log, insert(2), reason="code 1: service not ready")
            await eventually(lambda: log.applier(1, 0, PRIMARY).applied_seq == 2)  # type: ignore[union-attr]
            assert not log.applier(1, 0, PRIMARY).failed  # type: ignore[union-attr]

    asyncio.run(scenario())
    assert milvus.rows == {1: 1, 2: 1}


def test_a_rejection_marks_the_copy_failed_at_once(store: Store) -> None:
    milvus = FakeMilvus()
    milvus.failures = [("before", common_pb2.Status(code=1100, error_code=5, reason="the num_rows (4) of field (v)"))]

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            with pytest.raises(MilvusError, match=r"shard 0 .* rejected the write: entry 1 .*num_rows \(4\)"):
                await append(log, insert(1))

    asyncio.run(scenario())
    assert store.copy_info(1, 0, PRIMARY).state == COPY_FAILED  # type: ignore[union-attr]
    assert len(milvus.calls) == 1


def test_appliers_do_not_carry_the_request_that_started_them(store: Store) -> None:
    milvus = FakeMilvus()

    async def request(log: MutationLog, request_id: str, *entries: tuple[int, str, bytes]) -> None:
        REQUEST_ID.set(request_id)
        await append(log, *entries)

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            await asyncio.create_task(request(log, "first-request", insert(1)))
            await asyncio.create_task(request(log, "second-request", insert(2)))

    asyncio.run(scenario())
    assert milvus.request_ids == ["-", "-"]


def test_the_log_keeps_what_a_replica_has_not_applied(store: Store) -> None:
    store.add_copy(1, 0, "ro:19530", "replica", COPY_READY)
    milvus, replica = FakeMilvus(), FakeMilvus()
    milvus.others["ro:19530"] = replica
    replica.down = True

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.start()
            for k in range(1, 6):
                await append(log, insert(k))  # the primary applies: acknowledged
            await append(log, delete(1, 2))
            await eventually(lambda: store.copy_info(1, 0, PRIMARY).applied_seq == 6)  # type: ignore[union-attr]
            assert store.log_length() == 6  # all of it: the replica has applied nothing
            replica.down = False
            await eventually(lambda: store.log_length() == 0)

    asyncio.run(scenario())
    assert milvus.rows == replica.rows == {3: 1, 4: 1, 5: 1}
    assert store.copy_info(1, 0, "ro:19530").applied_seq == 6  # type: ignore[union-attr]


def test_concurrent_writes_are_applied_in_log_order_and_the_log_truncated(store: Store) -> None:
    milvus = FakeMilvus()
    seq_of: dict[int, int] = {}

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            results = await asyncio.gather(*(append(log, insert(k)) for k in range(1, 21)))
            seq_of.update({k: result[0][0][0] for k, result in zip(range(1, 21), results)})
            await append(log, delete(*range(1, 11)))
            await eventually(lambda: store.log_length() == 0)  # the only copy applied everything

    asyncio.run(scenario())
    assert sorted(seq_of.values()) == list(range(1, 21))
    assert milvus.calls == [("Insert", [k]) for k in sorted(seq_of, key=seq_of.__getitem__)] + [
        ("Delete", list(range(1, 11)))
    ]
    assert sorted(milvus.rows) == list(range(11, 21))
    assert store.copy_info(1, 0, PRIMARY).applied_seq == 21  # type: ignore[union-attr]


def test_a_timeline_maps_a_timestamp_to_a_position_never_earlier_than_needed() -> None:
    timeline = ShardTimeline(base=4)  # entries 1..4 were logged before meta started
    for ts, seq in [(20, 6), (10, 5), (30, 7)]:  # the appends' threads return in any order
        timeline.add(ts, seq)
    assert [timeline.position_at(ts) for ts in (1, 9, 10, 19, 20, 30, 99)] == [4, 4, 5, 5, 6, 7, 7]


def test_a_full_timeline_folds_old_positions_into_its_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mutations, "TIMELINE_LIMIT", 4)
    timeline = ShardTimeline(base=0)
    for seq in range(1, 6):
        timeline.add(seq * 10, seq)
    assert timeline.base == 2 and timeline.seqs == [3, 4, 5]
    assert [timeline.position_at(ts) for ts in (5, 10, 30, 50)] == [2, 2, 3, 5]  # later than needed, never earlier


def test_read_positions_say_where_a_timestamp_is_and_which_copies_reached_it(store: Store) -> None:
    store.append_mutations(1, [insert(1)], lambda: 50)  # logged by the previous meta: in no timeline
    store.mark_applied(1, 0, PRIMARY, 1)
    store.add_copy(1, 0, "ro:19530", "replica", COPY_READY)
    store.mark_applied(1, 0, "ro:19530", 1)
    milvus, replica = FakeMilvus(), FakeMilvus()
    milvus.others["ro:19530"] = replica
    replica.clock = 5000

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:

            async def positions(ts: int) -> tuple[int, dict[str, tuple[int, int]]]:
                (p,) = await log.read_positions(1, [0], ts)
                return p.seq, {instance: (applied, backend_ts) for instance, applied, backend_ts in p.copies}

            log.start()
            # nothing appended since start: a timestamp maps to the whole log, the clocks are unknown...
            assert await positions(60) == (1, {PRIMARY: (1, 0), "ro:19530": (1, 0)})
            # ... until each instance gives one (a timestamp it allocates after what it acknowledged)
            await eventually(lambda: bool(log.applier(1, 0, "ro:19530").backend_ts))  # type: ignore[union-attr]
            assert await positions(60) == (1, {PRIMARY: (1, 1001), "ro:19530": (1, 5001)})
            first, _ = await log.append(1, {0: PRIMARY}, [insert(2)], Oracle(100))
            await eventually(lambda: log.applier(1, 0, "ro:19530").applied_seq == 2)  # type: ignore[union-attr]
            replica.down = True
            second, _ = await log.append(1, {0: PRIMARY}, [insert(3)], Oracle(200))
            assert (first, second) == (100, 200)
            assert await positions(60) == (1, {PRIMARY: (3, 1021), "ro:19530": (2, 5011)})
            assert (await positions(100))[0] == 2  # the replica has it: it may serve this read at 5011
            assert (await positions(150))[0] == 2
            assert (await positions(200))[0] == 3  # only the primary has reached it
            await log._fail(log.applier(1, 0, "ro:19530"), "scripted")  # type: ignore[arg-type]
            assert (await positions(200))[1] == {PRIMARY: (3, 1021)}  # a failed copy serves no read

    asyncio.run(scenario())


def test_the_oracles_window_is_persisted_outside_the_append_transaction(store: Store) -> None:
    """On SQLite, persisting the window inside the append's transaction would wait for its own lock."""
    oracle = Oracle()  # no window yet: the first try under the lock gets no timestamp
    milvus = FakeMilvus()

    async def scenario() -> int:
        async with mutation_log(store, milvus) as log:
            ts, results = await log.append(1, {0: PRIMARY}, [insert(1)], oracle)
            assert [seq for seq, _ in results[0]] == [1]
            return ts

    ts = asyncio.run(scenario())
    assert oracle.bound > 0 and physical_ms(ts) < oracle.bound
    assert milvus.calls == [("Insert", [1])]  # appended once
