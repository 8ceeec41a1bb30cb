"""The mutation log's appliers against a real SQLite store and an in-memory Milvus.

`FakeMilvus` keeps rows per primary key the way one Milvus 2.3.5 collection does: an
insert adds a row even when the key is there (two rows), an upsert replaces, a delete
by `id in [...]` removes. Its failures are scripted per call: a gRPC error raised before
or after the row is applied, or a status in the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
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
from mishards.meta.store import COPY_READY, READY, Store
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
        self.refused: dict[int, common_pb2.Status] = {}  # a call carrying one of these keys gets its status
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
            refused = next((self.refused[k] for k in ids if k in self.refused), None)
            if refused is not None:
                return milvus_pb2.MutationResult(status=refused)
            when, what = self.failures.pop(0) if self.failures else ("", None)
            if when == "before":
                if isinstance(what, common_pb2.Status):
                    return milvus_pb2.MutationResult(status=what)
                if isinstance(what, Exception):  # a bug of ours, say: not a gRPC error
                    raise what
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
    monkeypatch.setattr(mutations, "STUCK_BACKOFF_MAX", 0.05)
    monkeypatch.setattr(mutations, "MARK_INTERVAL", 0.02)


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


@contextlib.asynccontextmanager
async def mutation_log(
    store: Store, milvus: FakeMilvus, timeout: float = 5.0, oracle: TimestampOracle | None = None, **kw: Any
) -> AsyncIterator[MutationLog]:
    log = MutationLog(store, milvus, lambda identity: identity, timeout, oracle or Oracle(), **kw)  # type: ignore[arg-type]
    try:
        yield log
    finally:
        await log.stop()


async def append(log: MutationLog, *entries: tuple[int, str, bytes], wait: bool = True) -> list[int]:
    """A write to shard 0: its positions. `wait`: WRITE_ACK=applied (else logged)."""
    _, positions = await log.append(1, {0: PRIMARY}, list(entries), wait)
    return positions[0]


async def append_or_fail_fast(log: MutationLog, entry: tuple[int, str, bytes], reason: str) -> None:
    """The write fails fast naming the shard, or succeeds when the retry won the race with the waiter."""
    try:
        await append(log, entry)
    except MilvusError as exc:
        assert (
            f"shard 0 of collection mishards_1_s0 is unavailable (its primary {PRIMARY} is not applying writes: {reason}"
            in exc.reason
        )


async def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def applied(log: MutationLog, instance: str = PRIMARY) -> int:
    a = log.applier(1, 0, instance)
    return a.applied_seq if a is not None else -1


def inserted(milvus: FakeMilvus) -> list[int]:
    """Keys of every insert/upsert call, in call order."""
    return [k for method, ids in milvus.calls if method != "Delete" for k in ids]


# --- acknowledgement ------------------------------------------------------------------------------------


def test_a_logged_write_is_acknowledged_while_the_primary_is_down_then_applied(store: Store) -> None:
    milvus = FakeMilvus()
    milvus.down = True

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            for k in range(1, 4):
                assert await append(log, insert(k), wait=False) == [k]  # durable in the log: acknowledged
            assert store.log_length() == 3 and applied(log) == 0
            milvus.down = False
            await eventually(lambda: applied(log) == 3)
            await eventually(lambda: store.log_length() == 0)  # the only copy applied it all: truncated

    asyncio.run(scenario())
    assert milvus.rows == {1: 1, 2: 1, 3: 1}


def test_a_full_backlog_gets_the_rate_limit_status_and_logs_nothing(store: Store) -> None:
    milvus = FakeMilvus()
    milvus.down = True
    size = len(insert(1)[2])

    async def scenario() -> None:
        async with mutation_log(store, milvus, backlog_limit=3 * size) as log:
            for k in range(1, 4):
                await append(log, insert(k), wait=False)
            with pytest.raises(MilvusError) as full:
                await append(log, insert(4), wait=False)
            assert full.value.code == 8 and full.value.to_status().error_code == common_pb2.RateLimit
            assert "shard 0 of collection mishards_1_s0 holds" in full.value.reason
            assert full.value.reason.endswith(f"rate limit exceeded[rate={3 * size}]")
            assert store.log_length() == 3
            milvus.down = False  # the primary catches up: the shard takes writes again
            await eventually(lambda: applied(log) == 3)
            await append(log, insert(5), wait=False)
            await eventually(lambda: applied(log) == 4)

    asyncio.run(scenario())
    assert milvus.rows == {1: 1, 2: 1, 3: 1, 5: 1}


def test_the_backlog_counts_what_the_log_held_when_meta_started(store: Store) -> None:
    store.append_mutations(1, [insert(1), insert(2)], lambda: 1)  # logged by the previous meta, not applied
    milvus = FakeMilvus()
    milvus.down = True
    size = len(insert(1)[2])

    async def scenario() -> None:
        async with mutation_log(store, milvus, backlog_limit=2 * size) as log:
            with pytest.raises(MilvusError, match="rate limit exceeded"):
                await append(log, insert(3), wait=False)

    asyncio.run(scenario())


def test_concurrent_appends_share_commits(store: Store) -> None:
    milvus = FakeMilvus()

    async def scenario() -> int:
        async with mutation_log(store, milvus) as log:
            results = await asyncio.gather(*(append(log, insert(k), wait=False) for k in range(1, 41)))
            assert sorted(seq for r in results for seq in r) == list(range(1, 41))
            await eventually(lambda: applied(log) == 40)
            return log.commits.batches

    batches = asyncio.run(scenario())
    assert batches <= 10, f"{batches} commits for 40 concurrent appends"
    assert sorted(milvus.rows) == list(range(1, 41))


def test_an_append_cut_short_after_its_commit_is_still_applied(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client deadline or a killed router must not leave a committed entry waiting for the next write."""
    milvus = FakeMilvus()
    committing, release = threading.Event(), threading.Event()
    real = store.append_batch

    def slow_append(*args: Any) -> Any:
        committing.set()
        release.wait(5)
        return real(*args)

    monkeypatch.setattr(store, "append_batch", slow_append)

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            caller = asyncio.create_task(append(log, insert(7), wait=False))
            await eventually(committing.is_set)
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            release.set()
            await eventually(lambda: applied(log) == 1)  # no other write came to wake it

    asyncio.run(scenario())
    assert milvus.rows == {7: 1}


