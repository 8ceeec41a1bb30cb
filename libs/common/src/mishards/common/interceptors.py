"""gRPC interceptors that carry traces, request ids and RPC metrics across every service.

Server side (`TelemetryServerInterceptor`, one per server): a span per unary RPC, child
of the caller's trace context from the metadata; the request id (the client's
`client-request-id`, else a fresh one) as a span attribute and on every log line of the
request; requests and latency by method and status code. Client side
(`client_interceptors()`, on the channels to meta and discovery): a client span per unary
call and the trace context in the outgoing metadata, so meta's and discovery's spans join
the caller's trace.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from mishards.common import metrics, tracing
from mishards.common.logs import REQUEST_ID
from mishards.common.milvus_messages import EncodedAnswer

log = logging.getLogger(__name__)

CLIENT_REQUEST_ID = "client-request-id"
# Health checks come every fraction of a second from probes; they are neither traced nor counted.
UNTRACED_PREFIXES = ("/grpc.health.v1.",)

_ROW_COUNTS = {"Insert": "insert_cnt", "Upsert": "upsert_cnt", "Delete": "delete_cnt"}

# (method, code, message) of an RPC that answered an error; the router keeps the recent ones.
ErrorHook = Callable[[str, str, str], None]


def _method_name(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


def milvus_status(response: Any) -> Any | None:
    """The Milvus common.Status a response carries (itself or its `status` field), None if none."""
    if response is None:
        return None
    if type(response) is EncodedAnswer:
        return response.status
    descriptor = getattr(response, "DESCRIPTOR", None)
    if descriptor is None:
        return None
    if descriptor.full_name == "milvus.proto.common.Status":
        return response
    if "status" in descriptor.fields_by_name:
        status = response.status
        if (
            getattr(status, "DESCRIPTOR", None) is not None
            and status.DESCRIPTOR.full_name == "milvus.proto.common.Status"
        ):
            return status
    return None


# Fresh request ids: a random prefix per process and a counter (no system call per request).
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def request_id_of(metadata: Any) -> str:
    """The client's `client-request-id` when it sent a non-empty one, else a fresh id."""
    for key, value in metadata or ():
        if key == CLIENT_REQUEST_ID and value:
            return str(value)[:128]
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


