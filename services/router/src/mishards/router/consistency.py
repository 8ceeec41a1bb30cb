"""Read consistency: which copies of each shard may serve a read, and at what clock.

A read must see what its consistency level promises. Strong reads, and Session and
Customized reads with a client timestamp, go to copies that have applied the shard's log up
to the position the read must see (meta says where that is); Bounded reads to copies within
BOUNDED_STALENESS_MS of the log; Eventually reads to ready replicas first. Each copy is read
at its own clock of that position (`at_backend_ts`).
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

import grpc
from pymilvus.grpc_gen import common_pb2

from mishards.common import errors
from mishards.common.errors import MilvusError
from mishards.router.catalog import CollectionView
from mishards.router.fanout import ShardCall
from mishards.router.meta_client import MetaClient
from mishards.router.topology import Topology
from mishards.v1 import meta_pb2

LOG_END = 2**64 - 1  # the Mishards timestamp a Strong read is placed at: the end of every shard's log
BOUNDED_REFRESH = 0.5  # seconds a Bounded read's positions are reused (they are placed that much later)
ANSWER_MARGIN = 0.1  # seconds kept from a client's deadline to answer when a read cannot be placed in time
POSITIONS_TIMEOUT = 2.0  # seconds meta has to say where a read must be, beyond the time it may wait
# The monotonic time the client's request must be answered by (None: no deadline), set per request.
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("mishards_deadline", default=None)


def at_backend_ts(request: Any, level: int, backend_ts: int) -> Any:
    """A read set to be served at one copy's own timestamp (0: Strong); changed in place and returned.

    Milvus reads a Session or Customized request at its guarantee timestamp; a Strong one
    ignores it, so a Strong read placed at a copy's timestamp goes as Customized. A shard's
    copies are tried one at a time, each after the previous try's request was sent.
    """
    out = request
    out.use_default_consistency = False
    if backend_ts:
        out.consistency_level = level if level in (common_pb2.Session, common_pb2.Customized) else common_pb2.Customized
        out.guarantee_timestamp = backend_ts
    else:  # the copy's clock is not known: Strong makes everything it applied visible
        out.consistency_level = common_pb2.Strong
        out.guarantee_timestamp = 0
    return out


def _at_clock_of(request: Any, level: int, clocks: dict[str, int]) -> Any:
    """The shard's request for the copy it is tried on, at that copy's clock (`clocks`: by address)."""
    return lambda target: at_backend_ts(request, level, clocks[target.address])


def consistency_of(view: CollectionView, request: Any) -> int:
    """The level a read runs at: the request's, or the collection's when the client asked for the default.

    pymilvus sends no level then, but still the Session timestamp of its last write.
    """
    return int(view.message.consistency_level if request.use_default_consistency else request.consistency_level)


class Consistency:
    """Places each read on the copies that can serve it at its consistency level (meta's read positions)."""

    def __init__(
        self,
        topology: Topology,
        meta: MetaClient | None = None,
        read_wait: float = 30.0,
        staleness_ms: int = 5000,
    ) -> None:
        self.topology = topology
        self.meta = meta
        self.read_wait = read_wait  # READ_WAIT_TIMEOUT
        self.staleness_ms = staleness_ms  # BOUNDED_STALENESS_MS
        # collection id -> (monotonic time, meta's positions of a Bounded read's moment)
        self._bounded: dict[int, tuple[float, dict[int, meta_pb2.ShardReadPosition]]] = {}
        # collection id -> (the snapshot and membership they were worked out from, shard -> clocks)
        self._clocks: dict[int, tuple[Any, Any, dict[int, dict[str, int]]]] = {}

    async def plan(self, view: CollectionView, request: Any, build: Any) -> list[ShardCall]:
        """Per shard of `view`, the copies to try and `build(physical_name)` set for them.

        Strong reads, and Session and Customized reads with a client timestamp, go to copies
        that have applied the shard's log up to the position the read must see
        (`positioned_calls`): for Strong, the end of the log, which holds every acknowledged
        write. Bounded and Eventually reads go to ready replicas first, without a timestamp.
        """
        level = consistency_of(view, request)
        if level in (common_pb2.Session, common_pb2.Customized) and request.guarantee_timestamp > 1:
            return await self.positioned_calls(view, request.guarantee_timestamp, level, build)
        if level == common_pb2.Strong:
            return await self.positioned_calls(view, LOG_END, level, build)
        if level == common_pb2.Bounded and (bounded := await self._bounded_calls(view, build)) is not None:
            return bounded
        return self._unplaced_calls(view, level, build)

    def _unplaced_calls(self, view: CollectionView, level: int, build: Any) -> list[ShardCall]:
        """Reads meta does not place: ready replicas first (a Session read with no write yet: the primary)."""
        primary_only = level in (common_pb2.Strong, common_pb2.Session, common_pb2.Customized)
        calls = []
        for s in view.shards:
            out = build(s.physical_name)
            # Strong, Bounded, Eventually carry no client timestamp; a Session one of 0 or 1
            # (no write yet) goes as pymilvus sent it
            if level not in (common_pb2.Session, common_pb2.Customized):
                out.guarantee_timestamp = 0
            calls.append(ShardCall(s, self.topology.read_targets(s, view.name, primary_only), out))
        return calls

    async def positioned_calls(self, view: CollectionView, ts: int, level: int, build: Any) -> list[ShardCall]:
        """Per shard, the copies that have applied every write up to Mishards timestamp `ts`, each read at its own clock.

        `ts` is the client's Session or guarantee timestamp, or `LOG_END` for Strong. Meta says
        where `ts` is in each shard's log and where each copy is, after waiting (up to
        READ_WAIT_TIMEOUT or the client's deadline) until each shard's primary has applied it.
        Copies that have reached it are read at their timestamp of the last entry they applied
        (replicas first, as the read strategy orders them; Strong when a copy's clock is not
        known). A shard none of whose copies has reached it fails the read, naming the shard: no
        read falls back to a copy that may lag.
        """
        wait = self._wait_budget()
        positions = await self.positions(view, [s.index for s in view.shards], ts, wait)
        members = self.topology.membership.by_identity()
        calls: list[ShardCall] = []
        for s in view.shards:
            targets = self.topology.read_targets(s, view.name, primary_only=False)
            position = positions[s.index]
            reached: dict[str, int] = {}  # address -> the copy's timestamp of its applied position
            for c in position.copies:
                if c.applied_seq >= position.seq and c.instance in members:
                    reached[members[c.instance].address] = c.backend_timestamp
            chosen = [t for t in targets if t.address in reached]
            if not chosen:
                primary = next((c for c in position.copies if c.instance == s.primary), None)
                where = f"its primary {s.primary} is at {primary.applied_seq}" if primary else "no copy applies it"
                raise MilvusError(
                    errors.SERVICE_UNAVAILABLE,
                    f"mishards: shard {s.index} of collection {view.name} has no copy that applied the writes "
                    f"this read must see (log position {position.seq}; {where}) within {wait:g}s",
                )
            request = build(s.physical_name)
            calls.append(ShardCall(s, chosen, _at_clock_of(request, level, reached)))
        return calls

    async def _bounded_calls(self, view: CollectionView, build: Any) -> list[ShardCall] | None:
        """A Bounded read: per shard, the copies that have applied every write acknowledged BOUNDED_STALENESS_MS ago.

        Meta's positions of that moment are kept for BOUNDED_REFRESH seconds (placed that much
        later, so that they cover every read in that time): Bounded reads cost no meta call. A
        copy is read at its own clock of that position. A shard none of whose copies has reached
        it is read as a positioned read (it waits for its primary). None when meta does not
        answer: the read then goes as Milvus's own Bounded to ready replicas first.
        """
        snapshot = await self._bounded_snapshot(view)
        if snapshot is None:
            return None
        members = self.topology.membership.by_identity()
        calls: list[ShardCall] = []
        for s in view.shards:
            targets = self.topology.read_targets(s, view.name, primary_only=False)
            clocks = self._bounded_clocks(view.id, snapshot, members, s.index)
            chosen = [t for t in targets if t.address in clocks]
            if not chosen:  # even the primary is that far behind: wait for it as a positioned read does
                bound = (int(time.time() * 1000) - self.staleness_ms) << 18
                shard_view = view.only_shard(s.index)
                calls.extend(await self.positioned_calls(shard_view, bound, common_pb2.Customized, build))
                continue
            request = build(s.physical_name)
            calls.append(ShardCall(s, chosen, _at_clock_of(request, common_pb2.Customized, clocks)))
        return calls

    def _bounded_clocks(
        self,
        collection_id: int,
        snapshot: dict[int, meta_pb2.ShardReadPosition],
        members: dict[str, Any],
        shard: int,
    ) -> dict[str, int]:
        """Address -> the copy's timestamp of (at least) the shard's Bounded position, for the copies that reached it.

        Worked out once per snapshot and membership (both are reused for many reads), not per read.
        """
        cached = self._clocks.get(collection_id)
        if cached is None or cached[0] is not snapshot or cached[1] is not members:
            cached = self._clocks[collection_id] = (snapshot, members, {})
        clocks = cached[2].get(shard)
        if clocks is None:
            clocks = cached[2][shard] = {}
            position = snapshot.get(shard)
            for c in position.copies if position is not None else ():
                if c.applied_seq >= position.seq and c.instance in members:  # type: ignore[union-attr]
                    clocks[members[c.instance].address] = c.backend_timestamp_at_seq or c.backend_timestamp
        return clocks

    async def _bounded_snapshot(self, view: CollectionView) -> dict[int, meta_pb2.ShardReadPosition] | None:
        now = time.monotonic()
        cached = self._bounded.get(view.id)
        if cached is not None and now - cached[0] < BOUNDED_REFRESH:
            return cached[1]
        bound_ms = int(time.time() * 1000) - self.staleness_ms + int(BOUNDED_REFRESH * 1000)
        every_shard = list(range(view.shards_num))  # also when this read is pinned to fewer: the snapshot is shared
        try:
            positions = await self.positions(view, every_shard, max(bound_ms, 0) << 18, 0.0)
        except MilvusError:
            return None
        self._bounded[view.id] = (now, positions)
        return positions

    def _wait_budget(self) -> float:
        """Seconds a positioned read may wait for the copies: READ_WAIT_TIMEOUT or what is left of the deadline."""
        deadline = DEADLINE.get()
        if deadline is None:
            return self.read_wait
        # the answer (code 2 naming the shard) must reach the client before its deadline does
        return max(0.0, min(self.read_wait, (deadline - time.monotonic()) * 0.9 - ANSWER_MARGIN))

    async def positions(
        self, view: CollectionView, shards: list[int], ts: int, wait: float = 0.0
    ) -> dict[int, meta_pb2.ShardReadPosition]:
        """Meta's read positions for `ts` (after waiting up to `wait` seconds for the primaries).

        Raises SERVICE_UNAVAILABLE when meta does not answer: without it no read can be placed.
        """
        if self.meta is None:
            raise MilvusError(errors.SERVICE_UNAVAILABLE, "mishards: no meta to place the read")
        request = meta_pb2.ReadPositionsRequest(collection_id=view.id, timestamp=ts, shards=shards, wait_seconds=wait)
        try:
            try:
                answer = await self.meta.read_positions(request, wait + POSITIONS_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                # meta may be back while the channel waits to reconnect: give it POSITIONS_TIMEOUT, no more
                answer = await self.meta.read_positions(request, POSITIONS_TIMEOUT, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            raise MilvusError(
                errors.SERVICE_UNAVAILABLE,
                f"mishards: meta did not say where collection {view.name}'s shards are ({exc.code().name}); "
                "a Strong, Session or guarantee_timestamp read cannot be placed",
            ) from None
        return {p.shard: p for p in answer.shards}
