"""Traces, metrics and the dashboard against running services.

- the span tree of a search over two shards (in-process router on the session cluster's meta
  and discovery, in-memory exporter);
- spans exported by running services (TRACER_CLASS_NAME=Jaeger) into an in-test OTLP/gRPC
  receiver, meta's spans in the router's traces;
- every metric the Grafana dashboard queries has samples on the /metrics of the service that
  produces it (a cluster with a read-only replica, which is then killed: retries, backend
  errors, probe failures and replica lag all happen).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from mishards.cli.cluster import Cluster
from mishards.common import tracing
from mishards.common.settings import load_settings
from mishards.v1 import meta_pb2, meta_pb2_grpc

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

SERVICES = ("router", "meta", "discovery")
BACKEND_CALLS = "mishards_router_backend_call_duration_seconds_count"


@dataclass(frozen=True)
class Wanted:
    """A sample a dashboard query needs: its name, the services that produce it, its `label="value"` matchers."""

    sample: str
    services: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]


def dashboard_queries() -> list[str]:
    dashboard = json.loads((REPO / "deploy" / "dashboards" / "mishards.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    return exprs


def wanted_samples(expr: str) -> list[Wanted]:
    """Each metric a PromQL query names, with where it comes from.

    `mishards_<service>_...` comes from that service; the shared `mishards_rpc_...` families
    from the service their `service` label names, else from all three.
    """
    out = []
    for sample, selector in re.findall(r"\b(mishards_[a-z_]+)\b(\{[^}]*\})?", expr):
        labels = tuple(sorted(re.findall(r'(\w+)\s*=\s*"([^"]*)"', selector)))  # equality only, not != =~ !~
        area = sample.split("_")[1]
        if area in SERVICES:
            services: tuple[str, ...] = (area,)
        else:
            services = tuple(v for k, v in labels if k == "service") or SERVICES
        out.append(Wanted(sample, services, labels))
    return out


def test_dashboard_queries_name_their_producers() -> None:
    wanted = {w for e in dashboard_queries() for w in wanted_samples(e)}
    assert Wanted("mishards_rpc_in_flight", SERVICES, ()) in wanted
    assert Wanted("mishards_rpc_requests_total", ("router",), (("service", "router"),)) in wanted
    assert Wanted("mishards_meta_replica_lag_entries", ("meta",), ()) in wanted
    assert {w.services for w in wanted} >= {("router",), ("meta",), ("discovery",)}


def copy_states(cluster: Cluster) -> list[Any]:
    with grpc.insecure_channel(cluster.meta_address) as channel:
        return list(meta_pb2_grpc.MetaStub(channel).ListCopies(meta_pb2.ListCopiesRequest(), timeout=5).copies)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def replica_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One writable and one read-only instance: replicas, so lag, retries and probe failures can happen."""
    c = Cluster(
        tmp_path_factory.mktemp("metrics-cluster"),
        writable=1,
        readonly=1,
        backend=os.environ.get("MISHARDS_TEST_BACKEND", "milvus"),  # type: ignore[arg-type]
        router_port=0,
        extra_env={"DEFAULT_SHARDS_NUM": "2", "READ_REPLICAS": "1", "MAX_RETRY": "3"},
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()


def test_every_dashboard_metric_has_samples_on_the_service_that_produces_it(replica_cluster: Cluster) -> None:
    cluster = replica_cluster
    client = MilvusClient(uri=cluster.router_uri)
    name = "dashboard"
    fill(client, name)
    collection_id = int(client.describe_collection(name)["collection_id"])

    def replicas_caught_up() -> bool:
        copies = [c for c in copy_states(cluster) if c.collection_id == collection_id and c.role == "replica"]
        return len(copies) == 2 and all(c.state == "ready" and c.applied_seq == c.last_seq for c in copies)

    wait_for("the replicas to catch up", replicas_caught_up, 180)
    for level in ("Strong", "Bounded"):
        client.search(name, data=[[1.0, 1.0, 2.0, 1.0]], limit=3, consistency_level=level)
        client.query(name, filter="id < 5", output_fields=["id"], consistency_level=level)
        client.query(name, output_fields=["count(*)"], consistency_level=level)
    replica = cluster.readonly_instances[0]

    def replica_serves_bounded_searches() -> bool:
        def served() -> float:
            return total(scrape(cluster, "router"), BACKEND_CALLS, instance=replica.address, method="Search")

        before = served()
        client.search(name, data=[[1.0, 1.0, 2.0, 1.0]], limit=3, consistency_level="Bounded")
        return served() > before

    wait_for("the router to read from the replicas", replica_serves_bounded_searches, 30)
    # The replica stops serving while its instance stays up (its copies released behind
    # Mishards' back): reads sent to it fail and are retried on the primary. Killing the
    # instance first would race discovery, which takes a dead instance out of rotation
    # within a probe round, possibly before any read reached it.
    with grpc.insecure_channel(replica.address) as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        for k in range(2):
            release = milvus_pb2.ReleaseCollectionRequest(collection_name=f"mishards_{collection_id}_s{k}")
            assert stub.ReleaseCollection(release, timeout=30).error_code == 0

    def retried() -> bool:
        hits = client.search(name, data=[[1.0, 1.0, 2.0, 1.0]], limit=3, consistency_level="Bounded")
        assert len(hits[0]) == 3
        return total(scrape(cluster, "router"), "mishards_router_retries_total", method="Search") >= 1

    wait_for("a retried search", retried, 30)
    # The read-only instance dies: probes fail.
    replica.kill()
    wait_for(
        "a failed probe",
        lambda: (
            total(scrape(cluster, "discovery"), "mishards_discovery_probe_failures_total", instance=replica.identity)
            >= 1
        ),
    )
    pages = {service: scrape(cluster, service) for service in SERVICES}
    samples = {service: list(samples_of(page)) for service, page in pages.items()}
    missing = []
    for expr in dashboard_queries():
        for w in wanted_samples(expr):
            for service in w.services:
                if not any(n == w.sample and set(w.labels) <= set(lb.items()) for n, lb, _ in samples[service]):
                    missing.append(f"{w.sample}{dict(w.labels)} on {service}")
    assert not missing, f"dashboard queries with no sample on the service that produces them: {sorted(set(missing))}"
    # The data path is measured, not only present.
    router = pages["router"]
    assert total(router, "mishards_rpc_requests_total", service="router", method="Search", milvus_code="0") >= 3
    assert total(router, BACKEND_CALLS, method="Search") >= 6
    assert total(router, "mishards_router_backend_errors_total", instance=replica.address, method="Search") >= 1
    assert total(router, "mishards_router_merge_duration_seconds_count", kind="count") >= 2
    assert total(router, "mishards_router_rows_written_total", method="Insert") >= 40
    assert total(router, "mishards_router_fanout_width_count", method="Query") >= 4
    assert total(pages["meta"], "mishards_rpc_requests_total", service="meta", method="ExecuteDdl") >= 1
    assert total(pages["meta"], "mishards_meta_replica_lag_entries", collection=name) == 0  # caught up
    assert total(pages["discovery"], "mishards_discovery_instances", role="writable", health="healthy") == 1
    client.drop_collection(name)
    client.close()


def scrape(cluster: Cluster, service: str) -> str:
    return http_get(cluster.ports[f"{service}_metrics"], "/metrics")


def samples_of(exposition: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample of a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(exposition):
        for s in fam.samples:
            yield s.name, s.labels, s.value


def total(exposition: str, sample: str, **labels: str) -> float:
    """The sum of the samples named `sample` whose labels include `labels`."""
    return sum(
        value
        for name, sample_labels, value in samples_of(exposition)
        if name == sample and all(sample_labels.get(k) == v for k, v in labels.items())
    )
