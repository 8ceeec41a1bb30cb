"""One concurrent call per shard copy: the single place the router talks to Milvus instances."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf import message as pb_message
from opentelemetry.trace import SpanKind, Status, StatusCode
from pymilvus.grpc_gen import common_pb2

from mishards.common import errors, metrics, tracing
from mishards.common.backends import BackendPool
from mishards.common.errors import MilvusError
from mishards.router import passthrough
from mishards.router.catalog import CollectionView
from mishards.router.topology import Target
from mishards.v1 import meta_pb2


def rename_status(st: common_pb2.Status, view: CollectionView) -> common_pb2.Status:
    """A backend status with physical collection names replaced by the client's name."""
    if not st.reason:
        return st
    out = common_pb2.Status()
    out.CopyFrom(st)
    for physical in view.physical_names():
        out.reason = out.reason.replace(physical, view.name)
    return out


def _status(response: Any) -> common_pb2.Status:
    return response if isinstance(response, common_pb2.Status) else response.status


@dataclass
class Failover:
    """How a read survives a copy that does not answer: the next copy, up to `retries` more tries."""

    retries: int = 0
    backoff: float = 0.05
    on_failure: Callable[[str], None] | None = None  # told the address that did not answer
    started: Callable[[Target], None] | None = None  # outstanding-request accounting of the read strategy
    finished: Callable[[Target], None] | None = None


NO_FAILOVER = Failover()
# A shard's request built for the copy it goes to.
PerTarget = Callable[[Target], pb_message.Message]


# Backend answers that mean "this copy cannot serve now" rather than "your request is wrong".
# A copy's collection missing on its backend means the copy moved away (the catalog says it exists).
COPY_UNAVAILABLE_CODES = {
    errors.SERVICE_NOT_READY,
    errors.SERVICE_UNAVAILABLE,
    errors.COLLECTION_NOT_FOUND,
    errors.COLLECTION_NOT_LOADED,
    503,
}


@dataclass(frozen=True)
class ShardCall:
    """One shard's part of a fan-out: the copies to try, best first, and the request they are sent."""

    shard: meta_pb2.ShardPlacement
    targets: Sequence[Target]
    request: pb_message.Message | PerTarget  # PerTarget: built for each copy (a read at that copy's clock)

    def request_for(self, target: Target) -> pb_message.Message:
        """What `target` is sent."""
        return self.request if isinstance(self.request, pb_message.Message) else self.request(target)


# Label children resolved once per (metric, labels): `labels()` takes a lock and builds a key per call.
_CHILDREN: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*labels)
    return child