# --- applying -------------------------------------------------------------------------------------------


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
    assert all(method == "Upsert" for method, ids in milvus.calls if {2, 3} & set(ids))
    assert inserted(milvus) == [2, 3, 4, 5]


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED]
)
def test_an_insert_that_may_have_been_applied_is_resent_as_an_upsert(store: Store, code: grpc.StatusCode) -> None:
    milvus = FakeMilvus()
    milvus.failures = [("after", code)]  # applied, but the answer is lost

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            await append_or_fail_fast(log, insert(1, 2), reason=code.name)
            await eventually(lambda: applied(log) == 1)
            await append(log, insert(3))  # later entries are new: plain inserts

    asyncio.run(scenario())
    assert milvus.rows == {1: 1, 2: 1, 3: 1}
    assert milvus.calls == [("Insert", [1, 2]), ("Upsert", [1, 2]), ("Insert", [3])]


def test_applied_mode_writes_fail_fast_naming_the_shard_while_the_primary_does_not_answer(store: Store) -> None:
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
            assert "will be applied" in failed.value.reason  # its outcome is not a failure: it is logged
            with pytest.raises(MilvusError, match="not applying writes"):  # the next write too, just as fast
                await append(log, insert(2))
            assert time.monotonic() - started < 4.0
            milvus.down = False
            await append(log, insert(3))  # back: writes resume, logged ones first, in order

    asyncio.run(scenario())
    assert milvus.rows == {1: 1, 2: 1, 3: 1}
    assert inserted(milvus)[-3:] == [1, 2, 3]


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


def test_a_later_answer_is_retried_without_limit(store: Store) -> None:
    milvus = FakeMilvus()
    not_ready = ("before", common_pb2.Status(code=1, reason="service not ready"))
    milvus.failures = [not_ready] * 30

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            await append(log, insert(1), wait=False)
            await eventually(lambda: applied(log) == 1)
            assert not log.applier(1, 0, PRIMARY).stuck  # type: ignore[union-attr]

    asyncio.run(scenario())
    assert milvus.rows == {1: 1} and len(milvus.calls) == 31


