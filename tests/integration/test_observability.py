"""Traces, metrics and the dashboard against running services.

- the span tree of a search over two shards (in-process router on the session cluster's meta
  and discovery, in-memory exporter);
- spans exported by running services (TRACER_CLASS_NAME=Jaeger) into an in-test OTLP/gRPC
  receiver, meta's spans in the router's traces;
- every metric the Grafana dashboard queries appears on a running router's /metrics.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pymilvus import MilvusClient

from mishards.cli.cluster import Cluster
from mishards.common import tracing
from mishards.common.settings import load_settings

DIM = 4
REPO = Path(__file__).resolve().parents[2]
SEARCH_SPAN = "milvus.proto.milvus.MilvusService/Search"


def fill(client: MilvusClient, name: str, rows: int = 40) -> None:
    client.create_collection(name, dimension=DIM, consistency_level="Strong")
    client.insert(name, [{"id": i, "vector": [float(i), 1.0, 2.0, float(i % 3)]} for i in range(rows)])


def http_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return str(r.read().decode())


def test_search_over_two_shards_is_one_span_tree(cluster: Cluster, router: MilvusClient, name: str) -> None:
    from mishards.router.main import RouterService

    fill(router, name)
    settings = load_settings(
        {
            "META_ADDRESS": cluster.meta_address,
            "DISCOVERY_ADDRESS": cluster.discovery_address,
            "SERVER_HOST": "127.0.0.1",
            "TRACING_LOG_PAYLOAD": "true",
        },
        None,
    )
    exporter = InMemorySpanExporter()
    tracing.setup_tracing(settings, "router", exporter, batch=False)

    async def run() -> None:
        service = RouterService(settings, port=0, metrics_port=0)
        await service.server.server.start()
        await service.on_start()
        try:

            def search() -> Any:
                client = MilvusClient(uri=f"http://127.0.0.1:{service.server.port}")
                try:
                    return client.search(name, data=[[1.0, 1.0, 2.0, 1.0]], limit=5, client_request_id="req-span-tree")
                finally:
                    client.close()

            hits = await asyncio.to_thread(search)
            assert len(hits[0]) == 5
            page = await asyncio.to_thread(http_get, service.http.port, "/topology.json")
            assert name in {c["name"] for c in json.loads(page)["collections"]}
        finally:
            await service.on_stop()
            await service.server.server.stop(0)

    try:
        asyncio.run(run())
    finally:
        tracing.shutdown_tracing()
    spans = exporter.get_finished_spans()
    root = next(
        s for s in spans if s.name == SEARCH_SPAN and s.attributes.get("mishards.request_id") == "req-span-tree"
    )
    assert root.kind == SpanKind.SERVER and root.parent is None
    assert root.attributes["mishards.request.collection_name"] == name and root.attributes["mishards.request.nq"] == 1
    children = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    shard_spans = [s for s in children if s.name == "shard Search"]
    assert sorted(s.attributes["mishards.shard"] for s in shard_spans) == [0, 1]
    instances = {i.address for i in cluster.writable_instances}
    for s in shard_spans:
        assert s.kind == SpanKind.CLIENT and s.context.trace_id == root.context.trace_id
        assert s.attributes["mishards.instance"] in instances
        assert s.attributes["mishards.copy_role"] == "primary" and s.attributes["mishards.retry_count"] == 0
    assert {s.attributes["mishards.instance"] for s in shard_spans} == instances  # one shard per instance
    (merge,) = [s for s in children if s.name == "merge search"]
    assert merge.start_time >= max(s.end_time for s in shard_spans)


# --- spans exported by running services ----------------------------------------------------------------


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver, as Jaeger's collector is on port 4317."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []  # (service.name, Span)
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC method name)
        with self.lock:
            for resource_spans in request.resource_spans:
                attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    self.spans.extend((attrs.get("service.name", ""), s) for s in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self) -> list[tuple[str, Any]]:
        with self.lock:
            return list(self.spans)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(0)


@pytest.fixture(scope="module")
def traced_cluster(tmp_path_factory: pytest.TempPathFactory, receiver: tuple[Receiver, int]) -> Iterator[Cluster]:
    env = {
        "TRACER_CLASS_NAME": "Jaeger",
        "TRACING_EXPORTER_ENDPOINT": f"http://127.0.0.1:{receiver[1]}",
        "TRACING_SERVICE_NAME": "mishards",
        "DEFAULT_SHARDS_NUM": "2",
    }
    c = Cluster(
        tmp_path_factory.mktemp("traced-cluster"), writable=2, backend="milvus-lite", router_port=0, extra_env=env
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()


def test_running_services_export_spans_over_otlp_and_meta_joins_the_trace(
    traced_cluster: Cluster, receiver: tuple[Receiver, int]
) -> None:
    client = MilvusClient(uri=traced_cluster.router_uri)
    try:
        fill(client, "traced")
        client.search("traced", data=[[1.0, 1.0, 2.0, 1.0]], limit=3, client_request_id="req-otlp")
    finally:
        client.close()
    deadline = time.monotonic() + 30
    while True:
        spans = receiver[0].snapshot()
        by_trace: dict[bytes, set[str]] = {}
        for service, span in spans:
            by_trace.setdefault(span.trace_id, set()).add(service)
        search = [
            s
            for _, s in spans
            if s.name == SEARCH_SPAN and any(a.value.string_value == "req-otlp" for a in s.attributes)
        ]
        joined = [t for t, services in by_trace.items() if {"mishards-router", "mishards-meta"} <= services]
        if (search and joined) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert search, f"no Search span from the router; got {sorted({s.name for _, s in spans})}"
    assert joined, f"no trace with both router and meta spans; services seen: {sorted({sv for sv, _ in spans})}"
    trace_id = search[0].trace_id
    in_trace = [s for _, s in spans if s.trace_id == trace_id]
    assert sorted(s.name for s in in_trace if s.name.startswith("shard ")) == ["shard Search", "shard Search"]
    assert any(s.name == "merge search" for s in in_trace)
    # A meta server span's parent is the router's client span of the same call.
    meta_spans = [s for sv, s in spans if sv == "mishards-meta" and s.trace_id in joined]
    router_ids = {s.span_id for sv, s in spans if sv == "mishards-router"}
    assert any(s.parent_span_id in router_ids for s in meta_spans)


# --- metrics and the dashboard ------------------------------------------------------------------------


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads((REPO / "deploy" / "dashboards" / "mishards.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    return {m for e in exprs for m in re.findall(r"\b(mishards_[a-z_]+)\b", e)}


def family(sample_name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", sample_name)


def test_every_dashboard_metric_is_on_the_router_metrics_page(
    cluster: Cluster, router: MilvusClient, name: str
) -> None:
    fill(router, name)
    router.search(name, data=[[1.0, 1.0, 2.0, 1.0]], limit=3)
    router.query(name, filter="id < 5", output_fields=["id"])
    router.query(name, output_fields=["count(*)"])
    text = http_get(cluster.ports["router_metrics"], "/metrics")
    declared = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    missing = sorted(m for m in dashboard_metric_names() if family(m) not in declared and m not in declared)
    assert not missing, f"dashboard queries metrics the router does not expose: {missing}"
    # The data path is measured, not only declared.
    assert total(text, "mishards_rpc_requests_total", service="router", method="Search", milvus_code="0") >= 1
    assert total(text, "mishards_router_backend_call_duration_seconds_count", method="Search") >= 2
    assert total(text, "mishards_router_merge_duration_seconds_count", kind="count") >= 1
    assert total(text, "mishards_router_rows_written_total", method="Insert") >= 40
    assert total(text, "mishards_router_copies", state="ready") >= 2
    assert total(text, "mishards_router_fanout_width_count", method="Query") >= 2
    discovery = http_get(cluster.ports["discovery_metrics"], "/metrics")
    assert total(discovery, "mishards_discovery_instances", role="writable", health="healthy") == 2
    meta = http_get(cluster.ports["meta_metrics"], "/metrics")
    assert total(meta, "mishards_rpc_requests_total", service="meta", method="ExecuteDdl") >= 1


def total(exposition: str, sample: str, **labels: str) -> float:
    """The sum of the samples named `sample` whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        s.value
        for fam in text_string_to_metric_families(exposition)
        for s in fam.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )
