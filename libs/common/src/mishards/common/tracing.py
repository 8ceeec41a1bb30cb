"""OpenTelemetry tracing of every service, configured by the original Mishards settings.

`TRACER_CLASS_NAME` names a tracer plugin: `Jaeger` (built in) exports OTLP/gRPC to
`TRACING_EXPORTER_ENDPOINT`, which Jaeger accepts natively; a user class is found in
`TRACER_PLUGIN_PATH`; empty disables tracing (spans are then no-ops). The sampler follows
Jaeger's types (`const`, `probabilistic`, `ratelimiting`) and the parent's decision, so a
trace is sampled in all services or in none.

`main()` calls `setup_tracing()` once; tests call it with their own exporter. Trace context
travels in gRPC metadata (W3C `traceparent`), see `mishards.common.interceptors`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mishards.common.plugins import Registry
from mishards.common.settings import Settings

INSTRUMENTATION = "mishards"
PROPAGATOR = TraceContextTextMapPropagator()


class TracerPlugin(Protocol):
    """A tracer class named by TRACER_CLASS_NAME: built with the settings, it gives the span exporter.

    `exporter()` may raise to stop the service at start with a clear message.
    """

    def __init__(self, settings: Settings) -> None: ...

    def exporter(self) -> SpanExporter: ...


class JaegerTracer:
    """Exports OTLP/gRPC to TRACING_EXPORTER_ENDPOINT (Jaeger's collector port 4317)."""

    def __init__(self, settings: Settings) -> None:
        self.endpoint = settings.TRACING_EXPORTER_ENDPOINT

    def exporter(self) -> SpanExporter:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=self.endpoint, insecure=self.endpoint.startswith("http://"))


def tracer_registry() -> Registry[Any]:
    """The built-in tracers by name."""
    registry: Registry[Any] = Registry("tracer")
    registry.register("Jaeger", JaegerTracer)
    return registry