def test_a_refused_logged_entry_is_stuck_not_dropped_and_the_shard_takes_writes(store: Store) -> None:
    milvus = FakeMilvus()
    refusal = common_pb2.Status(code=1100, error_code=5, reason="the num_rows (4) of field (v)")
    milvus.failures = [("before", refusal)] * 4

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            await append(log, insert(1), wait=False)  # acknowledged: it is in the log
            await eventually(lambda: bool(log.applier(1, 0, PRIMARY).stuck))  # type: ignore[union-attr]
            a = log.applier(1, 0, PRIMARY)
            assert a is not None and a.stuck_seq == 1
            assert a.stuck == "entry 1 (Insert) rejected by wo:19530: code 1100: the num_rows (4) of field (v)"
            await append(log, insert(2), wait=False)  # the shard still takes writes
            await eventually(lambda: applied(log) == 2)  # the refusals end: the stuck entry goes through, once
            assert not a.stuck

    asyncio.run(scenario())
    assert milvus.rows == {1: 1, 2: 1}
    assert inserted(milvus).count(1) == 5


def test_an_operator_skips_a_stuck_entry_recording_the_abort(store: Store) -> None:
    milvus = FakeMilvus()
    refusal = common_pb2.Status(code=1100, error_code=5, reason="bad row")
    milvus.failures = [("before", refusal)] * 1000

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            await append(log, insert(1), wait=False)
            await append(log, insert(2), wait=False)
            await eventually(lambda: bool(log.applier(1, 0, PRIMARY).stuck))  # type: ignore[union-attr]
            milvus.failures = []
            assert "entry skipped" in await log.repair(1, 0, PRIMARY, "skip")
            await eventually(lambda: applied(log) == 2)

    asyncio.run(scenario())
    assert milvus.rows == {2: 1}


def test_applied_mode_aborts_a_refused_entry_and_answers_the_primarys_status(store: Store) -> None:
    store.add_copy(1, 0, "ro:19530", "replica", COPY_READY)
    milvus, replica = FakeMilvus(), FakeMilvus()
    milvus.others["ro:19530"] = replica
    refusal = common_pb2.Status(code=1100, error_code=5, reason="the num_rows (4) of field (v)")
    milvus.failures = [("before", refusal)]

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.start()
            with pytest.raises(MilvusError) as refused:
                await append(log, insert(1))
            assert (refused.value.code, refused.value.reason) == (1100, "the num_rows (4) of field (v)")
            await append(log, insert(2))  # the shard takes writes
            await eventually(lambda: applied(log, "ro:19530") == 2)  # the replica skipped the aborted entry

    asyncio.run(scenario())
    assert milvus.rows == replica.rows == {2: 1}
    assert replica.calls == [("Insert", [2])]


def test_an_aborted_entry_is_skipped_after_a_restart(store: Store) -> None:
    store.append_mutations(1, [insert(1), insert(2)], lambda: 1)
    store.abort_entry(1, 0, 1)
    milvus = FakeMilvus()

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.start()
            await eventually(lambda: applied(log) == 2)

    asyncio.run(scenario())
    assert milvus.rows == {2: 1}


def test_a_bug_in_applying_does_not_end_the_applier(store: Store) -> None:
    milvus = FakeMilvus()
    milvus.failures = [("before", RuntimeError("injected"))]

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            await append(log, insert(1), wait=False)
            await eventually(lambda: applied(log) == 1)
            task = log.applier(1, 0, PRIMARY).task  # type: ignore[union-attr]
            assert task is not None and not task.done()

    asyncio.run(scenario())
    assert milvus.rows == {1: 1}


def test_an_entry_that_does_not_decode_is_stuck_not_fatal(store: Store) -> None:
    store.append_mutations(1, [(0, "Insert", b"\xff\xff not a request")], lambda: 1)  # behind the servicer's back
    milvus = FakeMilvus()

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.start()
            await eventually(lambda: "does not decode" in log.applier(1, 0, PRIMARY).stuck)  # type: ignore[union-attr]
            await log.repair(1, 0, PRIMARY, "skip")
            await append(log, insert(2), wait=False)
            await eventually(lambda: applied(log) == 2)

    asyncio.run(scenario())
    assert milvus.rows == {2: 1}