def _shard_span(method: str, view: CollectionView, shard: int, target: Target, retry: int) -> Any:
    """The client span of one try (the shared no-op while tracing is off)."""
    if not tracing.enabled():
        return tracing.NO_SPAN
    attributes: dict[str, str | int] = {
        "rpc.system": "grpc",
        "rpc.method": method,
        "server.address": target.address,
        "mishards.collection": view.name,
        "mishards.instance": target.address,
        "mishards.shard": shard,
        "mishards.copy_role": target.role,
        "mishards.retry_count": retry,
    }
    return tracing.start_span(
        f"shard {method}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )


@dataclass(frozen=True)
class FanOut:
    """How one fan-out's tries reach the backends: which method, decoded or raw (`passthrough.RawAnswer`)."""

    backends: BackendPool
    view: CollectionView
    method: str
    timeout: float
    failover: Failover
    raw: bool = False

    async def attempt(self, shard: meta_pb2.ShardPlacement, target: Target, request: Any, retry: int) -> Any:
        """One try on one copy: the answer (its status may be an error), or MilvusError when it did not answer."""
        address, method, failover = target.address, self.method, self.failover
        with _shard_span(method, self.view, shard.index, target, retry) as span:
            started = time.perf_counter()
            if failover.started:
                failover.started(target)
            try:
                if self.raw:
                    data = await self.backends.raw(address, method)(
                        request, timeout=self.timeout, metadata=self.backends.metadata()
                    )
                    response: Any = passthrough.RawAnswer(data)
                else:
                    stub = self.backends.stub(address)
                    response = await getattr(stub, method)(
                        request, timeout=self.timeout, metadata=self.backends.metadata()
                    )
            except Exception as exc:
                _child(metrics.BACKEND_ERRORS, address, method).inc()
                span.set_status(Status(StatusCode.ERROR, str(exc)[:256]))
                raise MilvusError(
                    errors.SERVICE_UNAVAILABLE,
                    f"mishards: shard {shard.index} of collection {self.view.name} failed on {address}: {exc}",
                ) from exc
            finally:
                if failover.finished:
                    failover.finished(target)
                _child(metrics.BACKEND_DURATION, address, method).observe(time.perf_counter() - started)
            st = _status(response)
            if errors.is_error(st):
                _child(metrics.BACKEND_ERRORS, address, method).inc()
                span.set_status(Status(StatusCode.ERROR, st.reason[:256]))
            return response

    async def one(self, call: ShardCall) -> Any:
        """The shard's answer from its first copy that answers, trying the next ones as `failover` allows."""
        failover, copies = self.failover, call.targets
        retry = 0
        while True:
            target = copies[retry % len(copies)]
            try:
                response = await self.attempt(call.shard, target, call.request_for(target), retry)
                st = _status(response)
                if not (errors.is_error(st) and st.code in COPY_UNAVAILABLE_CODES and retry < failover.retries):
                    return response
            except MilvusError:
                if retry >= failover.retries:
                    raise
            if failover.on_failure:
                failover.on_failure(target.address)
            _child(metrics.RETRIES, self.method).inc()
            await asyncio.sleep(failover.backoff * (2 ** min(retry, 5)))
            retry += 1

    async def gather(self, calls: Sequence[ShardCall]) -> list[Any]:
        """Every shard's answer, all shards at once, in order; the first error status raised (client's names)."""
        _child(metrics.FANOUT_WIDTH, self.method).observe(len(calls))
        if len(calls) == 1:  # one shard: no task to schedule
            responses: Sequence[Any] = [await self.one(calls[0])]
        else:
            responses = await asyncio.gather(*(self.one(call) for call in calls))
        for response in responses:
            st = _status(response)
            if errors.is_error(st):
                raise MilvusError.from_status(rename_status(st, self.view))
        return list(responses)


async def call_shards(
    backends: BackendPool,
    view: CollectionView,
    method: str,
    calls: Sequence[ShardCall],
    timeout: float,
    failover: Failover = NO_FAILOVER,
    raw: bool = False,
) -> list[Any]:
    """Send each shard's request to its first copy, all shards at once; responses in order.

    A shard's request may depend on the copy it goes to (`PerTarget`: a read at that copy's clock).
    With `raw` the answers are left undecoded (`passthrough.RawAnswer`: the bytes and the status).

    A copy that does not answer (or answers that it cannot serve) is left for the shard's
    next copy, after a short backoff, up to `failover.retries` more tries. Raises
    MilvusError: SERVICE_UNAVAILABLE naming the shard when no copy answered, else the first
    backend error status (with the client's collection name). Each try is a child span
    (instance, shard, copy role, retry count) measured in
    `mishards_router_backend_call_duration_seconds` / `..._backend_errors_total`.
    """
    return await FanOut(backends, view, method, timeout, failover, raw).gather(calls)


class ShardCaller(Protocol):
    """How a Reader reaches the shards: `call_shards` with its backends bound (`functools.partial`).

    A test hands the Reader its own, answering from in-memory shards.
    """

    def __call__(
        self,
        view: CollectionView,
        method: str,
        calls: Sequence[ShardCall],
        timeout: float,
        failover: Failover = ...,
        raw: bool = False,
    ) -> Awaitable[list[Any]]: ...
