"""Where a shard's primary lives: promotion of a replica, shard moves, rebalancing and drains.

- **Promotion.** A primary unreachable for PRIMARY_FAILOVER_AFTER seconds is replaced by the
  shard's most caught-up ready replica: the old copy is fenced (it never applies or serves
  again), the replica becomes the primary and applies the rest of the log. An operator can
  promote a replica of a healthy primary too (a planned switch: the primary is held between
  two entries until the replica has reached it, so no entry is lost or applied twice).
- **Moves.** A new copy is filled on the target instance like a replica (snapshot, then the
  log), the primary is held while the copy applies the last entries, the copy becomes the
  primary, and the old copy is dropped once reads in flight are done. Writes keep being
  logged and acknowledged throughout; reads keep flowing.
- **Rebalancing** (REBALANCE=auto) moves primaries so that no writable instance holds more than
  ceil(S/W) of a collection's, and off read-only instances (after a promotion) and instances an
  operator drains. A drained instance also loses its replicas (placed elsewhere first).
  At most one move per instance at a time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mishards.common import errors, metrics
from mishards.common.backends import BackendPool
from mishards.common.errors import MilvusError
from mishards.common.membership import MembershipWatcher
from mishards.common.settings import Settings
from mishards.meta.mutations import MutationLog
from mishards.meta.placement import rendezvous_score
from mishards.meta.replicas import DRAIN_GRACE_SECONDS, ReplicaManager, drop_physical_copy
from mishards.meta.store import (
    COPY_FILLING,
    COPY_READY,
    ROLE_FENCED,
    ROLE_INCOMING,
    ROLE_RETIRED,
    CollectionSpec,
    CopyRecord,
    Store,
)
from mishards.v1 import discovery_pb2

log = logging.getLogger(__name__)

SWITCH_TIMEOUT = 30.0  # seconds a held primary waits for the new copy to reach it before the switch is given up


@dataclass
class Move:
    """A shard move in flight (shown by `mishards status`)."""

    collection_id: int
    collection: str
    shard: int
    source: str
    target: str
    phase: str = "copying"
    started: float = 0.0
    switch_seconds: float = 0.0  # how long the primary was held for the switch
    seconds: float = 0.0  # a finished move: how long it took in all


class MoveRefused(MilvusError):
    """A move that found the target already holding a live copy of the shard (a plan made from a
    catalog read just before another move switched): nothing was touched, nothing to undo."""


class ShardMover:
    """Promotes replicas of lost primaries, moves shards, rebalances and drains; reconciles once a second."""

    def __init__(
        self,
        store: Store,
        membership: MembershipWatcher,
        backends: BackendPool,
        mutation_log: MutationLog,
        replicas: ReplicaManager,
        settings: Settings,
        on_change: Callable[[int], Awaitable[None]],
        ddl_lock: asyncio.Lock,
        interval: float = 1.0,
    ) -> None:
        self.store = store
        self.membership = membership
        self.backends = backends
        self.log = mutation_log
        self.replicas = replicas
        self.settings = settings
        self.on_change = on_change
        self.ddl_lock = ddl_lock
        self.interval = interval
        self.moves: dict[tuple[int, int], Move] = {}
        self.finished: deque[Move] = deque(maxlen=20)  # recent moves that switched, for `mishards status`
        self.unhealthy_since: dict[str, float] = {}  # instance -> monotonic time it was first seen not serving
        self._tasks: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="shard-mover")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._tasks] if t]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("shard mover reconcile failed")
            await asyncio.sleep(self.interval)

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the reconcile pass -------------------------------------------------------------------------

    async def reconcile(self) -> None:
        members = self.membership.membership
        if not members.instances:
            return  # no membership yet: change nothing
        healthy = {i.identity for i in members.instances if i.health == discovery_pb2.HEALTHY}
        now = time.monotonic()
        for inst in members.instances:
            if inst.identity in healthy:
                self.unhealthy_since.pop(inst.identity, None)
            else:
                self.unhealthy_since.setdefault(inst.identity, now)
        collections = {c.id: c for c in self.store.collections()}
        copies = await asyncio.to_thread(self.store.copies)
        for spec in collections.values():
            for shard in spec.shards:
                if shard.primary not in healthy and (spec.id, shard.index) not in self.moves:
                    self.unhealthy_since.setdefault(shard.primary, now)  # gone from the membership
                    if now - self.unhealthy_since[shard.primary] >= self.settings.PRIMARY_FAILOVER_AFTER:
                        await self._failover(spec, shard.index, copies, healthy)
        await self._clean_up(copies, collections, healthy)
        draining = await asyncio.to_thread(self.store.draining_instances)
        if self.settings.REBALANCE == "auto" or draining:
            writable = {i.identity for i in members.instances if i.role == discovery_pb2.WRITABLE}
            for cid, index, target in self.plan(collections, healthy & writable - draining, healthy):
                self.start_move(collections[cid], index, target)

    async def _failover(self, spec: CollectionSpec, shard: int, copies: list[CopyRecord], healthy: set[str]) -> None:
        ready = [
            c for c in copies
            if c.collection_id == spec.id and c.shard == shard and c.role == "replica" and c.state == COPY_READY
            and c.instance in healthy and self.log.applier(spec.id, shard, c.instance) is not None
        ]  # fmt: skip
        if not ready:
            return  # nothing to promote: the shard waits for its primary
        best = max(ready, key=lambda c: self.log.applier(spec.id, shard, c.instance).applied_seq)  # type: ignore[union-attr]
        lost = spec.shards[shard].primary
        log.warning("primary %s of %s/%d lost for %gs: promoting %s", lost, spec.name, shard,
                    self.settings.PRIMARY_FAILOVER_AFTER, best.instance)  # fmt: skip
        await self.promote(spec, shard, best.instance, lost=True)

    # --- promotion ----------------------------------------------------------------------------------

    def best_replica(self, spec: CollectionSpec, shard: int) -> str:
        """The shard's most caught-up replica in rotation (an operator's promote without --to)."""
        ready = [
            a for a in self.log.copies_of(spec.id, shard)
            if a.role == "replica" and self.membership.by_identity().get(a.instance) is not None
        ]  # fmt: skip
        if not ready:
            raise MilvusError(
                errors.PARAMETER_INVALID, f"mishards: shard {shard} of {spec.name} has no replica to promote"
            )
        return max(ready, key=lambda a: a.applied_seq).instance

    def check_move_target(self, target: str) -> None:
        """A shard moves to a healthy writable instance that is not being drained."""
        inst = self.membership.by_identity().get(target)
        if inst is None or inst.role != discovery_pb2.WRITABLE or inst.health != discovery_pb2.HEALTHY:
            raise MilvusError(errors.PARAMETER_INVALID, f"mishards: {target} is not a healthy writable instance")
        if target in self.store.draining_instances():
            raise MilvusError(errors.PARAMETER_INVALID, f"mishards: {target} is being drained")

    async def promote(self, spec: CollectionSpec, shard: int, to: str, lost: bool) -> str:
        """Make the ready replica on `to` the shard's primary.

        `lost`: the old primary is unreachable: it is fenced. Otherwise (planned) it is held
        between two entries until `to` has reached it, then retired and dropped.
        """
        if self.log.applier(spec.id, shard, to) is None:
            raise MilvusError(
                errors.PARAMETER_INVALID, f"mishards: shard {shard} of {spec.name} has no ready copy on {to}"
            )
        old = spec.shards[shard].primary
        started = time.monotonic()
        async with self.ddl_lock:
            if not lost:
                await self._catch_up_under_hold(spec, shard, to)
            role = ROLE_FENCED if lost else ROLE_RETIRED
            why = f"lost, replaced by {to}" if lost else f"switched to {to}"
            version = await asyncio.to_thread(self.store.switch_primary, spec.id, shard, to, role, why)
            await self.log.switch_primary(spec.id, shard, to, lost)
        metrics.PROMOTIONS.labels("lost" if lost else "planned").inc()
        await self.on_change(version)
        log.info("shard %s/%d: primary %s -> %s (%s) in %.2fs", spec.name, shard, old, to, role,
                 time.monotonic() - started)  # fmt: skip
        if not lost:
            physical = spec.shards[shard].physical_name
            self._spawn(self._drop_later(physical, spec.id, shard, old), _drop_name(spec.id, shard, old))
        return f"shard {shard} of {spec.name}: primary {old} -> {to}"

    async def _catch_up_under_hold(self, spec: CollectionSpec, shard: int, to: str) -> float:
        """Hold the primary between two entries and wait until the copy on `to` has reached it; seconds held."""
        held_at = time.monotonic()
        position = await self.log.hold_primary(spec.id, shard)
        applier = self.log.applier(spec.id, shard, to)
        deadline = time.monotonic() + SWITCH_TIMEOUT
        while applier is not None and applier.applied_seq < position:
            if time.monotonic() > deadline:
                self.log.release_primary(spec.id, shard)
                raise MilvusError(
                    errors.SERVICE_UNAVAILABLE,
                    f"mishards: the copy of shard {shard} on {to} did not reach position {position} in "
                    f"{SWITCH_TIMEOUT:g}s; the switch is given up",
                )
            await asyncio.sleep(0.02)
        if applier is None:
            self.log.release_primary(spec.id, shard)
            raise MilvusError(errors.SERVICE_UNAVAILABLE, f"mishards: the copy of shard {shard} on {to} went away")
        return time.monotonic() - held_at

    # --- moves --------------------------------------------------------------------------------------

    def start_move(self, spec: CollectionSpec, shard: int, target: str) -> Move:
        key = (spec.id, shard)
        if key in self.moves:
            raise MilvusError(errors.PARAMETER_INVALID, f"mishards: shard {shard} of {spec.name} is moving already")
        source = spec.shards[shard].primary
        if source == target:
            raise MilvusError(
                errors.PARAMETER_INVALID, f"mishards: shard {shard} of {spec.name} is on {target} already"
            )
        if self.dropping(spec.id, shard, target):
            raise MilvusError(
                errors.SERVICE_UNAVAILABLE,
                f"mishards: the old copy of shard {shard} of {spec.name} on {target} is being dropped; "
                f"move it there in {DRAIN_GRACE_SECONDS:g}s",
            )
        move = Move(spec.id, spec.name, shard, source, target, started=time.monotonic())
        self.moves[key] = move
        self._spawn(self._move(spec, move), f"move-{spec.id}-{shard}")
        return move

    async def _move(self, spec: CollectionSpec, move: Move) -> None:
        key = (spec.id, move.shard)
        try:
            await self._run_move(spec, move)
        except asyncio.CancelledError:
            raise
        except MoveRefused as exc:
            log.info("not moving shard %s/%d to %s: %s", spec.name, move.shard, move.target, exc.reason)
        except Exception as exc:
            log.warning("moving shard %s/%d to %s failed: %s", spec.name, move.shard, move.target, exc)
            self.log.remove_copy(spec.id, move.shard, move.target)
            info = await asyncio.to_thread(self.store.copy_info, spec.id, move.shard, move.target)
            if info is not None and info.role == ROLE_INCOMING:
                await asyncio.to_thread(self.store.remove_copy, spec.id, move.shard, move.target)
        finally:
            self.moves.pop(key, None)

    async def _run_move(self, spec: CollectionSpec, move: Move) -> None:
        existing = await asyncio.to_thread(self.store.copy_info, spec.id, move.shard, move.target)
        if existing is not None and existing.role != "replica":  # primary, incoming, retired or fenced there
            raise MoveRefused(errors.PARAMETER_INVALID, f"{move.target} holds its {existing.role} copy")
        if existing is None or existing.state != COPY_READY:
            if existing is not None:  # a replica there that is not ready: the move's copy replaces it
                self.log.remove_copy(spec.id, move.shard, move.target)
            await asyncio.to_thread(self.store.add_copy, spec.id, move.shard, move.target, ROLE_INCOMING, COPY_FILLING)
            await self.replicas.fill(spec, move.shard, move.target, role=ROLE_INCOMING)
        move.phase = "switching"
        async with self.ddl_lock:
            move.switch_seconds = await self._catch_up_under_hold(spec, move.shard, move.target)
            version = await asyncio.to_thread(
                self.store.switch_primary, spec.id, move.shard, move.target, ROLE_RETIRED, f"moved to {move.target}"
            )
            await self.log.switch_primary(spec.id, move.shard, move.target, lost=False)
        await self.on_change(version)
        log.info("shard %s/%d moved %s -> %s in %.1fs (primary held %.3fs)", spec.name, move.shard, move.source,
                 move.target, time.monotonic() - move.started, move.switch_seconds)  # fmt: skip
        move.phase = "done"
        move.seconds = time.monotonic() - move.started
        self.finished.append(move)
        physical = spec.shards[move.shard].physical_name
        self._spawn(
            self._drop_later(physical, spec.id, move.shard, move.source), _drop_name(spec.id, move.shard, move.source)
        )

    async def _drop_later(self, physical: str, collection_id: int, shard: int, instance: str) -> None:
        """Drop a retired or fenced copy once routers have the new catalog and reads in flight are done."""
        await asyncio.sleep(DRAIN_GRACE_SECONDS)
        info = await asyncio.to_thread(self.store.copy_info, collection_id, shard, instance)
        if info is None or info.role not in (ROLE_RETIRED, ROLE_FENCED):
            # the place holds a live copy again (it shares the physical name): never drop that one
            log.warning("not dropping shard %d of collection %d on %s: it holds a %s copy now", shard,
                        collection_id, instance, info.role if info else "no")  # fmt: skip
            return
        await drop_physical_copy(self.membership, self.backends, instance, physical, "old copy")
        await self.on_change(await asyncio.to_thread(self.store.remove_copy, collection_id, shard, instance))

    async def _clean_up(
        self, copies: list[CopyRecord], collections: dict[int, CollectionSpec], healthy: set[str]
    ) -> None:
        """Fenced copies whose instance is back, and retired ones a restart left behind, are dropped."""
        for c in copies:
            gone = c.role == ROLE_RETIRED or (c.role == ROLE_FENCED and c.instance in healthy)
            key = _drop_name(c.collection_id, c.shard, c.instance)
            if gone and c.collection_id in collections and not any(t.get_name() == key for t in self._tasks):
                physical = collections[c.collection_id].shards[c.shard].physical_name
                self._spawn(self._drop_later(physical, c.collection_id, c.shard, c.instance), key)

    # --- rebalancing --------------------------------------------------------------------------------

    def plan(
        self,
        collections: dict[int, CollectionSpec],
        writable: set[str],
        healthy: set[str],
    ) -> list[tuple[int, int, str]]:
        """Moves to start now: primaries off non-writable or draining instances, then past ceil(S/W).

        A move needs its source alive (a lost primary is failover's) and touches instances with
        no other move in flight.
        """
        if not writable:
            return []
        busy = {m.source for m in self.moves.values()} | {m.target for m in self.moves.values()}
        out: list[tuple[int, int, str]] = []
        for spec in collections.values():
            load = Counter(s.primary for s in spec.shards)
            cap = math.ceil(spec.shards_num / len(writable))
            for s in spec.shards:
                misplaced = s.primary not in writable or load[s.primary] > cap
                if not misplaced or s.primary not in healthy or (spec.id, s.index) in self.moves or s.primary in busy:
                    continue
                room = [
                    i
                    for i in writable
                    if load[i] < cap and i not in busy and i != s.primary and not self.dropping(spec.id, s.index, i)
                ]
                if not room:
                    continue
                target = min(room, key=lambda i: (load[i], -rendezvous_score(str(spec.id), s.index, i)))
                load[s.primary] -= 1
                load[target] += 1
                busy |= {s.primary, target}
                out.append((spec.id, s.index, target))
        return out

    def dropping(self, collection_id: int, shard: int, instance: str) -> bool:
        """A retired or fenced copy of the shard on `instance` is waiting to be dropped: no new copy goes there
        until it is gone (every copy of a shard has the same physical name)."""
        key = _drop_name(collection_id, shard, instance)
        return any(t.get_name() == key and not t.done() for t in self._tasks)

    # --- drains -------------------------------------------------------------------------------------

    async def drain(self, identity: str, undo: bool = False) -> str:
        """Move every primary and replica off an instance (before it is removed); `undo` stops draining it."""
        await self.on_change(await asyncio.to_thread(self.store.set_draining, identity, not undo))
        if undo:
            return f"{identity} is no longer drained"
        return f"draining {identity}: its primaries move to other writable instances, its replicas are placed elsewhere"

    def drain_left(self, identity: str, copies: list[CopyRecord]) -> int:
        """Copies still on an instance being drained (0: it may be removed)."""
        return sum(1 for c in copies if c.instance == identity and c.role not in (ROLE_FENCED, ROLE_RETIRED))


def _drop_name(collection_id: int, shard: int, instance: str) -> str:
    """The task that drops a retired or fenced copy (one per copy)."""
    return f"drop-{collection_id}-{shard}-{instance}"