class RateLimitingSampler(Sampler):
    """Jaeger's `ratelimiting` sampler: at most `per_second` new traces a second (token bucket)."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._balance = max(per_second, 1.0)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Any = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        with self._lock:
            now = time.monotonic()
            self._balance = min(max(self.per_second, 1.0), self._balance + (now - self._last) * self.per_second)
            self._last = now
            take = self._balance >= 1.0
            if take:
                self._balance -= 1.0
        return SamplingResult(Decision.RECORD_AND_SAMPLE if take else Decision.DROP, attributes)

    def get_description(self) -> str:
        return f"RateLimitingSampler{{{self.per_second}}}"


def make_sampler(settings: Settings) -> Sampler:
    """The root sampler TRACING_SAMPLER_TYPE/PARAM ask for; children follow their parent."""
    kind, param = settings.TRACING_SAMPLER_TYPE, settings.TRACING_SAMPLER_PARAM
    root: Sampler
    if kind == "probabilistic":
        root = TraceIdRatioBased(min(param, 1.0))
    elif kind == "ratelimiting":
        root = RateLimitingSampler(param)
    else:  # const
        root = ALWAYS_ON if param >= 1.0 else ALWAYS_OFF
    return ParentBased(root)


@dataclass
class _State:
    provider: TracerProvider | None = None
    log_payload: bool = False


_state = _State()


def setup_tracing(
    settings: Settings, service: str, exporter: SpanExporter | None = None, *, batch: bool = True
) -> TracerProvider | None:
    """Install the process's tracer provider; None (tracing off) when TRACER_CLASS_NAME is empty.

    `exporter` replaces the configured one (tests pass an in-memory exporter). The service
    name of the spans is `<TRACING_SERVICE_NAME>-<service>`. Raises PluginError for an
    unknown tracer name.
    """
    shutdown_tracing()
    _state.log_payload = settings.TRACING_LOG_PAYLOAD
    if exporter is None:
        if not settings.TRACER_CLASS_NAME:
            return None
        cls = tracer_registry().resolve(settings.TRACER_CLASS_NAME, settings.TRACER_PLUGIN_PATH)
        exporter = cls(settings).exporter()
    resource = Resource.create(
        {"service.name": f"{settings.TRACING_SERVICE_NAME}-{service}", "service.namespace": "mishards"}
    )
    provider = TracerProvider(resource=resource, sampler=make_sampler(settings))
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=1000) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    _state.provider = provider
    return provider


def setup_tracing_or_exit(settings: Settings, service: str) -> None:
    """`setup_tracing()` for a service's main(): a bad tracer setting exits 2 with a one-line message."""
    try:
        setup_tracing(settings, service)
    except Exception as exc:  # an unknown or broken tracer plugin, a bad exporter setting
        print(f"mishards-{service}: tracing: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def shutdown_tracing() -> None:
    """Flush and stop the installed provider (spans after this are no-ops)."""
    provider, _state.provider = _state.provider, None
    if provider is not None:
        provider.shutdown()


def get_tracer() -> trace.Tracer:
    """The tracer of the installed provider, or a no-op tracer when tracing is off."""
    provider = _state.provider
    return provider.get_tracer(INSTRUMENTATION) if provider is not None else trace.NoOpTracer()


def enabled() -> bool:
    return _state.provider is not None


# What `start_span` gives when tracing is off: one shared no-op, nothing built per request.
NO_SPAN: contextlib.AbstractContextManager[trace.Span] = contextlib.nullcontext(trace.INVALID_SPAN)


def start_span(name: str, **kwargs: Any) -> contextlib.AbstractContextManager[trace.Span]:
    """`start_as_current_span(name, **kwargs)` of the installed tracer; NO_SPAN when tracing is off."""
    provider = _state.provider
    if provider is None:
        return NO_SPAN
    return provider.get_tracer(INSTRUMENTATION).start_as_current_span(name, **kwargs)


def log_payload() -> bool:
    """True when TRACING_LOG_PAYLOAD asks for request summaries on spans."""
    return _state.log_payload


def inject(metadata: MutableSequence[tuple[str, str]]) -> None:
    """Append the current trace context (`traceparent`, `tracestate`) to gRPC metadata."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    metadata.extend(carrier.items())


def extract(metadata: Iterable[tuple[str, Any]] | None) -> otel_context.Context:
    """The trace context a caller sent in gRPC metadata (an empty context when none)."""
    carrier = {k: v for k, v in (metadata or ()) if isinstance(v, str)}
    return PROPAGATOR.extract(carrier)


# --- request summaries (TRACING_LOG_PAYLOAD): names and counts, never vectors or values --------------


def _kv(kvs: Any) -> dict[str, str]:
    try:
        return {kv.key: kv.value for kv in kvs}
    except (AttributeError, TypeError):
        return {}


def summarize_request(request: Any) -> dict[str, Any]:
    """Span attributes describing a request: collection, partitions, nq, topk/limit, row count."""
    out: dict[str, Any] = {}
    for name in ("db_name", "collection_name", "partition_name", "method"):
        value = getattr(request, name, None)
        if isinstance(value, str) and value:
            out[f"mishards.request.{name}"] = value
    for name in ("nq", "num_rows"):
        value = getattr(request, name, None)
        if isinstance(value, int) and value:
            out[f"mishards.request.{name}"] = value
    partitions = getattr(request, "partition_names", None)
    if partitions:
        out["mishards.request.partitions"] = len(partitions)
    params = _kv(getattr(request, "search_params", ())) or _kv(getattr(request, "query_params", ()))
    for key in ("topk", "limit", "offset"):
        if params.get(key):
            out[f"mishards.request.{key}"] = params[key]
    return out


def summarize_response(response: Any) -> dict[str, Any]:
    """Span attributes describing a response: row counts and hits, never the data."""
    out: dict[str, Any] = {}
    for name in ("insert_cnt", "delete_cnt", "upsert_cnt"):
        value = getattr(response, name, 0)
        if isinstance(value, int) and value:
            out[f"mishards.response.{name}"] = value
    results = getattr(response, "results", None)
    if results is not None and hasattr(results, "topks"):
        out["mishards.response.hits"] = int(sum(results.topks))
    return out