def test_a_replica_applies_only_what_its_primary_applied(store: Store) -> None:
    store.add_copy(1, 0, "ro:19530", "replica", COPY_READY)
    milvus, replica = FakeMilvus(), FakeMilvus()
    milvus.others["ro:19530"] = replica
    milvus.down = True

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.start()
            for k in (1, 2):
                await append(log, insert(k), wait=False)
            await asyncio.sleep(0.3)
            assert applied(log, "ro:19530") == 0 and replica.calls == []
            milvus.down = False
            await eventually(lambda: applied(log, "ro:19530") == 2)

    asyncio.run(scenario())
    assert replica.rows == milvus.rows == {1: 1, 2: 1}


def test_a_replica_that_fails_on_an_entry_its_primary_applied_is_refilled(store: Store) -> None:
    store.add_copy(1, 0, "ro:19530", "replica", COPY_READY)
    milvus, replica = FakeMilvus(), FakeMilvus()
    milvus.others["ro:19530"] = replica
    replica.failures = [("before", common_pb2.Status(code=1100, reason="refused"))]
    lost: list[tuple[int, int, str, str]] = []

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.on_replica_lost = lambda *args: lost.append(args)
            log.start()
            await append(log, insert(1))
            await eventually(lambda: bool(lost))
            assert log.applier(1, 0, "ro:19530") is None  # out of rotation until refilled
            await append(log, insert(2))  # the primary goes on

    asyncio.run(scenario())
    assert lost == [(1, 0, "ro:19530", "entry 1 (Insert) rejected by ro:19530: code 1100: refused")]
    assert milvus.rows == {1: 1, 2: 1}


def test_a_replica_down_past_the_grace_no_longer_holds_the_log(store: Store) -> None:
    store.add_copy(1, 0, "ro:19530", "replica", COPY_READY)
    milvus, replica = FakeMilvus(), FakeMilvus()
    milvus.others["ro:19530"] = replica
    replica.down = True
    lost: list[tuple[int, int, str, str]] = []

    async def scenario() -> None:
        async with mutation_log(store, milvus, replica_down_grace=0.3) as log:
            log.on_replica_lost = lambda *args: lost.append(args)
            log.start()
            await append(log, insert(1))
            await eventually(lambda: log.released(1, 0) == ["ro:19530"])  # down past the grace
            await append(log, insert(2))
            await eventually(lambda: store.log_length() == 0)  # the primary alone holds it back now
            replica.down = False  # it returns: the log no longer has what it needs
            await eventually(lambda: bool(lost))

    asyncio.run(scenario())
    assert lost[0][3] == "the log no longer holds entry 1"


def test_the_log_keeps_what_a_replica_has_not_applied(store: Store) -> None:
    store.add_copy(1, 0, "ro:19530", "replica", COPY_READY)
    milvus, replica = FakeMilvus(), FakeMilvus()
    milvus.others["ro:19530"] = replica
    replica.down = True

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            log.start()
            for k in range(1, 6):
                await append(log, insert(k))
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
            seq_of.update({k: result[0] for k, result in zip(range(1, 21), results)})
            await append(log, delete(*range(1, 11)))
            await eventually(lambda: store.log_length() == 0)  # the only copy applied everything

    asyncio.run(scenario())
    assert sorted(seq_of.values()) == list(range(1, 21))
    assert inserted(milvus) == sorted(seq_of, key=seq_of.__getitem__)
    assert milvus.calls[-1] == ("Delete", list(range(1, 11)))
    assert sorted(milvus.rows) == list(range(11, 21))
    assert store.copy_info(1, 0, PRIMARY).applied_seq == 21  # type: ignore[union-attr]


