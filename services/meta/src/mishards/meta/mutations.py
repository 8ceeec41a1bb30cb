"""The mutation log's appliers: every copy applies its shard's entries in log order.

An entry is acknowledged to the router once the shard's primary has applied it. Entries
that were in the log when meta started may have been applied before a crash; they are
replayed with inserts turned into upserts, so a replay never duplicates a row.

Each write's Mishards timestamp is drawn inside its append transaction, so on every shard
timestamps grow with log positions; a `ShardTimeline` maps a client's timestamp back to the
position a read must see (`read_positions`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from mishards.common import errors
from mishards.common.backends import BackendPool
from mishards.common.errors import MilvusError
from mishards.meta.store import (
    COPY_FAILED,
    COPY_FILLING,
    COPY_READY,
    LogEntry,
    NotFound,
    NoTimestamp,
    Store,
    physical_name,
)
from mishards.meta.tso import TimestampOracle

log = logging.getLogger(__name__)

INBOX_LIMIT = 256  # appended entries held in memory per copy; beyond that the copy reads the log
REQUESTS = {"Insert": milvus_pb2.InsertRequest, "Upsert": milvus_pb2.UpsertRequest, "Delete": milvus_pb2.DeleteRequest}
# gRPC codes that mean "the instance did not answer": retried until it does.
TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# Milvus codes worth retrying (not ready, rate limits, disk/memory pressure): the backend said "later".
RETRIABLE_CODES = {1, 2, 4, 8, 9, 12}
# An entry the backend keeps refusing with such a code this many times running is rejected:
# the copy is marked failed instead of blocking the shard for ever (about a minute of backoff).
REFUSAL_LIMIT = 15
TIMELINE_LIMIT = 4096  # (timestamp, position) pairs kept per shard; older ones fold into the base
BACKOFF_FIRST = 0.2  # seconds before the first retry; doubles up to BACKOFF_MAX
BACKOFF_MAX = 5.0


def upsert_from_insert(request: milvus_pb2.InsertRequest) -> milvus_pb2.UpsertRequest:
    out = milvus_pb2.UpsertRequest(
        collection_name=request.collection_name, partition_name=request.partition_name, num_rows=request.num_rows
    )
    out.fields_data.extend(request.fields_data)
    return out


@dataclass
class ShardTimeline:
    """A shard's recent log positions by write timestamp, for mapping a client timestamp to a position.

    Within a collection, appends are serialised and draw their timestamp while they hold the
    lock, so timestamps and positions grow together. Pairs arrive in any order (the appends'
    threads return in any order) and are kept sorted. `base` is an upper bound on the position
    of every entry not held here (appended before meta started, or dropped as too old), so the
    answer may be later than needed but never earlier.
    """

    base: int
    stamps: list[int] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)

    def add(self, ts: int, seq: int) -> None:
        at = bisect.bisect_right(self.seqs, seq)
        self.seqs.insert(at, seq)
        self.stamps.insert(at, ts)
        if len(self.seqs) > TIMELINE_LIMIT:
            drop = TIMELINE_LIMIT // 2
            self.base = max(self.base, self.seqs[drop - 1])
            del self.seqs[:drop], self.stamps[:drop]

    def position_at(self, ts: int) -> int:
        """The position every entry with a timestamp up to `ts` is at or below."""
        at = bisect.bisect_right(self.stamps, ts)
        return max(self.base, self.seqs[at - 1]) if at else self.base


@dataclass
class ReadPosition:
    """Where a read at a timestamp must be on one shard, and where the shard's copies are."""

    shard: int
    seq: int
    copies: list[tuple[str, int, int]]  # (instance, applied position, backend timestamp of that position or 0)


