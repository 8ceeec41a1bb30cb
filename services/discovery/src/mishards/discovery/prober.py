"""Lists the back end and probes every instance's health on a fixed interval.

This is where the membership semantics live, once, above the back ends: the last
known list is kept during a back-end outage, joins are damped (`healthy_after`
consecutive good probes), losses are announced at the first failed probe, removals
as soon as the back end signals them, and every change becomes a new version on the
`MembershipBoard`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import grpc

from mishards.common import metrics
from mishards.common.security import backend_metadata
from mishards.common.server import backend_channel
from mishards.discovery.backends.base import (
    BackendUnavailable,
    DiscoveryBackend,
    InstanceSpec,
)
from mishards.discovery.membership import MembershipBoard
from mishards.v1 import discovery_pb2

log = logging.getLogger(__name__)

_ROLE = {"writable": discovery_pb2.WRITABLE, "readonly": discovery_pb2.READONLY}


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one health probe; `reason` says why when not healthy."""

    healthy: bool
    reason: str = ""


ProbeFn = Callable[[str], Awaitable[ProbeResult]]


@runtime_checkable
class HealthChecker(Protocol):
    """Checks the health of Milvus endpoints by address."""

    async def check(self, address: str, timeout: float) -> ProbeResult:
        """Probe `address` once within `timeout` seconds.

        Returns ProbeResult(healthy=False, reason=...) for an unhealthy or unreachable
        endpoint; an exception is treated the same way, with its text as reason.
        """
        ...

    async def retain(self, addresses: set[str]) -> None:
        """Forget every address not in `addresses` (close its channel). Never raises."""
        ...

    async def close(self) -> None:
        """Release every channel. Never raises."""
        ...


class FunctionChecker:
    """A HealthChecker around a plain `async def probe(address) -> ProbeResult` (tests)."""

    def __init__(self, probe: ProbeFn) -> None:
        self.probe = probe

    async def check(self, address: str, timeout: float) -> ProbeResult:
        return await self.probe(address)

    async def retain(self, addresses: set[str]) -> None:
        return None

    async def close(self) -> None:
        return None