def test_consecutive_inserts_go_as_one_call_when_the_copy_is_behind(store: Store) -> None:
    milvus = FakeMilvus()
    milvus.down = True

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            for k in range(1, 11):
                await append(log, insert(k), wait=False)
            await append(log, delete(3), wait=False)
            await append(log, insert(11), wait=False)
            milvus.calls.clear()
            milvus.down = False
            await eventually(lambda: applied(log) == 12)

    asyncio.run(scenario())
    # the first run was tried while the instance was down: it may have landed, so it goes as an upsert
    assert [ids for _, ids in milvus.calls] == [list(range(1, 11)), [3], [11]]
    assert [method for method, _ in milvus.calls][1:] == ["Delete", "Insert"]


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


# --- positions ------------------------------------------------------------------------------------------


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
        async with mutation_log(store, milvus, oracle=Oracle(100, 200)) as log:

            async def positions(ts: int) -> tuple[int, dict[str, tuple[int, int]]]:
                (p,) = await log.read_positions(1, [0], ts)
                return p.seq, {instance: (applied, backend_ts) for instance, applied, backend_ts, _ in p.copies}

            log.start()
            # nothing appended since start: a timestamp maps to the whole log, the clocks are unknown...
            assert await positions(60) == (1, {PRIMARY: (1, 0), "ro:19530": (1, 0)})
            # ... until each instance gives one (a timestamp it allocates after what it acknowledged)
            await eventually(lambda: bool(log.applier(1, 0, "ro:19530").backend_ts))  # type: ignore[union-attr]
            assert await positions(60) == (1, {PRIMARY: (1, 1001), "ro:19530": (1, 5001)})
            first, _ = await log.append(1, {0: PRIMARY}, [insert(2)], True)
            await eventually(lambda: applied(log, "ro:19530") == 2)
            replica.down = True
            second, _ = await log.append(1, {0: PRIMARY}, [insert(3)], True)
            assert (first, second) == (100, 200)
            assert await positions(60) == (1, {PRIMARY: (3, 1021), "ro:19530": (2, 5011)})
            assert (await positions(100))[0] == 2  # the replica has it: it may serve this read at 5011
            assert (await positions(150))[0] == 2
            assert (await positions(200))[0] == 3  # only the primary has reached it
            (p,) = await log.read_positions(1, [0], 100)
            assert {c[0]: c[3] for c in p.copies} == {PRIMARY: 1011, "ro:19530": 5011}  # each one's clock of entry 2

    asyncio.run(scenario())


def test_a_positioned_read_waits_for_a_lagging_primary(store: Store) -> None:
    milvus = FakeMilvus()
    milvus.down = True

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            ts, _ = await log.append(1, {0: PRIMARY}, [insert(1)], False)
            started = time.monotonic()
            (p,) = await log.read_positions(1, [0], ts, wait=0.3)  # gives up at the wait's end
            assert time.monotonic() - started >= 0.3
            assert p.seq == 1 and p.copies[0][1] == 0
            waiting = asyncio.create_task(log.read_positions(1, [0], ts, wait=5.0))
            await asyncio.sleep(0.1)
            milvus.down = False  # the primary catches up while the read waits: it answers then
            (p,) = await waiting
            assert p.copies[0][1] == 1
            assert time.monotonic() - started < 3.0

    asyncio.run(scenario())


def test_the_oracles_window_is_persisted_outside_the_append_transaction(store: Store) -> None:
    """On SQLite, persisting the window inside the append's transaction would wait for its own lock."""
    oracle = Oracle()  # no window yet: the first try under the lock gets no timestamp
    milvus = FakeMilvus()

    async def scenario() -> int:
        async with mutation_log(store, milvus, oracle=oracle) as log:
            ts, positions = await log.append(1, {0: PRIMARY}, [insert(1)], True)
            assert positions == {0: [1]}
            return ts

    ts = asyncio.run(scenario())
    assert oracle.bound > 0 and physical_ms(ts) < oracle.bound
    assert milvus.calls == [("Insert", [1])]  # appended once


def test_a_shard_never_written_to_is_read_on_its_primary(store: Store) -> None:
    """A collection made after meta started has no applier until its first write; a read must not wait for one."""
    milvus = FakeMilvus()

    async def scenario() -> None:
        async with mutation_log(store, milvus) as log:
            (p,) = await log.read_positions(1, [0], 2**64 - 1, wait=1.0)
            assert p.seq == 0 and [c[:2] for c in p.copies] == [(PRIMARY, 0)]

    asyncio.run(scenario())