@dataclass
class CopyApplier:
    """Applies one shard's log to one copy, in order, forever."""

    collection_id: int
    shard: int
    instance: str
    applied_seq: int
    replay_upto: int  # entries up to here were in the log when meta started
    failed: str = ""
    backend_ts: int = 0  # the instance's own timestamp of the applied_seq entry (0: not known)
    clock_asked: int = -1  # the applied position the instance was last asked for a timestamp at
    unavailable: str = ""  # set while the copy's instance does not answer; waiters fail fast
    refusals: int = 0  # times running the backend answered "later" to the next entry
    failing_since: float = 0.0  # monotonic time the copy stopped applying (0 while it applies)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    retry: asyncio.Event = field(default_factory=asyncio.Event)  # a new write cuts the backoff short
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    responses: dict[int, bytes] = field(default_factory=dict)  # seq -> primary response, until read
    task: asyncio.Task[None] | None = None
    inbox: dict[int, LogEntry] = field(default_factory=dict)  # just appended: no need to read them back

    def take_inbox(self) -> list[LogEntry]:
        """The appended entries that follow the applied position without a gap (then emptied)."""
        out = []
        seq = self.applied_seq + 1
        while seq in self.inbox:
            out.append(self.inbox.pop(seq))
            seq += 1
        if not out:
            self.inbox.clear()  # a gap: the log in the database is the source
        return out


