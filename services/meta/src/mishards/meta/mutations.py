"""The mutation log: appends (group-committed), and the appliers that bring every copy along it.

A write is acknowledged once the log holds it durably (WRITE_ACK=logged, as Milvus
acknowledges once its message queue holds a write), or once each shard's primary applied
it (WRITE_ACK=applied). Every copy applies its shard's entries in log order; a replica only
what its primary has applied or aborted. An acknowledged entry is never dropped: a primary
that refuses it is retried with backoff, and the entry is shown as stuck. Only an entry
whose client still waits (applied mode) is aborted on a rejection, recorded in the log
before any copy skips it. Entries that were in the log when meta started may have been
applied before a crash; they are replayed with inserts turned into upserts.

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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from mishards.common import errors, metrics
from mishards.common.backends import BackendPool
from mishards.common.errors import MilvusError
from mishards.meta import batches
from mishards.meta.group_commit import Append, CollectionGone, Entries, GroupCommit
from mishards.meta.store import (
    COPY_FAILED,
    COPY_FILLING,
    ROLE_FENCED,
    ROLE_RETIRED,
    LogEntry,
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
# Milvus codes that mean "later" (not ready, unavailable, rate and memory/disk limits): retried.
RETRIABLE_CODES = {1, 2, 4, 8, 9, 12}
TIMELINE_LIMIT = 4096  # (timestamp, position) pairs kept per shard; older ones fold into the base
BACKOFF_FIRST = 0.2  # seconds before the first retry; doubles up to BACKOFF_MAX
BACKOFF_MAX = 5.0
STUCK_BACKOFF_MAX = 30.0  # a refused entry is tried again at most this far apart
MARK_INTERVAL = 0.2  # seconds between records of a copy's applied position (replay is idempotent)
REJECTIONS_KEPT = 4096  # aborted entries' statuses kept for their waiting clients


def upsert_from_insert(request: milvus_pb2.InsertRequest) -> milvus_pb2.UpsertRequest:
    out = milvus_pb2.UpsertRequest(
        collection_name=request.collection_name, partition_name=request.partition_name, num_rows=request.num_rows
    )
    out.fields_data.extend(request.fields_data)
    return out


def decode_entry(method: str, payload: bytes) -> Any:
    """The Milvus request an entry holds; MilvusError when it does not decode."""
    kind = REQUESTS.get(method)
    if kind is None:
        raise MilvusError(
            errors.PARAMETER_INVALID, f"mishards: a log entry's method must be Insert, Upsert or Delete, not {method!r}"
        )
    try:
        return kind.FromString(payload)
    except (DecodeError, ValueError) as exc:
        raise MilvusError(
            errors.PARAMETER_INVALID, f"mishards: a log entry's {method} request does not decode: {exc}"
        ) from None


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
class ShardLog:
    """Meta's memory of one shard's log: its timeline, the backlog its primary has not applied, aborts."""

    collection_id: int
    shard: int
    timeline: ShardTimeline | None = None
    pending: deque[tuple[int, int]] = field(default_factory=deque)  # (position, bytes) above the primary
    backlog: int = 0  # bytes in `pending`
    counted: bool = False  # `pending` holds every entry above the primary's position
    primary_seq: int = 0  # the position the primary has applied (replicas never pass it)
    aborted: set[int] = field(default_factory=set)

    def add_pending(self, seq: int, size: int) -> None:
        if self.counted and seq > self.primary_seq:
            self.pending.append((seq, size))
            self.backlog += size

    def primary_applied(self, seq: int) -> None:
        self.primary_seq = max(self.primary_seq, seq)
        while self.pending and self.pending[0][0] <= seq:
            self.backlog -= self.pending.popleft()[1]


@dataclass
class ReadPosition:
    """Where a read at a timestamp must be on one shard, and where the shard's copies are."""

    shard: int
    seq: int
    # (instance, applied position, its backend timestamp or 0, backend timestamp at `seq` or 0)
    copies: list[tuple[str, int, int, int]]