class TelemetryServerInterceptor(grpc.aio.ServerInterceptor):
    """Spans, request ids and RPC metrics for every unary RPC of one service's server."""

    def __init__(self, service: str, on_error: ErrorHook | None = None, count_rows: bool = False) -> None:
        self.service = service
        self.on_error = on_error
        # The router counts the rows of the Milvus mutations it acknowledged.
        self.count_rows = count_rows
        # method -> (the service's handler, its wrapper): wrappers are built once per method
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        # In flight reads 0 from the start: a service that has served only streams so far still has a sample.
        metrics.RPC_IN_FLIGHT.labels(service)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        full = _method_name(handler_call_details.method)
        if handler is None or full.startswith(UNTRACED_PREFIXES):
            return handler
        cached = self._wrapped.get(full)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(full, handler)
        self._wrapped[full] = (handler, wrapped)
        return wrapped

    def wrap(self, full: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler of method `full` with telemetry around it.

        A server can wrap its handlers once at registration with this instead of installing the
        interceptor: grpc.aio then runs no interceptor chain per call.
        """
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(full, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(full, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, full: str, behavior: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        method = full.rsplit("/", 1)[-1]
        rpc_service = full.strip("/").rsplit("/", 1)[0]

        # label children resolved once per method, not per request
        in_flight = metrics.RPC_IN_FLIGHT.labels(self.service)
        duration = metrics.RPC_DURATION.labels(self.service, method)
        requests: dict[tuple[str, str], Any] = {}

        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = context.invocation_metadata()
            request_id = request_id_of(metadata)
            token = REQUEST_ID.set(request_id)
            span_cm = tracing.NO_SPAN
            if tracing.enabled():
                attributes: dict[str, Any] = {
                    "rpc.system": "grpc",
                    "rpc.service": rpc_service,
                    "rpc.method": method,
                    "mishards.service": self.service,
                    "mishards.request_id": request_id,
                }
                if tracing.log_payload():
                    attributes.update(tracing.summarize_request(request))
                span_cm = tracing.start_span(
                    full.lstrip("/"),
                    context=tracing.extract(metadata),
                    kind=SpanKind.SERVER,
                    attributes=attributes,
                    record_exception=False,
                    set_status_on_exception=False,
                )
            grpc_code, milvus_code, message = "OK", "", ""
            started = time.perf_counter()
            in_flight.inc()
            try:
                with span_cm as span:
                    try:
                        response = await behavior(request, context)
                    except grpc.aio.AbortError:
                        code = context.code() if hasattr(context, "code") else None
                        grpc_code = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
                        message = str(context.details() or "") if hasattr(context, "details") else ""
                        span.set_status(Status(StatusCode.ERROR, message or grpc_code))
                        raise
                    except BaseException as exc:
                        grpc_code, message = "UNKNOWN", str(exc)
                        span.record_exception(exc)
                        span.set_status(Status(StatusCode.ERROR, message))
                        raise
                    status = milvus_status(response)
                    if status is not None:
                        code_value = status.code or (status.error_code and 65535)
                        milvus_code = str(code_value)
                        span.set_attribute("mishards.milvus_code", code_value)
                        if code_value:
                            message = status.reason
                            span.set_status(Status(StatusCode.ERROR, status.reason[:256]))
                    if tracing.log_payload():
                        span.set_attributes(tracing.summarize_response(response))
                    if self.count_rows and milvus_code == "0" and method in _ROW_COUNTS:
                        rows = getattr(response, _ROW_COUNTS[method], 0)
                        if rows:
                            metrics.ROWS_WRITTEN.labels(method).inc(rows)
                    return response
            finally:
                in_flight.dec()
                duration.observe(time.perf_counter() - started)
                counter = requests.get((grpc_code, milvus_code))
                if counter is None:
                    counter = requests[(grpc_code, milvus_code)] = metrics.RPC_REQUESTS.labels(
                        self.service, method, grpc_code, milvus_code
                    )
                counter.inc()
                if self.on_error is not None and (grpc_code != "OK" or milvus_code not in ("", "0")):
                    try:
                        self.on_error(method, milvus_code if grpc_code == "OK" else grpc_code, message)
                    except Exception:  # a broken hook must never break the RPC
                        log.exception("error hook failed")
                REQUEST_ID.reset(token)

        return wrapper

    def _stream(self, full: str, behavior: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
        method = full.rsplit("/", 1)[-1]

        # Streams (watches) live for hours: no span and no latency, only the request id and a count.
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            token = REQUEST_ID.set(request_id_of(context.invocation_metadata()))
            metrics.RPC_REQUESTS.labels(self.service, method, "OK", "").inc()
            result = behavior(request, context)
            try:
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:  # a handler that writes with context.write() and returns
                    await result
            finally:
                # A cancelled stream must end the handler's generator now (it unregisters its watcher).
                if hasattr(result, "aclose"):
                    await result.aclose()
                REQUEST_ID.reset(token)

        return wrapper


def _with_trace_context(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    pairs: list[tuple[str, str]] = []
    tracing.inject(pairs)
    if not pairs:
        return details
    metadata = grpc.aio.Metadata(*tuple(details.metadata or ()))
    for key, value in pairs:
        metadata.add(key, value)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class TracingUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    """A client span per unary call; the trace context goes along in the metadata."""

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        if not tracing.enabled():
            return await continuation(client_call_details, request)
        full = _method_name(client_call_details.method)
        with tracing.start_span(
            full.lstrip("/"),
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.method": full.rsplit("/", 1)[-1]},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            call = await continuation(_with_trace_context(client_call_details), request)
            try:
                await call
            except grpc.aio.AioRpcError as exc:
                span.set_status(Status(StatusCode.ERROR, f"{exc.code().name}: {exc.details()}"))
                span.set_attribute("rpc.grpc.status_code", exc.code().value[0])
            return call


class TracingUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    """Watch streams: only the trace context (a span would last as long as the stream)."""

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_trace_context(client_call_details), request)


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """The interceptors of channels to Mishards services (meta, discovery)."""
    return [TracingUnaryUnary(), TracingUnaryStream()]


def current_span() -> trace.Span:
    return trace.get_current_span()