class MutationLog:
    """Appends writes to the log and drives the appliers of every copy."""

    def __init__(
        self,
        store: Store,
        backends: BackendPool,
        address_of: Callable[[str], str],
        timeout: float,
    ) -> None:
        self.store = store
        self.backends = backends
        self.address_of = address_of
        self.timeout = timeout
        self.appliers: dict[tuple[int, int, str], CopyApplier] = {}
        self.timelines: dict[tuple[int, int], ShardTimeline] = {}
        self._clock_asks: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak references)

    def start(self) -> None:
        """Start an applier for every copy the catalog holds (after a restart: replaying)."""
        for info in self.store.copies():
            if info.state == COPY_FILLING:
                continue  # the replica manager fills it again from a fresh snapshot
            self._ensure(
                info.collection_id,
                info.shard,
                info.instance,
                info.applied_seq,
                info.last_seq,
                info.reason if info.state == COPY_FAILED else "",
            )

    def _ensure(
        self, collection_id: int, shard: int, instance: str, applied: int, replay_upto: int, failed: str = ""
    ) -> CopyApplier:
        key = (collection_id, shard, instance)
        applier = self.appliers.get(key)
        if applier is None:
            applier = CopyApplier(collection_id, shard, instance, applied, replay_upto, failed)
            # A fresh context: the applier outlives the request that started it (its id, its trace).
            applier.task = asyncio.create_task(
                self._run(applier), name=f"apply-{collection_id}-{shard}-{instance}", context=contextvars.Context()
            )
            self.appliers[key] = applier
            applier.wake.set()
        return applier

    async def _recorded_applier(self, collection_id: int, shard: int, instance: str) -> CopyApplier:
        """The copy's applier; one started here resumes from the position and state the store recorded.

        Writes may arrive before `start()` has run (meta serves while it starts): an applier
        made from nothing would replay the log's entries as plain inserts and forget a failed copy.
        """
        applier = self.appliers.get((collection_id, shard, instance))
        if applier is not None:
            return applier
        info = await asyncio.to_thread(self.store.copy_info, collection_id, shard, instance)
        if info is None:
            raise MilvusError(
                errors.SERVICE_INTERNAL, f"mishards: shard {shard} has no copy on its primary {instance} in the catalog"
            )
        failed = info.reason if info.state == COPY_FAILED else ""
        # _ensure keeps an applier another write started while the store was read
        return self._ensure(collection_id, shard, instance, info.applied_seq, info.last_seq, failed)

    def ensure_copy(self, collection_id: int, shard: int, instance: str, applied: int, replay_upto: int) -> CopyApplier:
        """Start applying the log to a (re)filled copy from `applied`; inserts up to `replay_upto` become upserts."""
        self.remove_copy(collection_id, shard, instance)
        return self._ensure(collection_id, shard, instance, applied, replay_upto)

    def remove_copy(self, collection_id: int, shard: int, instance: str) -> None:
        applier = self.appliers.pop((collection_id, shard, instance), None)
        if applier is not None and applier.task:
            applier.task.cancel()

    def applier(self, collection_id: int, shard: int, instance: str) -> CopyApplier | None:
        return self.appliers.get((collection_id, shard, instance))

    def forget_collection(self, collection_id: int) -> None:
        for shard_key in [k for k in self.timelines if k[0] == collection_id]:
            del self.timelines[shard_key]
        for key in [k for k in self.appliers if k[0] == collection_id]:
            applier = self.appliers.pop(key)
            if applier.task:
                applier.task.cancel()

    async def stop(self) -> None:
        tasks = [a.task for a in self.appliers.values() if a.task] + list(self._clock_asks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.appliers.clear()

    # --- appending ----------------------------------------------------------------------------------

    async def append(
        self,
        collection_id: int,
        primaries: dict[int, str],
        entries: list[tuple[int, str, bytes]],
        oracle: TimestampOracle,
    ) -> tuple[int, dict[int, list[tuple[int, bytes]]]]:
        """Log the entries durably, then wait until each shard's primary applied them.

        The oracle gives the write its Mishards timestamp inside the append transaction.
        Returns the timestamp and shard -> [(seq, primary response)] in entry order. Raises
        MilvusError when a shard is failed (before appending), when a primary rejects its
        entry (the copy is then marked failed), or when a primary does not answer or does not
        apply in time (the entry stays in the log and is applied when the instance answers).
        """
        for shard in {e[0] for e in entries}:
            applier = await self._recorded_applier(collection_id, shard, primaries[shard])
            if applier.failed:
                raise MilvusError(
                    errors.SERVICE_UNAVAILABLE,
                    f"mishards: shard {shard} is failed and takes no writes until an operator repairs it: {applier.failed}",
                )
        while True:
            try:
                seqs, ts = await asyncio.to_thread(
                    self.store.append_mutations, collection_id, entries, oracle.get_reserved
                )
                break
            except NotFound:
                raise MilvusError(errors.COLLECTION_NOT_FOUND, "collection not found") from None
            except NoTimestamp:  # the oracle's window is persisted outside the append transaction
                await asyncio.to_thread(oracle.reserve_ahead)
        for (shard, _, _), seq in zip(entries, seqs):
            timeline = self.timelines.get((collection_id, shard))
            if timeline is None:  # every earlier entry of the shard is below this write's first
                timeline = self.timelines[(collection_id, shard)] = ShardTimeline(base=seq - 1)
            timeline.add(ts, seq)
        wanted: dict[int, list[int]] = {}
        for (shard, method, payload), seq in zip(entries, seqs):
            wanted.setdefault(shard, []).append(seq)
            entry = LogEntry(collection_id, shard, seq, ts, method, payload)
            for key, copy_applier in self.appliers.items():
                if key[0] == collection_id and key[1] == shard and len(copy_applier.inbox) < INBOX_LIMIT:
                    copy_applier.inbox[seq] = entry
        for shard in wanted:
            applier = self.appliers[(collection_id, shard, primaries[shard])]
            if applier.unavailable:  # membership says the primary serves: give it a fresh chance now
                applier.unavailable = ""
                applier.retry.set()
            for key, other in self.appliers.items():  # replicas follow the same log
                if key[0] == collection_id and key[1] == shard:
                    other.wake.set()

        async def wait(shard: int) -> list[tuple[int, bytes]]:
            instance = primaries[shard]
            applier = self.appliers[(collection_id, shard, instance)]
            last = wanted[shard][-1]
            what = f"mishards: shard {shard} of collection {physical_name(collection_id, shard)}"
            try:
                async with applier.progress:
                    await asyncio.wait_for(
                        applier.progress.wait_for(
                            lambda: applier.applied_seq >= last or bool(applier.failed or applier.unavailable)
                        ),
                        self.timeout,
                    )
            except TimeoutError:
                raise MilvusError(
                    errors.SERVICE_UNAVAILABLE,
                    f"{what}: its primary {instance} did not apply the write within {self.timeout:g}s; "
                    "it is logged and will be applied when the instance answers",
                ) from None
            if applier.applied_seq >= last:
                return [(seq, applier.responses.pop(seq, b"")) for seq in wanted[shard]]
            if applier.failed:
                raise MilvusError(errors.SERVICE_UNAVAILABLE, f"{what} rejected the write: {applier.failed}")
            raise MilvusError(
                errors.SERVICE_UNAVAILABLE,
                f"{what} is unavailable (its primary {instance} is not applying writes: {applier.unavailable}); "
                "the write is logged and will be applied when the instance answers",
            )

        results = await asyncio.gather(*(wait(shard) for shard in wanted))
        return ts, dict(zip(wanted, results))

    async def read_positions(self, collection_id: int, shards: list[int], ts: int) -> list[ReadPosition]:
        """Per shard, the position a read at Mishards timestamp `ts` must see, and every applying copy's position.

        Every write acknowledged with a timestamp up to `ts` is at or below the position.
        """
        missing = [k for k in shards if (collection_id, k) not in self.timelines]
        if missing:  # nothing appended since meta started: everything logged so far
            ends = await asyncio.to_thread(self.store.log_ends)
            for k in missing:
                end = ends.get((collection_id, k), 0)
                timeline = self.timelines.setdefault((collection_id, k), ShardTimeline(base=end))
                timeline.base = max(timeline.base, end)
        out = []
        for k in shards:
            copies = []
            for key, a in self.appliers.items():
                if key[0] == collection_id and key[1] == k and not a.failed:
                    copies.append((key[2], a.applied_seq, a.backend_ts))
                    if not a.backend_ts:
                        self._learn_clock(a)
            out.append(ReadPosition(k, self.timelines[(collection_id, k)].position_at(ts), copies))
        return out

    def _learn_clock(self, a: CopyApplier) -> None:
        """Ask the instance of a copy whose clock is not known for a timestamp, in the background, once per position.

        A copy filled from a snapshot, or one that has applied nothing since meta started, has
        no timestamp of its applied position: reads go to it Strong, which waits for Milvus's
        next time tick. A timestamp the instance allocates now is later than every entry it has
        acknowledged, so a read at it shows the applied position; the next reads use it.
        """
        if a.clock_asked == a.applied_seq:
            return
        a.clock_asked = a.applied_seq
        task = asyncio.create_task(self._ask_clock(a, a.applied_seq), context=contextvars.Context())
        self._clock_asks.add(task)
        task.add_done_callback(self._clock_asks.discard)

    async def _ask_clock(self, a: CopyApplier, seq: int) -> None:
        try:
            stub = self.backends.stub(self.address_of(a.instance))
            answer = await stub.AllocTimestamp(
                milvus_pb2.AllocTimestampRequest(), timeout=self.timeout, metadata=self.backends.metadata()
            )
        except (MilvusError, grpc.aio.AioRpcError) as exc:  # not answering, or no AllocTimestamp (milvus-lite)
            log.info("copy %s of shard %d/%d gave no timestamp: %s", a.instance, a.collection_id, a.shard, exc)
            return
        if errors.is_error(answer.status) or not answer.timestamp:
            return
        if a.applied_seq == seq and not a.backend_ts:  # an entry applied meanwhile brought its own
            a.backend_ts = int(answer.timestamp)

    # --- applying -----------------------------------------------------------------------------------

    async def _run(self, a: CopyApplier) -> None:
        backoff = BACKOFF_FIRST
        while True:
            if a.failed:
                await a.wake.wait()
                a.wake.clear()
                continue
            entries = a.take_inbox() or await asyncio.to_thread(
                self.store.entries_after, a.collection_id, a.shard, a.applied_seq
            )
            if not entries:
                await a.wake.wait()
                a.wake.clear()
                continue
            applied_upto = 0
            for entry in entries:
                try:
                    response, backend_ts = await self._apply(a, entry)
                except _Transient as exc:
                    # The backend may have applied it before failing: it is resent as an upsert.
                    a.replay_upto = max(a.replay_upto, entry.seq)
                    a.refusals += exc.refused
                    if a.refusals < REFUSAL_LIMIT:
                        await self._not_answering(a, str(exc))
                        await self._backoff(a, backoff)
                        backoff = min(backoff * 2, BACKOFF_MAX)
                        break
                    rejection = f"{exc} (refused {a.refusals} times running)"
                except MilvusError as exc:
                    rejection = exc.reason
                else:
                    backoff = BACKOFF_FIRST
                    applied_upto = entry.seq
                    await self._applied(a, entry.seq, response, backend_ts)
                    continue
                await self._fail(a, f"entry {entry.seq} ({entry.method}) rejected by {a.instance}: {rejection}")
                break
            if applied_upto:
                # The recorded position may trail what was applied: replay after a crash is idempotent.
                await asyncio.to_thread(self.store.mark_applied, a.collection_id, a.shard, a.instance, applied_upto)

    async def _applied(self, a: CopyApplier, seq: int, response: bytes, backend_ts: int = 0) -> None:
        if a.failing_since:
            log.info(
                "copy %s of shard %d/%d answers again (after %.1fs)",
                a.instance,
                a.collection_id,
                a.shard,
                time.monotonic() - a.failing_since,
            )
        a.failing_since = 0.0
        a.refusals = 0
        # Waiters hear at once: the entry is in the log and the copy applied it.
        async with a.progress:
            a.unavailable = ""
            a.applied_seq = seq
            a.backend_ts = backend_ts
            a.responses[seq] = response
            # keep only recent responses: waiters read theirs right away
            for old in [s for s in a.responses if s < seq - 4096]:
                del a.responses[old]
            a.progress.notify_all()

    async def _not_answering(self, a: CopyApplier, reason: str) -> None:
        """Waiting writes fail fast; the entry stays next and is retried."""
        if not a.failing_since:  # once per outage, not once per retry
            a.failing_since = time.monotonic()
            log.warning("copy %s of shard %d/%d: %s; retrying", a.instance, a.collection_id, a.shard, reason)
        async with a.progress:
            a.unavailable = reason
            a.progress.notify_all()

    async def _fail(self, a: CopyApplier, reason: str) -> None:
        """The copy takes nothing more until an operator repairs it (`mishards repair`)."""
        log.error("copy of shard %d/%d failed: %s", a.collection_id, a.shard, reason)
        await asyncio.to_thread(self.store.set_copy_state, a.collection_id, a.shard, a.instance, COPY_FAILED, reason)
        a.refusals = 0
        async with a.progress:
            a.failed = reason
            a.progress.notify_all()

    @staticmethod
    async def _backoff(a: CopyApplier, seconds: float) -> None:
        """Wait before a retry; a new write to the copy cuts the wait short after the first step."""
        a.retry.clear()
        await asyncio.sleep(min(seconds, BACKOFF_FIRST))
        try:
            await asyncio.wait_for(a.retry.wait(), max(seconds - BACKOFF_FIRST, 0.0))
        except TimeoutError:
            pass

    async def _apply(self, a: CopyApplier, entry: LogEntry) -> tuple[bytes, int]:
        """Apply one entry to the copy; its MutationResult (serialized) and the backend's timestamp of it."""
        request: Any = REQUESTS[entry.method].FromString(entry.payload)
        method = entry.method
        if method == "Insert" and entry.seq <= a.replay_upto:
            request, method = upsert_from_insert(request), "Upsert"  # may have been applied before a crash
        try:
            stub = self.backends.stub(self.address_of(a.instance))
            response = await getattr(stub, method)(request, timeout=self.timeout, metadata=self.backends.metadata())
        except MilvusError as exc:  # instance not in the membership (yet)
            raise _Transient(exc.reason) from exc
        except grpc.aio.AioRpcError as exc:
            if exc.code() in TRANSIENT:
                raise _Transient(f"{exc.code().name}: {exc.details()}") from exc
            raise MilvusError(errors.SERVICE_INTERNAL, str(exc.details())) from exc
        st: common_pb2.Status = response.status
        if errors.is_error(st):
            if st.code in RETRIABLE_CODES:
                # Retried, but not for ever: an answer with a "later" code may be a rejection.
                raise _Transient(f"code {st.code}: {st.reason}", refused=True)
            raise MilvusError.from_status(st)
        return bytes(response.SerializeToString()), int(response.timestamp)

    # --- operators ----------------------------------------------------------------------------------

    async def repair(self, collection_id: int, shard: int, instance: str, action: str) -> str:
        applier = self.appliers.get((collection_id, shard, instance))
        if applier is None or not applier.failed:
            return "the copy is not failed"
        if action == "skip":
            entries = await asyncio.to_thread(self.store.entries_after, collection_id, shard, applier.applied_seq, 1)
            if entries:
                await asyncio.to_thread(self.store.mark_applied, collection_id, shard, instance, entries[0].seq)
                applier.applied_seq, applier.backend_ts = entries[0].seq, 0
        elif action != "retry":
            raise MilvusError(errors.PARAMETER_INVALID, f"unknown repair action {action!r} (retry or skip)")
        await asyncio.to_thread(self.store.set_copy_state, collection_id, shard, instance, COPY_READY, "")
        applier.failed = ""
        applier.wake.set()
        return f"copy {instance} of shard {shard} is ready again ({action})"


class _Transient(Exception):
    """The instance did not answer (`refused` False) or answered "retry later" (`refused` True)."""

    def __init__(self, reason: str, refused: bool = False) -> None:
        super().__init__(reason)
        self.refused = refused