@dataclass
class CopyApplier:
    """Applies one shard's log to one copy, in order, for as long as the copy exists."""

    collection_id: int
    shard: int
    instance: str
    applied_seq: int
    replay_upto: int  # entries up to here may have reached the copy already: inserts go as upserts
    role: str = "primary"
    backend_ts: int = 0  # the instance's own timestamp of the applied_seq entry (0: not known)
    clock_asked: int = -1  # the applied position the instance was last asked for a timestamp at
    unavailable: str = ""  # set while the copy's instance does not answer; applied-mode waiters fail fast
    stuck: str = ""  # why the next entry does not apply (the backend refuses it); retried with backoff
    stuck_seq: int = 0
    single_until: int = 0  # entries up to here go one at a time (a merged call was refused)
    skip_seq: int = 0  # an operator asked to abort this entry (`mishards repair --action skip`)
    inherited_upto: int = 0  # a promoted primary: entries up to here the lost primary had applied
    alert: str = ""  # an entry aborted after a promotion (shown by `mishards status`)
    held: bool = False  # a primary stopped between two entries for a planned switch
    busy: bool = False  # applying a run now
    failing_since: float = 0.0  # monotonic time the copy stopped applying (0 while it applies)
    marked_seq: int = 0  # the position last recorded in the store
    marked_at: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    retry: asyncio.Event = field(default_factory=asyncio.Event)  # cuts a backoff short
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    rejections: dict[int, common_pb2.Status] = field(default_factory=dict)  # aborted seq -> the primary's status
    clocks: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=TIMELINE_LIMIT))  # (seq, backend ts)
    task: asyncio.Task[None] | None = None
    inbox: dict[int, LogEntry] = field(default_factory=dict)  # just appended: no need to read them back

    def take_inbox(self, upto: int | None) -> list[LogEntry]:
        """The appended entries that follow the applied position without a gap (then emptied)."""
        out = []
        seq = self.applied_seq + 1
        while seq in self.inbox and (upto is None or seq <= upto):
            out.append(self.inbox.pop(seq))
            seq += 1
        if not out and (upto is None or seq <= upto):
            self.inbox.clear()  # a gap: the log in the database is the source
        return out

    def clock_at(self, seq: int) -> int:
        """The backend's timestamp of the first applied entry at or after `seq` (0: not applied, or not known)."""
        at = bisect.bisect_left(self.clocks, (seq, 0))
        return self.clocks[at][1] if at < len(self.clocks) else 0


class _Retry(Exception):
    """The entry was not applied now: back off (to `limit` seconds) and try again."""

    def __init__(self, reason: str, limit: float | None = None) -> None:
        super().__init__(reason)
        self.limit = BACKOFF_MAX if limit is None else limit


class _Rejected(Exception):
    """The backend refused the entry (a status that does not mean "later")."""

    def __init__(self, status: common_pb2.Status) -> None:
        super().__init__(status.reason)
        self.status = status


# (collection id, shard, instance, reason): a replica that cannot follow its primary, to refill.
ReplicaLost = Callable[[int, int, str, str], None]


