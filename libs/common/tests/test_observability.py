"""Tracing, request ids, RPC metrics, the /metrics server and the log setup, in-process."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mishards.common import metrics, tracing
from mishards.common.interceptors import TelemetryServerInterceptor
from mishards.common.logs import REQUEST_ID, setup_logging
from mishards.common.plugins import PluginError
from mishards.common.server import insecure_channel
from mishards.common.settings import SettingsError, load_settings

SERVICE = "test.Echo"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    tracing.setup_tracing(load_settings({"TRACER_CLASS_NAME": ""}, None), "test", memory, batch=False)
    yield memory
    tracing.shutdown_tracing()


def _echo_server(seen: list[str]) -> tuple[grpc.aio.Server, int]:
    async def say(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append(REQUEST_ID.get())
        logging.getLogger("test.echo").info("echo %d bytes", len(request))
        if request == b"boom":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "boom")
        return request

    server = grpc.aio.server(interceptors=[TelemetryServerInterceptor("echo")])
    handler = grpc.method_handlers_generic_handler(SERVICE, {"Say": grpc.unary_unary_rpc_method_handler(say)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    return server, port


def _count(name: str, labels: dict[str, str]) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_trace_context_and_request_id_cross_the_call(exporter: InMemorySpanExporter) -> None:
    seen: list[str] = []

    async def run() -> None:
        server, port = _echo_server(seen)
        await server.start()
        channel = insecure_channel(f"127.0.0.1:{port}")
        try:
            say = channel.unary_unary(f"/{SERVICE}/Say")
            with tracing.get_tracer().start_as_current_span("caller"):
                assert await say(b"hi", metadata=(("client-request-id", "req-42"),)) == b"hi"
            with pytest.raises(grpc.aio.AioRpcError):
                await say(b"boom")
        finally:
            await channel.close()
            await server.stop(0)

    before = _count(
        "mishards_rpc_requests_total", {"component": "echo", "method": "Say", "grpc_code": "OK", "milvus_code": ""}
    )
    asyncio.run(run())
    spans = exporter.get_finished_spans()
    caller = next(s for s in spans if s.name == "caller")
    client = next(
        s for s in spans if s.kind == SpanKind.CLIENT and s.parent and s.parent.span_id == caller.context.span_id
    )
    server = next(s for s in spans if s.kind == SpanKind.SERVER and s.attributes["mishards.request_id"] == "req-42")
    assert client.context.trace_id == server.context.trace_id == caller.context.trace_id
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert server.name == f"{SERVICE}/Say"
    assert seen[0] == "req-42" and seen[1] not in ("", "-", "req-42")  # a fresh id when the client sent none
    failed = [s for s in spans if s.kind == SpanKind.SERVER and not s.status.is_ok]
    assert len(failed) == 1 and "boom" in (failed[0].status.description or "")
    after = _count(
        "mishards_rpc_requests_total", {"component": "echo", "method": "Say", "grpc_code": "OK", "milvus_code": ""}
    )
    assert after == before + 1
    assert (
        _count(
            "mishards_rpc_requests_total",
            {"component": "echo", "method": "Say", "grpc_code": "INVALID_ARGUMENT", "milvus_code": ""},
        )
        >= 1
    )
    assert REQUEST_ID.get() == "-"


def test_in_flight_has_a_sample_before_the_first_unary_rpc() -> None:
    assert metrics.REGISTRY.get_sample_value("mishards_rpc_in_flight", {"component": "svc-idle"}) is None
    TelemetryServerInterceptor("svc-idle")
    assert metrics.REGISTRY.get_sample_value("mishards_rpc_in_flight", {"component": "svc-idle"}) == 0.0


# Labels Prometheus (job, instance) or the Prometheus Operator's ServiceMonitor/PodMonitor set on
# every target: a metric label of the same name would be renamed to exported_<name> at scrape time.
TARGET_LABELS = {"job", "instance", "namespace", "service", "pod", "container", "endpoint", "node"}


def test_no_metric_label_clashes_with_a_target_label() -> None:
    from prometheus_client.metrics import MetricWrapperBase

    families = [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]
    assert len(families) >= 14
    # prometheus_client keeps a family's label names in _labelnames (no public accessor)
    clashing = {f._name: set(f._labelnames) & TARGET_LABELS for f in families if set(f._labelnames) & TARGET_LABELS}
    assert not clashing, clashing


def test_tracing_off_means_no_spans_and_no_error() -> None:
    assert tracing.setup_tracing(load_settings({}, None), "test") is None
    assert not tracing.enabled()
    with tracing.get_tracer().start_as_current_span("nothing") as span:
        assert not span.get_span_context().is_valid
    pairs: list[tuple[str, str]] = []
    tracing.inject(pairs)
    assert pairs == []


@pytest.mark.parametrize(
    "kind,param,sampled",
    [
        ("const", "1", 20),
        ("const", "0", 0),
        ("probabilistic", "0", 0),
        ("probabilistic", "1", 20),
        ("ratelimiting", "5", 5),
    ],
)
def test_samplers_follow_jaeger_types(kind: str, param: str, sampled: int) -> None:
    memory = InMemorySpanExporter()
    settings = load_settings({"TRACING_SAMPLER_TYPE": kind, "TRACING_SAMPLER_PARAM": param}, None)
    tracing.setup_tracing(settings, "test", memory, batch=False)
    try:
        for _ in range(20):
            with tracing.get_tracer().start_as_current_span("root"):
                with tracing.get_tracer().start_as_current_span("child"):
                    pass
    finally:
        tracing.shutdown_tracing()
    roots = [s for s in memory.get_finished_spans() if s.name == "root"]
    assert len(roots) == sampled
    # Children follow their parent's decision.
    assert len([s for s in memory.get_finished_spans() if s.name == "child"]) == sampled


def test_jaeger_tracer_builds_an_otlp_exporter_and_unknown_tracers_are_named() -> None:
    provider = tracing.setup_tracing(
        load_settings({"TRACER_CLASS_NAME": "Jaeger", "TRACING_EXPORTER_ENDPOINT": "http://127.0.0.1:1"}, None), "test"
    )
    try:
        assert provider is not None
        assert provider.resource.attributes["service.name"] == "mishards-test"
    finally:
        tracing.shutdown_tracing()
    with pytest.raises(PluginError, match="Jaeger"):
        tracing.setup_tracing(load_settings({"TRACER_CLASS_NAME": "Zipkin"}, None), "test")
    with pytest.raises(SettingsError, match="TRACING_EXPORTER_ENDPOINT"):
        load_settings({"TRACING_EXPORTER_ENDPOINT": "127.0.0.1:4317"}, None)


def test_user_tracer_class_from_plugin_path(tmp_path: Path) -> None:
    (tmp_path / "my_tracer.py").write_text(
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "EXPORTER = InMemorySpanExporter()\n"
        "class MyTracer:\n"
        "    def __init__(self, settings):\n"
        "        self.settings = settings\n"
        "    def exporter(self):\n"
        "        return EXPORTER\n"
    )
    settings = load_settings({"TRACER_CLASS_NAME": "MyTracer", "TRACER_PLUGIN_PATH": str(tmp_path)}, None)
    assert tracing.setup_tracing(settings, "test", batch=False) is not None
    try:
        with tracing.get_tracer().start_as_current_span("user"):
            pass
    finally:
        tracing.shutdown_tracing()
    import sys

    module = next(m for n, m in sys.modules.items() if n.endswith("_my_tracer"))
    assert [s.name for s in module.EXPORTER.get_finished_spans()] == ["user"]


def test_payload_summaries_never_carry_vectors() -> None:
    from pymilvus.grpc_gen import common_pb2, milvus_pb2

    req = milvus_pb2.SearchRequest(collection_name="c", nq=3, placeholder_group=b"\x01\x02secret-vector")
    req.search_params.add(key="topk", value="10")
    summary = tracing.summarize_request(req)
    assert summary == {"mishards.request.collection_name": "c", "mishards.request.nq": 3, "mishards.request.topk": "10"}
    assert not any(isinstance(v, bytes) for v in summary.values())
    res = milvus_pb2.MutationResult(status=common_pb2.Status(), insert_cnt=7)
    assert tracing.summarize_response(res) == {"mishards.response.insert_cnt": 7}


def test_http_server_serves_metrics_extra_routes_and_404() -> None:
    async def hello() -> metrics.Response:
        return metrics.Response(200, "text/plain", b"hello")

    async def run() -> tuple[str, str, int]:
        server = metrics.HttpServer("127.0.0.1", 0, {"/hello": hello})
        await server.start()
        try:
            assert server.port > 0

            def get(path: str) -> str:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
                    return str(r.read().decode())

            exposition = await asyncio.to_thread(get, "/metrics")
            greeting = await asyncio.to_thread(get, "/hello")
            try:
                await asyncio.to_thread(get, "/nope")
                code = 200
            except urllib.error.HTTPError as exc:
                code = exc.code
            return exposition, greeting, code
        finally:
            await server.stop()

    exposition, greeting, code = asyncio.run(run())
    assert "# TYPE mishards_rpc_requests_total counter" in exposition
    assert "mishards_router_backend_call_duration_seconds" in exposition
    assert greeting == "hello" and code == 404
    assert metrics.default_port(0, "router") == 9191 and metrics.default_port(0, "meta") == 9192
    assert metrics.default_port(0, "discovery") == 9193 and metrics.default_port(9999, "meta") == 9999


def test_json_log_lines_carry_the_request_id_and_hide_secrets(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "LOG_PATH": str(tmp_path),
            "LOG_NAME": "t",
            "LOG_FORMAT": "json",
            "LOG_MAX_BYTES": "4096",
            "LOG_BACKUP_COUNT": "2",
            "MILVUS_BACKEND_TOKEN": "root:Milvus",
        },
        None,
    )
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        setup_logging(settings, "svc")
        for i in range(100):  # enough to rotate at 4 KB
            logging.getLogger("x").info("line %d %s", i, "." * 60)
        token = REQUEST_ID.set("abc-123")
        logging.getLogger("x").info("settings %r", settings)
        REQUEST_ID.reset(token)
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t-svc.log", "t-svc.log.1", "t-svc.log.2"]
    lines = [json.loads(line) for line in (tmp_path / "t-svc.log").read_text().splitlines()]
    assert lines[-1]["request_id"] == "abc-123" and lines[-1]["logger"] == "x" and lines[-1]["level"] == "INFO"
    assert "root:Milvus" not in lines[-1]["message"] and "MILVUS_BACKEND_TOKEN" in lines[-1]["message"]
    earlier = json.loads((tmp_path / "t-svc.log.1").read_text().splitlines()[-1])
    assert earlier["request_id"] == "-" and earlier["message"].startswith("line ")


def test_timezone_is_validated() -> None:
    with pytest.raises(SettingsError, match="TIMEZONE"):
        load_settings({"TIMEZONE": "Mars/Olympus"}, None)
    assert load_settings({"TIMEZONE": "Europe/Berlin"}, None).TIMEZONE == "Europe/Berlin"


@pytest.mark.parametrize(("debug", "level"), [("true", logging.DEBUG), ("false", logging.WARNING)])
def test_debug_mode_logs_at_debug_whatever_log_level_says(tmp_path: Path, debug: str, level: int) -> None:
    settings = load_settings({"DEBUG": debug, "LOG_LEVEL": "WARNING", "LOG_PATH": ""}, None)
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        setup_logging(settings, "svc")
        assert root.level == level
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