class MilvusHealthChecker:
    """Probes with Milvus `CheckHealth`, keeping one grpc.aio channel per address.

    Healthy when the response status carries no error and `isHealthy` is true. The probe
    carries MILVUS_BACKEND_TOKEN (a Milvus with authorization on refuses it otherwise) and
    uses TLS when MILVUS_BACKEND_TLS_CA_FILE is set.
    """

    def __init__(self, token: str = "", tls_ca_file: str = "") -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._metadata = backend_metadata(token)
        self._tls_ca_file = tls_ca_file

    async def check(self, address: str, timeout: float) -> ProbeResult:
        # Imported here: pymilvus's generated code is heavy and nothing may happen at import.
        from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = backend_channel(address, self._tls_ca_file)
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        try:
            response = await stub.CheckHealth(milvus_pb2.CheckHealthRequest(), timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            return ProbeResult(False, f"{exc.code().name}: {exc.details() or 'no details'}")
        status = response.status
        if status.code or status.error_code:
            return ProbeResult(
                False,
                f"CheckHealth status {status.code or status.error_code}: {status.reason}",
            )
        if not response.isHealthy:
            reasons = "; ".join(response.reasons) or "no reason given"
            return ProbeResult(False, f"Milvus reports unhealthy: {reasons}")
        return ProbeResult(True)

    async def retain(self, addresses: set[str]) -> None:
        for address in [a for a in self._channels if a not in addresses]:
            await self._close_channel(address)

    async def close(self) -> None:
        for address in list(self._channels):
            await self._close_channel(address)

    async def _close_channel(self, address: str) -> None:
        channel = self._channels.pop(address)
        try:
            await channel.close()
        except Exception:  # closing is best effort
            log.debug("closing channel to %s failed", address, exc_info=True)


@dataclass
class _Tracked:
    spec: InstanceSpec
    health: int = discovery_pb2.HEALTH_UNKNOWN
    reason: str = ""
    good_streak: int = 0

    def to_proto(self) -> discovery_pb2.Instance:
        return discovery_pb2.Instance(
            identity=self.spec.identity,
            address=self.spec.address,
            role=_ROLE[self.spec.role],
            health=self.health,  # type: ignore[arg-type]
            reason=self.reason,
        )


class Prober:
    """Keeps the `MembershipBoard` in step with the back end and the instances' health.

    A round lists the back end, publishes the list changes (new instances appear as
    HEALTH_UNKNOWN), probes every instance concurrently and publishes the health
    changes. Between rounds, a back end that signals a change (`subscribe`) is listed
    and published at once, without probing. An instance becomes HEALTHY after `healthy_after` consecutive good probes
    (DISCOVERY_HEALTHY_AFTER in the service) and DOWN at the first failed one, with
    the failure as reason. An address change
    resets the instance to HEALTH_UNKNOWN until it is probed again.
    """

    def __init__(
        self,
        backend: DiscoveryBackend,
        board: MembershipBoard | None = None,
        *,
        probe: HealthChecker | ProbeFn | None = None,
        interval: float = 2.0,
        timeout: float = 3.0,
        healthy_after: int = 1,
    ) -> None:
        if healthy_after < 1:
            raise ValueError("healthy_after must be at least 1")
        self.backend = backend
        self.board = board or MembershipBoard()
        if probe is None:
            self.checker: HealthChecker = MilvusHealthChecker()
        elif isinstance(probe, HealthChecker):
            self.checker = probe
        else:
            self.checker = FunctionChecker(probe)
        self.interval = interval
        self.timeout = timeout
        self.healthy_after = healthy_after
        self._tracked: dict[str, _Tracked] = {}
        self._backend_ok = False
        self._backend_error = ""
        self._round_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._round_started = 0.0
        self._changed = asyncio.Event()
        self.rounds = 0
        self.list_rounds = 0

    async def start(self) -> None:
        """Settle the first membership, then keep probing in the background until `stop()`.

        The first rounds run `interval` seconds apart until every instance has a
        verdict (HEALTHY or DOWN), at most `healthy_after` rounds: a service that says
        SERVING after `start()` then announces its reachable instances as healthy.
        """
        self._subscribe(asyncio.get_running_loop())
        await self.run_round()
        for _ in range(self.healthy_after - 1):
            if not self._undecided():
                break
            await asyncio.sleep(max(0.0, self._round_started + self.interval - time.monotonic()))
            await self.run_round()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="discovery-prober")

    async def stop(self) -> None:
        """Stop the background rounds and close the health channels. Never raises."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.checker.close()

    async def run_round(self) -> discovery_pb2.Membership:
        """List, publish, probe, publish once; returns the resulting snapshot. Never raises."""
        async with self._round_lock:
            self._round_started = time.monotonic()
            await self._list_backend()
            self._publish()
            await self._probe_all()
            self._publish()
            self.rounds += 1
            return self.board.current()

    async def run_list_round(self) -> discovery_pb2.Membership:
        """List and publish without probing; returns the resulting snapshot. Never raises.

        Run when the back end says it changed: a removal (or an outage) is published at
        once, a new instance appears as HEALTH_UNKNOWN and is probed at the next round.
        """
        async with self._round_lock:
            await self._list_backend()
            self._publish()
            self.list_rounds += 1
            return self.board.current()

    def _subscribe(self, loop: asyncio.AbstractEventLoop) -> None:
        def notify() -> None:  # called from the back end's threads
            try:
                loop.call_soon_threadsafe(self._changed.set)
            except RuntimeError:  # the loop is closed: the service is shutting down
                pass

        subscribe = getattr(self.backend, "subscribe", None)  # a plugin may lack it
        if subscribe is None:
            return
        try:
            subscribe(notify)
        except Exception:  # a plugin bug: fall back to listing every interval
            log.exception("discovery back end could not subscribe to changes")

    def _undecided(self) -> bool:
        return any(t.health == discovery_pb2.HEALTH_UNKNOWN for t in self._tracked.values())

    async def _loop(self) -> None:
        while True:
            # Rounds start every `interval` seconds; a slow round delays only the next one.
            # A change the back end signals in between is listed and published at once.
            delay = self._round_started + self.interval - time.monotonic()
            changed = delay > 0 and await self._change_within(delay)
            self._changed.clear()  # a full round lists too, so it covers a pending change
            try:
                if changed:
                    await self.run_list_round()
                else:
                    await self.run_round()
            except Exception:  # a broken round must not end probing for good
                log.exception("discovery round failed")

    async def _change_within(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _list_backend(self) -> None:
        try:
            specs = await self.backend.list_instances()
            _check_unique(specs)
        except BackendUnavailable as exc:
            self._backend_unavailable(str(exc) or type(exc).__name__)
            return
        except Exception as exc:  # a plugin bug: keep the last list, say so, keep going
            log.exception("discovery back end raised an unexpected error")
            self._backend_unavailable(f"{type(exc).__name__}: {exc}")
            return
        if not self._backend_ok:
            log.info("discovery back end readable: %d instances", len(specs))
        self._backend_ok, self._backend_error = True, ""
        self._reconcile(specs)

    def _backend_unavailable(self, error: str) -> None:
        if self._backend_ok or error != self._backend_error:
            log.warning(
                "discovery back end unavailable, keeping %d known instances: %s",
                len(self._tracked),
                error,
            )
        self._backend_ok, self._backend_error = False, error

    def _reconcile(self, specs: list[InstanceSpec]) -> None:
        wanted = {spec.identity: spec for spec in specs}
        for identity in [i for i in self._tracked if i not in wanted]:
            log.info("instance %s left", identity)
            del self._tracked[identity]
        for identity, spec in wanted.items():
            tracked = self._tracked.get(identity)
            if tracked is None:
                log.info("instance %s joined at %s as %s", identity, spec.address, spec.role)
                self._tracked[identity] = _Tracked(spec)
            elif tracked.spec != spec:
                if tracked.spec.address != spec.address:
                    log.info("instance %s moved to %s", identity, spec.address)
                    tracked.health, tracked.reason, tracked.good_streak = (
                        discovery_pb2.HEALTH_UNKNOWN,
                        "",
                        0,
                    )
                if tracked.spec.role != spec.role:
                    log.info("instance %s is now %s", identity, spec.role)
                tracked.spec = spec

    async def _probe_all(self) -> None:
        targets = [(t.spec.identity, t.spec.address) for t in self._tracked.values()]
        results = await asyncio.gather(*(self._probe(address) for _, address in targets))
        for (identity, address), result in zip(targets, results):
            tracked = self._tracked.get(identity)
            if tracked is not None and tracked.spec.address == address:
                self._apply(tracked, result)
        await self.checker.retain({t.spec.address for t in self._tracked.values()})

    async def _probe(self, address: str) -> ProbeResult:
        try:
            # The margin lets the checker report its own timeout, with its own words.
            return await asyncio.wait_for(self.checker.check(address, self.timeout), self.timeout + 1.0)
        except TimeoutError:
            return ProbeResult(False, f"health probe timed out after {self.timeout:g}s")
        except Exception as exc:  # noqa: BLE001 (any probe failure means the instance is down)
            return ProbeResult(False, f"{type(exc).__name__}: {exc}")

    def _apply(self, tracked: _Tracked, result: ProbeResult) -> None:
        identity = tracked.spec.identity
        if not result.healthy:
            metrics.DISCOVERY_PROBE_FAILURES.labels(identity).inc()
            reason = result.reason or "unhealthy"
            if tracked.health != discovery_pb2.DOWN:
                log.warning("instance %s is down: %s", identity, reason)
            tracked.health, tracked.reason, tracked.good_streak = (
                discovery_pb2.DOWN,
                reason,
                0,
            )
            return
        tracked.good_streak += 1
        if tracked.health != discovery_pb2.HEALTHY and tracked.good_streak >= self.healthy_after:
            log.info("instance %s is healthy", identity)
            tracked.health, tracked.reason = discovery_pb2.HEALTHY, ""

    def _publish(self) -> None:
        self.board.publish(
            (t.to_proto() for t in self._tracked.values()),
            backend_ok=self._backend_ok,
            backend_error=self._backend_error,
        )
        record_membership(self.board.current())


def record_membership(membership: discovery_pb2.Membership) -> None:
    """Set the membership gauges: instances by role and health, and the version."""
    counts = {(role, health): 0 for role in ("writable", "readonly") for health in ("healthy", "down", "unknown")}
    for inst in membership.instances:
        role = "writable" if inst.role == discovery_pb2.WRITABLE else "readonly"
        health = {discovery_pb2.HEALTHY: "healthy", discovery_pb2.DOWN: "down"}.get(inst.health, "unknown")
        counts[(role, health)] += 1
    for (role, health), count in counts.items():
        metrics.DISCOVERY_INSTANCES.labels(role, health).set(count)
    metrics.DISCOVERY_MEMBERSHIP_VERSION.set(membership.version)


def _check_unique(specs: list[InstanceSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.identity in seen:
            raise BackendUnavailable(f"back end listed identity {spec.identity} twice")
        seen.add(spec.identity)