class MutationLog:
    """Appends writes to the log and drives the appliers of every copy."""

    def __init__(
        self,
        store: Store,
        backends: BackendPool,
        address_of: Callable[[str], str],
        timeout: float,
        oracle: TimestampOracle,
        backlog_limit: int = 256 << 20,
        replica_down_grace: float = 600.0,
        on_replica_lost: ReplicaLost | None = None,
        paused_instance: str = "",
    ) -> None:
        self.store = store
        self.backends = backends
        self.address_of = address_of
        self.timeout = timeout
        self.backlog_limit = backlog_limit
        self.replica_down_grace = replica_down_grace
        self.appliers: dict[tuple[int, int, str], CopyApplier] = {}
        self.shards: dict[tuple[int, int], ShardLog] = {}
        self.commits = GroupCommit(store, oracle, self._admit, self._committed)
        self.on_replica_lost = on_replica_lost
        self.paused_instance = paused_instance  # MISHARDS_TEST_PAUSE_APPLY: copies on it stop applying (tests only)
        self._clock_asks: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak references)

    def start(self) -> None:
        """Start an applier for every copy the catalog holds (after a restart: replaying)."""
        for info in self.store.copies():
            if info.state == COPY_FILLING or info.role in (ROLE_FENCED, ROLE_RETIRED):
                continue  # filled again from a fresh snapshot, or never applying again
            if info.role == "primary":
                self._shard(info.collection_id, info.shard).primary_applied(info.applied_seq)
            self._ensure(info.collection_id, info.shard, info.instance, info.applied_seq, info.last_seq, info.role)

    def _shard(self, collection_id: int, shard: int) -> ShardLog:
        state = self.shards.get((collection_id, shard))
        if state is None:
            state = self.shards[(collection_id, shard)] = ShardLog(collection_id, shard)
        return state

    def _ensure(
        self, collection_id: int, shard: int, instance: str, applied: int, replay_upto: int, role: str
    ) -> CopyApplier:
        key = (collection_id, shard, instance)
        applier = self.appliers.get(key)
        if applier is None:
            applier = CopyApplier(collection_id, shard, instance, applied, replay_upto, role)
            applier.marked_seq = applied
            # A fresh context: the applier outlives the request that started it (its id, its trace).
            applier.task = asyncio.create_task(
                self._run(applier), name=f"apply-{collection_id}-{shard}-{instance}", context=contextvars.Context()
            )
            self.appliers[key] = applier
            applier.wake.set()
        return applier

    async def _recorded_applier(self, collection_id: int, shard: int, instance: str) -> CopyApplier:
        """The copy's applier; one started here resumes from the position the store recorded.

        Writes may arrive before `start()` has run (meta serves while it starts): an applier
        made from nothing would replay the log's entries as plain inserts.
        """
        applier = self.appliers.get((collection_id, shard, instance))
        if applier is not None:
            return applier
        info = await asyncio.to_thread(self.store.copy_info, collection_id, shard, instance)
        if info is None or info.role in (ROLE_FENCED, ROLE_RETIRED):  # a primary switched meanwhile
            raise MilvusError(
                errors.SERVICE_UNAVAILABLE,
                f"mishards: shard {shard} has no copy on its primary {instance} in the catalog",
            )
        self._shard(collection_id, shard).primary_applied(info.applied_seq)
        # _ensure keeps an applier another write started while the store was read
        return self._ensure(collection_id, shard, instance, info.applied_seq, info.last_seq, info.role)

    def ensure_copy(
        self, collection_id: int, shard: int, instance: str, applied: int, replay_upto: int, role: str = "replica"
    ) -> CopyApplier:
        """Start applying the log to a (re)filled copy from `applied`; inserts up to `replay_upto` become upserts.

        A replica, or a shard move's incoming copy: both follow the primary.
        """
        self.remove_copy(collection_id, shard, instance)
        return self._ensure(collection_id, shard, instance, applied, replay_upto, role)

    async def hold_primary(self, collection_id: int, shard: int) -> int:
        """Stop the shard's primary between two entries (for a planned switch); the position it stopped at."""
        primary = next((a for a in self.copies_of(collection_id, shard) if a.role == "primary"), None)
        if primary is None:
            raise MilvusError(errors.SERVICE_UNAVAILABLE, f"mishards: shard {shard} has no primary applying its log")
        primary.held = True
        async with primary.progress:
            await primary.progress.wait_for(lambda: not primary.busy)
        return primary.applied_seq

    def release_primary(self, collection_id: int, shard: int) -> None:
        """Let a held primary apply again (a planned switch that did not happen)."""
        for a in self.copies_of(collection_id, shard):
            if a.role == "primary" and a.held:
                a.held = False
                a.wake.set()

    async def switch_primary(self, collection_id: int, shard: int, new: str, lost: bool) -> None:
        """The copy on `new` becomes the shard's primary in the appliers (the store records it first).

        `lost`: the old primary is gone (promotion); entries it had applied that the new primary
        refuses are aborted, with an alert, since no copy can have them any more. Otherwise the
        old primary was held and the new one has reached its position (a planned switch).
        """
        state = self._shard(collection_id, shard)
        old = next((a for a in self.copies_of(collection_id, shard) if a.role == "primary"), None)
        inherited = old.applied_seq if old is not None else state.primary_seq
        if old is not None:
            self.remove_copy(collection_id, shard, old.instance)
        applier = self.appliers.get((collection_id, shard, new))
        if applier is None:
            info = await asyncio.to_thread(self.store.copy_info, collection_id, shard, new)
            if info is None:
                raise MilvusError(errors.SERVICE_INTERNAL, f"mishards: shard {shard} has no copy on {new}")
            applier = self._ensure(collection_id, shard, new, info.applied_seq, info.last_seq, "primary")
        applier.role = "primary"
        applier.inherited_upto = inherited if lost else 0
        state.primary_seq = applier.applied_seq
        state.pending.clear()
        state.backlog, state.counted = 0, False  # counted again from the new primary's position
        for a in self.copies_of(collection_id, shard):
            a.wake.set()

    def remove_copy(self, collection_id: int, shard: int, instance: str) -> None:
        applier = self.appliers.pop((collection_id, shard, instance), None)
        if applier is not None and applier.task:
            applier.task.cancel()

    def applier(self, collection_id: int, shard: int, instance: str) -> CopyApplier | None:
        return self.appliers.get((collection_id, shard, instance))

    def primary_position(self, collection_id: int, shard: int) -> int:
        """The position the shard's primary has applied (followers never pass it)."""
        return self._shard(collection_id, shard).primary_seq

    def caught_up(self, collection_id: int, shard: int, instance: str, slack: int = 16) -> bool:
        """The copy trails its primary by at most `slack` entries (it follows it, so never leads)."""
        a = self.appliers.get((collection_id, shard, instance))
        return a is not None and a.applied_seq >= self.primary_position(collection_id, shard) - slack

    def copies_of(self, collection_id: int, shard: int) -> list[CopyApplier]:
        return [a for (cid, k, _), a in self.appliers.items() if cid == collection_id and k == shard]

    def forget_collection(self, collection_id: int) -> None:
        for shard_key in [k for k in self.shards if k[0] == collection_id]:
            del self.shards[shard_key]
        for key in [k for k in self.appliers if k[0] == collection_id]:
            applier = self.appliers.pop(key)
            if applier.task:
                applier.task.cancel()

    async def stop(self) -> None:
        await self.commits.stop()
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
        entries: Entries,
        wait_applied: bool = False,
        decoded: Sequence[Any] = (),
    ) -> tuple[int, dict[int, list[int]]]:
        """Log the entries durably as one write; with `wait_applied`, also wait for each shard's primary.

        Returns the write's Mishards timestamp and shard -> its entries' positions. Raises
        MilvusError: RATE_LIMIT when a shard's backlog is full (nothing logged), not found when
        the collection is gone, and in applied mode the primary's status when it rejected an
        entry (aborted) or SERVICE_UNAVAILABLE when it does not apply in time (the write stays
        logged and is applied when the instance answers).
        """
        for shard in {e[0] for e in entries}:
            await self._recorded_applier(collection_id, shard, primaries[shard])
        try:
            seqs, ts = await self.commits.append(collection_id, entries, wait_applied, decoded)
        except CollectionGone:
            raise MilvusError(errors.COLLECTION_NOT_FOUND, "collection not found") from None
        wanted: dict[int, list[int]] = {}
        for (shard, _, _), seq in zip(entries, seqs):
            wanted.setdefault(shard, []).append(seq)
        if wait_applied:
            await asyncio.gather(
                *(self._wait_applied(collection_id, shard, primaries[shard], s) for shard, s in wanted.items())
            )
        return ts, wanted

    async def _admit(self, batch: list[Append]) -> None:
        """Before a commit: count each shard's backlog once, and refuse writes to a full one."""
        for item in batch:
            for shard in {e[0] for e in item.entries}:
                state = self._shard(item.collection_id, shard)
                if not state.counted:
                    held = await asyncio.to_thread(self.store.entry_sizes, item.collection_id, shard, state.primary_seq)
                    state.counted = True
                    for seq, size in held:
                        state.add_pending(seq, size)
        admitted: dict[tuple[int, int], int] = {}  # bytes this batch adds per shard so far
        for item in batch:
            sizes: dict[int, int] = {}
            for shard, _, payload in item.entries:
                sizes[shard] = sizes.get(shard, 0) + len(payload)
            full = [
                (shard, backlog)
                for shard, size in sizes.items()
                if (
                    backlog := self._shard(item.collection_id, shard).backlog
                    + admitted.get((item.collection_id, shard), 0)
                )
                and backlog + size > self.backlog_limit
            ]
            if full:
                item.done.set_exception(self._backlog_full(item.collection_id, *full[0]))
                continue
            for shard, size in sizes.items():
                admitted[(item.collection_id, shard)] = admitted.get((item.collection_id, shard), 0) + size

    def _backlog_full(self, collection_id: int, shard: int, backlog: int) -> MilvusError:
        return MilvusError(
            errors.RATE_LIMIT,
            f"mishards: shard {shard} of collection {physical_name(collection_id, shard)} holds {backlog} bytes of "
            f"writes its primary has not applied (WRITE_BACKLOG_LIMIT {self.backlog_limit}): "
            f"rate limit exceeded[rate={self.backlog_limit}]",
        )

    def _committed(self, item: Append, seqs: list[int], ts: int) -> None:
        """After a commit, in the committer's task: timelines, backlogs, inboxes, wake the appliers."""
        collection_id = item.collection_id
        shards: set[int] = set()
        decoded = item.decoded or [None] * len(item.entries)
        for (shard, method, payload), seq, request in zip(item.entries, seqs, decoded):
            state = self._shard(collection_id, shard)
            if state.timeline is None:  # every earlier entry of the shard is below this write's first
                state.timeline = ShardTimeline(base=seq - 1)
            state.timeline.add(ts, seq)
            state.add_pending(seq, len(payload))
            entry = LogEntry(collection_id, shard, seq, ts, method, payload, item.abortable, request=request)
            for a in self.copies_of(collection_id, shard):
                if len(a.inbox) < INBOX_LIMIT:
                    a.inbox[seq] = entry
            shards.add(shard)
        for shard in shards:
            for a in self.copies_of(collection_id, shard):
                if a.role == "primary" and a.unavailable:  # give it a fresh chance now
                    a.unavailable = ""
                    a.retry.set()
                a.wake.set()

    async def _wait_applied(self, collection_id: int, shard: int, instance: str, seqs: list[int]) -> None:
        applier = self.appliers[(collection_id, shard, instance)]
        last = seqs[-1]
        what = f"mishards: shard {shard} of collection {physical_name(collection_id, shard)}"
        try:
            async with applier.progress:
                await asyncio.wait_for(
                    applier.progress.wait_for(
                        lambda: applier.applied_seq >= last or bool(applier.unavailable or applier.stuck)
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
            for seq in seqs:
                rejected = applier.rejections.pop(seq, None)
                if rejected is not None:
                    raise MilvusError.from_status(rejected)
            return
        if applier.stuck:
            raise MilvusError(
                errors.SERVICE_UNAVAILABLE,
                f"{what} is stuck at entry {applier.stuck_seq}, which its primary {instance} refuses: "
                f"{applier.stuck}; the write is logged and will be applied after it",
            )
        raise MilvusError(
            errors.SERVICE_UNAVAILABLE,
            f"{what} is unavailable (its primary {instance} is not applying writes: {applier.unavailable}); "
            "the write is logged and will be applied when the instance answers",
        )

    # --- reading positions --------------------------------------------------------------------------

    async def read_positions(
        self, collection_id: int, shards: list[int], ts: int, wait: float = 0.0
    ) -> list[ReadPosition]:
        """Per shard, the position a read at Mishards timestamp `ts` must see, and every applying copy's position.

        Every write acknowledged with a timestamp up to `ts` is at or below the position. With
        `wait`, first wait up to that many seconds until each shard's primary has reached it
        (replicas never pass their primary).
        """
        missing = [k for k in shards if self._shard(collection_id, k).timeline is None]
        if missing:  # nothing appended since meta started: everything logged so far
            ends = await asyncio.to_thread(self.store.log_ends)
            for k in missing:
                state = self._shard(collection_id, k)
                end = ends.get((collection_id, k), 0)
                if state.timeline is None:
                    state.timeline = ShardTimeline(base=end)
                state.timeline.base = max(state.timeline.base, end)
        for k in shards:  # a shard nothing was written to since meta started has no applier yet
            if not any(a.role == "primary" for a in self.copies_of(collection_id, k)):
                primary = await asyncio.to_thread(self.store.primary_of, collection_id, k)
                if primary is not None:
                    await self._recorded_applier(collection_id, k, primary)
        wanted = {k: self._shard(collection_id, k).timeline.position_at(ts) for k in shards}  # type: ignore[union-attr]
        if wait > 0:
            await self._wait_primaries(collection_id, wanted, wait)
        out = []
        for k in shards:
            copies = []
            for a in self.copies_of(collection_id, k):
                copies.append((a.instance, a.applied_seq, a.backend_ts, a.clock_at(wanted[k])))
                if not a.backend_ts:
                    self._learn_clock(a)
            out.append(ReadPosition(k, wanted[k], copies))
        return out

    async def _wait_primaries(self, collection_id: int, wanted: dict[int, int], wait: float) -> None:
        """Wait until each shard's primary has applied its wanted position, at most `wait` seconds.

        The primary is looked up again every half second: a promotion may replace it meanwhile.
        """
        deadline = time.monotonic() + wait

        async def one(shard: int, seq: int) -> None:
            while (left := deadline - time.monotonic()) > 0:
                primary = next((a for a in self.copies_of(collection_id, shard) if a.role == "primary"), None)
                if primary is not None and primary.applied_seq >= seq:
                    return
                if primary is None:
                    await asyncio.sleep(min(0.2, left))
                    continue
                try:
                    async with primary.progress:
                        await asyncio.wait_for(
                            primary.progress.wait_for(lambda: primary.applied_seq >= seq), min(0.5, left)
                        )
                except TimeoutError:
                    pass

        await asyncio.gather(*(one(k, seq) for k, seq in wanted.items()))

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
            a.clocks.append((seq, a.backend_ts))

    # --- applying -----------------------------------------------------------------------------------

    async def _run(self, a: CopyApplier) -> None:
        """Apply the copy's log for ever; nothing but cancellation ends it."""
        backoff = BACKOFF_FIRST
        while True:
            try:
                entries = await self._next_entries(a)
                if entries is None:
                    continue
                if a.held or a.instance == self.paused_instance:  # fetched entries are read again later
                    await a.wake.wait()
                    continue
                a.busy = True
                try:
                    await self._apply_run(a, entries)
                finally:
                    async with a.progress:
                        a.busy = False
                        a.progress.notify_all()
                backoff = BACKOFF_FIRST
            except asyncio.CancelledError:
                raise
            except _Retry as again:
                await self._backoff(a, min(backoff, again.limit))
                backoff = min(backoff * 2, again.limit)
            except _ReplicaGone:
                return
            except Exception as exc:  # a bug of ours must not stop the shard: log, then as a refusal
                log.exception("applier of copy %s of shard %d/%d", a.instance, a.collection_id, a.shard)
                if a.role != "primary":
                    self._lose_replica(a, f"applying failed: {exc}")
                    return
                await self._backoff(a, STUCK_BACKOFF_MAX)

    async def _next_entries(self, a: CopyApplier) -> list[LogEntry] | None:
        """The entries to apply next (a replica: only up to its primary's position); None after an idle wait."""
        a.wake.clear()  # before looking: a write that lands meanwhile wakes the wait below
        state = self._shard(a.collection_id, a.shard)
        upto = None if a.role == "primary" else state.primary_seq
        entries = a.take_inbox(upto)
        if not entries and (upto is None or a.applied_seq < upto):
            entries = await asyncio.to_thread(
                self.store.entries_after, a.collection_id, a.shard, a.applied_seq, 64, upto
            )
        behind = upto is not None and a.applied_seq < upto
        if (entries and entries[0].seq != a.applied_seq + 1) or (not entries and behind):
            if a.role != "primary":  # truncated past it while it was away: only a snapshot brings it back
                self._lose_replica(a, f"the log no longer holds entry {a.applied_seq + 1}")
                raise _ReplicaGone
            a.stuck, a.stuck_seq = f"the log holds no entry {a.applied_seq + 1}", a.applied_seq + 1
            raise _Retry(a.stuck, STUCK_BACKOFF_MAX)
        if entries:
            return entries
        if a.marked_seq < a.applied_seq:  # record the position once the copy has been idle a moment
            try:
                await asyncio.wait_for(a.wake.wait(), MARK_INTERVAL)
                return None
            except TimeoutError:
                await self._mark(a)
        await a.wake.wait()
        return None

    async def _apply_run(self, a: CopyApplier, entries: list[LogEntry]) -> None:
        """Apply the entries in order, consecutive inserts merged into one call."""
        state = self._shard(a.collection_id, a.shard)
        i = 0
        while i < len(entries):
            entry = entries[i]
            if entry.seq == a.skip_seq:  # an operator's `skip`, done here so no call is in flight
                await self.abort(a, entry.seq, errors.status(errors.SERVICE_UNAVAILABLE, "skipped by an operator"))
                a.rejections.pop(entry.seq, None)
            if entry.aborted or entry.seq in state.aborted:  # the primary refused it: every copy skips it
                await self._applied(a, entry.seq, None)
                i += 1
                continue
            count = 1 if entry.seq <= a.single_until else batches.mergeable_run(entries[i:])
            run = entries[i : i + count]
            try:
                backend_ts = await self._apply(a, run)
            except _Rejected as rejected:
                if len(run) > 1:  # find the entry it was: one at a time until past this run
                    a.single_until = run[-1].seq
                    continue
                await self._refused(a, entry, rejected.status)
                i += 1
                continue
            if backend_ts is None:  # the run cannot go as one call
                a.single_until = run[-1].seq
                continue
            await self._applied(a, run[-1].seq, backend_ts)
            i += count
        await self._mark(a, due=True)

    async def _apply(self, a: CopyApplier, run: list[LogEntry]) -> int | None:
        """One backend call for the run: the backend's timestamp of it; None when the run cannot merge.

        Raises _Retry (no answer, or "later") or _Rejected (the backend refused it).
        """
        try:
            requests = [e.request if e.request is not None else decode_entry(e.method, e.payload) for e in run]
        except MilvusError as exc:
            raise _Rejected(exc.to_status()) from None
        method = run[0].method
        request: Any = requests[0] if len(requests) == 1 else batches.merge(method, requests)
        if request is None:
            return None
        if method == "Insert" and run[0].seq <= a.replay_upto:
            request, method = upsert_from_insert(request), "Upsert"  # may have been applied before a crash
        try:
            stub = self.backends.stub(self.address_of(a.instance))
            response = await getattr(stub, method)(request, timeout=self.timeout, metadata=self.backends.metadata())
        except MilvusError as exc:  # instance not in the membership (yet)
            await self._not_answering(a, run, exc.reason)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in TRANSIENT:
                await self._not_answering(a, run, f"{exc.code().name}: {exc.details()}")
            raise _Rejected(errors.status(errors.PARAMETER_INVALID, f"{exc.code().name}: {exc.details()}")) from None
        st: common_pb2.Status = response.status
        if errors.is_error(st):
            if st.code in RETRIABLE_CODES or (not st.code and st.error_code == common_pb2.RateLimit):
                await self._not_answering(a, run, f"code {st.code}: {st.reason}")
            raise _Rejected(st)
        return int(response.timestamp)

    async def _not_answering(self, a: CopyApplier, run: list[LogEntry], reason: str) -> NoReturn:
        """The instance did not answer or said "later": applied-mode waiters fail fast; retried."""
        # The backend may have applied it before failing: it is resent as an upsert.
        a.replay_upto = max(a.replay_upto, run[-1].seq)
        if not a.failing_since:  # once per outage, not once per retry
            a.failing_since = time.monotonic()
            log.warning("copy %s of shard %d/%d: %s; retrying", a.instance, a.collection_id, a.shard, reason)
        async with a.progress:
            a.unavailable = reason
            a.progress.notify_all()
        raise _Retry(reason)

    async def _refused(self, a: CopyApplier, entry: LogEntry, st: common_pb2.Status) -> None:
        """A rejection: abort the entry if its client waits, lose a replica, else retry it as stuck."""
        reason = f"entry {entry.seq} ({entry.method}) rejected by {a.instance}: code {st.code}: {st.reason}"
        if a.role != "primary":
            self._lose_replica(a, reason)
            raise _ReplicaGone
        if entry.seq <= a.inherited_upto:
            # The lost primary applied it and no copy can refill it: the one case an acknowledged entry goes.
            log.error(
                "ALERT: copy %s of shard %d/%d, promoted, refuses %s, which the lost primary had applied; aborted",
                a.instance, a.collection_id, a.shard, reason,
            )  # fmt: skip
            metrics.PROMOTION_ABORTS.labels(str(a.collection_id), str(a.shard)).inc()
            a.alert = f"aborted after promotion: {reason}"
            await self.abort(a, entry.seq, st)
            return
        if entry.abortable:
            log.warning("copy %s of shard %d/%d: %s; aborted", a.instance, a.collection_id, a.shard, reason)
            await self.abort(a, entry.seq, st)
            return
        if a.stuck_seq != entry.seq:
            log.error("copy %s of shard %d/%d: %s; retrying", a.instance, a.collection_id, a.shard, reason)
        a.stuck, a.stuck_seq = reason, entry.seq
        metrics.STUCK_ENTRIES.labels(str(a.collection_id), str(a.shard), a.instance).set(1)
        async with a.progress:
            a.progress.notify_all()
        raise _Retry(reason, STUCK_BACKOFF_MAX)

    async def abort(self, a: CopyApplier, seq: int, st: common_pb2.Status) -> None:
        """Record in the log that the primary refused entry `seq`, then move past it (every copy skips it)."""
        await asyncio.to_thread(self.store.abort_entry, a.collection_id, a.shard, seq)
        self._shard(a.collection_id, a.shard).aborted.add(seq)
        a.rejections[seq] = st
        for old in [s for s in a.rejections if s < seq - REJECTIONS_KEPT]:
            del a.rejections[old]
        await self._applied(a, seq, None)

    async def _applied(self, a: CopyApplier, seq: int, backend_ts: int | None) -> None:
        if a.failing_since:
            log.info(
                "copy %s of shard %d/%d answers again (after %.1fs)",
                a.instance,
                a.collection_id,
                a.shard,
                time.monotonic() - a.failing_since,
            )
        a.failing_since = 0.0
        if a.stuck:
            log.info("copy %s of shard %d/%d: entry %d is past", a.instance, a.collection_id, a.shard, a.stuck_seq)
            metrics.STUCK_ENTRIES.labels(str(a.collection_id), str(a.shard), a.instance).set(0)
            a.stuck, a.stuck_seq = "", 0
        # Waiters hear at once: the entry is in the log and the copy applied it.
        async with a.progress:
            a.unavailable = ""
            a.applied_seq = seq
            if backend_ts is not None:  # None: an aborted entry, which changed nothing
                a.backend_ts = backend_ts  # 0 when the backend gave none (2.3.5's deletes): unknown
                if backend_ts:
                    a.clocks.append((seq, backend_ts))
            a.progress.notify_all()
        if a.role == "primary":
            self._shard(a.collection_id, a.shard).primary_applied(seq)
            for other in self.copies_of(a.collection_id, a.shard):
                if other.role != "primary":
                    other.wake.set()

    async def _mark(self, a: CopyApplier, due: bool = False) -> None:
        """Record the copy's applied position (at most every MARK_INTERVAL while it is busy) and truncate."""
        if a.marked_seq >= a.applied_seq or (due and time.monotonic() - a.marked_at < MARK_INTERVAL):
            return
        seq = a.applied_seq
        await asyncio.to_thread(
            self.store.mark_applied, a.collection_id, a.shard, a.instance, seq, self.released(a.collection_id, a.shard)
        )
        a.marked_seq, a.marked_at = seq, time.monotonic()
        state = self._shard(a.collection_id, a.shard)
        if state.aborted:  # every copy is past these: their entries are read from the store no more
            floor = min(c.applied_seq for c in self.copies_of(a.collection_id, a.shard))
            state.aborted = {s for s in state.aborted if s > floor}

    def released(self, collection_id: int, shard: int) -> list[str]:
        """Replicas that stopped applying longer than REPLICA_DOWN_GRACE ago: they no longer hold the log back."""
        now = time.monotonic()
        return [
            a.instance
            for a in self.copies_of(collection_id, shard)
            if a.role == "replica" and a.failing_since and now - a.failing_since > self.replica_down_grace
        ]

    def _lose_replica(self, a: CopyApplier, reason: str) -> None:
        """A replica that cannot follow its primary leaves rotation; the replica manager refills it."""
        log.warning("replica %s of shard %d/%d leaves rotation: %s", a.instance, a.collection_id, a.shard, reason)
        self.appliers.pop((a.collection_id, a.shard, a.instance), None)
        if self.on_replica_lost is not None:
            self.on_replica_lost(a.collection_id, a.shard, a.instance, reason)

    @staticmethod
    async def _backoff(a: CopyApplier, seconds: float) -> None:
        """Wait before a retry; a new write (or an operator's retry) cuts the wait short after the first step."""
        a.retry.clear()
        await asyncio.sleep(min(seconds, BACKOFF_FIRST))
        try:
            await asyncio.wait_for(a.retry.wait(), max(seconds - BACKOFF_FIRST, 0.0))
        except TimeoutError:
            pass

    # --- operators ----------------------------------------------------------------------------------

    async def repair(self, collection_id: int, shard: int, instance: str, action: str) -> str:
        """`retry`: try the refused entry now; `skip`: abort it (recorded in the log) and go on."""
        if action not in ("retry", "skip"):
            raise MilvusError(errors.PARAMETER_INVALID, f"unknown repair action {action!r} (retry or skip)")
        applier = self.appliers.get((collection_id, shard, instance))
        if applier is None or not applier.stuck:
            info = await asyncio.to_thread(self.store.copy_info, collection_id, shard, instance)
            if info is None or info.state != COPY_FAILED:
                return "the copy is not stuck"
            # a copy an earlier release marked failed: it applies again
            await asyncio.to_thread(self.store.set_copy_state, collection_id, shard, instance, "ready", "")
            return f"copy {instance} of shard {shard} applies its log again"
        if action == "skip":  # the applier aborts it before its next try
            applier.skip_seq = applier.stuck_seq
        applier.retry.set()
        return f"copy {instance} of shard {shard}: {'entry skipped' if action == 'skip' else 'retrying now'}"


class _ReplicaGone(Exception):
    """The replica left rotation: its applier ends."""
