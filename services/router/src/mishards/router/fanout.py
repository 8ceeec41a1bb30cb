"""One concurrent call per shard copy: the single place the router talks to Milvus instances."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from google.protobuf import message as pb_message
from opentelemetry.trace import SpanKind, Status, StatusCode
from pymilvus.grpc_gen import common_pb2

from mishards.common import errors, metrics, tracing
from mishards.common.backends import BackendPool
from mishards.common.errors import MilvusError
from mishards.router.catalog import CollectionView
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


@contextlib.contextmanager
def merge_span(kind: str, shards: int) -> Iterator[None]:
    """A span around merging the shards' answers, timed in `mishards_router_merge_duration_seconds`."""
    started = time.perf_counter()
    with tracing.get_tracer().start_as_current_span(
        f"merge {kind}", attributes={"mishards.merge": kind, "mishards.shards": shards}
    ):
        yield
    metrics.MERGE_DURATION.labels(kind).observe(time.perf_counter() - started)


def _status(response: Any) -> common_pb2.Status:
    return response if isinstance(response, common_pb2.Status) else response.status


async def call_shards(
    backends: BackendPool,
    view: CollectionView,
    method: str,
    calls: Sequence[tuple[meta_pb2.ShardPlacement, str, pb_message.Message]],
    timeout: float,
) -> list[Any]:
    """Send each (shard, address, request) at once; responses in the same order.

    Raises MilvusError: SERVICE_UNAVAILABLE naming the shard when an instance does not
    answer, else the first backend error status (with the client's collection name).
    Each call is a child span (instance, shard, copy role, retry count) measured in
    `mishards_router_backend_call_duration_seconds` / `..._backend_errors_total`.
    """
    tracer = tracing.get_tracer()
    metrics.FANOUT_WIDTH.labels(method).observe(len(calls))

    async def one(shard: meta_pb2.ShardPlacement, address: str, request: pb_message.Message) -> Any:
        stub = backends.stub(address)
        attributes: dict[str, str | int] = {
            "rpc.system": "grpc",
            "rpc.method": method,
            "server.address": address,
            "mishards.collection": view.name,
            "mishards.instance": address,
            "mishards.shard": shard.index,
            "mishards.copy_role": "primary",
            "mishards.retry_count": 0,
        }
        with tracer.start_as_current_span(
            f"shard {method}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            started = time.perf_counter()
            try:
                response = await getattr(stub, method)(request, timeout=timeout, metadata=backends.metadata())
            except Exception as exc:
                metrics.BACKEND_ERRORS.labels(address, method).inc()
                span.set_status(Status(StatusCode.ERROR, str(exc)[:256]))
                raise MilvusError(
                    errors.SERVICE_UNAVAILABLE,
                    f"mishards: shard {shard.index} of collection {view.name} failed on {address}: {exc}",
                ) from exc
            finally:
                metrics.BACKEND_DURATION.labels(address, method).observe(time.perf_counter() - started)
            st = _status(response)
            if errors.is_error(st):
                metrics.BACKEND_ERRORS.labels(address, method).inc()
                span.set_status(Status(StatusCode.ERROR, st.reason[:256]))
            return response

    responses = await asyncio.gather(*(one(s, a, r) for s, a, r in calls))
    for response in responses:
        st = _status(response)
        if errors.is_error(st):
            raise MilvusError.from_status(rename_status(st, view))
    return list(responses)
