"""Traces, metrics and the dashboard against running services.

- the span tree of a search over two shards (in-process router on the session cluster's meta
  and discovery, in-memory exporter);
- spans exported by running services (TRACER_CLASS_NAME=Jaeger) into an in-test OTLP/gRPC
  receiver, meta's spans in the router's traces;
- every query of the Grafana dashboard, evaluated by a real Prometheus (Debian's package) that
  scrapes the three services of a cluster with a read-only replica, which first fails reads and
  then dies (retries, backend errors, probe failures and replica lag all happen): each returns
  series with the labels its legend shows, per Milvus instance where the panel is.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import require_installed
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from mishards.cli.cluster import Cluster
from mishards.cli.ports import ephemeral_allocator
from mishards.common import tracing
from mishards.common.security import backend_metadata, with_metadata
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
            "MISHARDS_INTERNAL_TOKEN": cluster.internal_token,
            "MILVUS_BACKEND_TOKEN": cluster.backend_token,  # the instances run with authorization on
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
    secrets = [t for t in (cluster.backend_token.partition(":")[2], cluster.internal_token) if t]
    assert not [s.name for s in spans for t in secrets if t in str(dict(s.attributes or {}))], "a secret in a span"
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
    with c:  # started; stopped by PID on the way out
        yield c


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


# --- the dashboard, evaluated by a real Prometheus -------------------------------------------------------

PROMETHEUS = "/usr/bin/prometheus"  # Debian's package; .ci/run installs it
SCRAPE_INTERVAL = 1  # seconds
# Grafana sets $__rate_interval to max(step + scrape interval, 4 x scrape interval): 4 intervals here.
RATE_WINDOW = f"{4 * SCRAPE_INTERVAL}s"
SERVICES = ("router", "meta", "discovery")
BACKEND_CALLS = "mishards_router_backend_call_duration_seconds_count"
DASHBOARD = REPO / "deploy" / "dashboards" / "mishards.json"
# Panels allowed to show nothing, each with its reason. None: the workload causes every event.
EXEMPT: dict[str, str] = {}
# Legend labels a series may lack: Prometheus drops empty labels, and an empty milvus_code means
# "the answer carried no Milvus status" (a gRPC error such as UNIMPLEMENTED).
MAY_BE_EMPTY = {"milvus_code"}


@dataclass(frozen=True)
class PanelQuery:
    """One query of a panel, variables replaced, and the labels its legend shows."""

    panel: str
    expr: str
    legend: tuple[str, ...]


def dashboard_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def variable_values(dashboard: dict[str, Any], label_values: Callable[[str, str], list[str]]) -> dict[str, list[str]]:
    """Every templating variable's values: a custom list, or label_values(...) asked of Prometheus."""
    out: dict[str, list[str]] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        kind, name = var["type"], var["name"]
        if kind == "datasource":
            continue  # chooses the data source, never part of a query
        query = var.get("query", "")
        query = query.get("query", "") if isinstance(query, dict) else str(query)
        if kind in ("custom", "constant"):
            values = [v.strip() for v in query.split(",") if v.strip()]
        elif kind == "query" and (m := re.fullmatch(r"label_values\((?:(.+),\s*)?(\w+)\)", query.strip())):
            values = label_values(m.group(1) or "", m.group(2))
        else:
            raise AssertionError(f"variable {name}: this test does not understand {kind} {query!r}")
        assert values, f"variable {name} has no values"
        out[name] = values
    return out


def expand(expr: str, variables: dict[str, list[str]]) -> list[str]:
    """The query once per combination of the values of the variables it uses, $__rate_interval set."""
    expr = re.sub(r"\$__rate_interval\b|\$\{__rate_interval\}", RATE_WINDOW, expr)
    used = sorted({a or b for a, b in re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", expr)})
    undefined = [u for u in used if u not in variables]
    assert not undefined, f"{expr}: undefined variables {undefined}"
    queries = []
    for combination in itertools.product(*(variables[u] for u in used)):
        text = expr
        for name, value in zip(used, combination, strict=True):
            text = re.sub(rf"\$\{{{name}(?::\w+)?\}}|\${name}\b", value, text)
        queries.append(text)
    return queries


def panel_queries(dashboard: dict[str, Any], variables: dict[str, list[str]]) -> list[PanelQuery]:
    out = []
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            legend = tuple(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            out += [PanelQuery(panel["title"], e, legend) for e in expand(target["expr"], variables)]
    return out


def test_every_query_is_expanded_for_each_value_of_each_variable() -> None:
    dashboard = {
        "templating": {"list": [{"type": "datasource", "name": "ds"}, {"type": "custom", "name": "c", "query": "a,b"}]},
        "panels": [
            {"title": "row", "type": "row", "panels": [{"title": "p", "targets": [{"expr": 'x{c="$c"}[$__rate_interval]', "legendFormat": "{{ m }} on {{c}}"}]}]},
            {"title": "q", "targets": [{"expr": "up{k=~\"${kk:regex}\"}", "legendFormat": "n"}]},
        ],
    }  # fmt: skip
    with pytest.raises(AssertionError, match="undefined variables"):
        panel_queries(dashboard, variable_values(dashboard, lambda match, label: []))
    dashboard["templating"]["list"].append({"type": "query", "name": "kk", "query": "label_values(up, kk)"})
    queries = panel_queries(dashboard, variable_values(dashboard, lambda match, label: [match, label]))
    assert [(q.panel, q.expr, q.legend) for q in queries] == [
        ("p", f'x{{c="a"}}[{RATE_WINDOW}]', ("m", "c")),
        ("p", f'x{{c="b"}}[{RATE_WINDOW}]', ("m", "c")),
        ("q", 'up{k=~"up"}', ()),
        ("q", 'up{k=~"kk"}', ()),
    ]


class Prometheus:
    """Debian's Prometheus as a child process: its own data folder, loopback only, stopped by PID.

    Each service's /metrics is a target carrying the labels the Prometheus Operator gives a
    ServiceMonitor's targets, so a metric label named like one of them would be renamed
    (exported_<name>) here as it would be in a cluster.
    """

    def __init__(self, root: Path, metrics_ports: dict[str, int]) -> None:
        self.root = root
        self.port = ephemeral_allocator().allocate_one()
        jobs = [
            {
                "job_name": service,
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{port}"],
                        "labels": {"namespace": "mishards", "service": f"mishards-{service}",
                                   "pod": f"mishards-{service}-0", "container": service, "endpoint": "metrics"},
                    }
                ],
            }
            for service, port in metrics_ports.items()
        ]  # fmt: skip
        interval = f"{SCRAPE_INTERVAL}s"
        config = {"global": {"scrape_interval": interval, "scrape_timeout": interval}, "scrape_configs": jobs}
        (root / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        args = [PROMETHEUS, f"--config.file={self.root / 'prometheus.yml'}", f"--storage.tsdb.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]  # fmt: skip
        with open(self.root / "prometheus.log", "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"Prometheus did not get ready: {(self.root / 'prometheus.log').read_text()[-2000:]}"
                )
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            return http_get(self.port, "/-/ready").startswith("Prometheus")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, path: str, **params: str) -> Any:
        answer = json.loads(http_get(self.port, f"/api/v1/{path}?{urllib.parse.urlencode(params)}"))
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query, now: its series, each {"metric": labels, "value": [time, "value"]}."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return list(data["result"])

    def label_values(self, match: str, label: str) -> list[str]:
        return list(self.api(f"label/{label}/values", **({"match[]": match} if match else {})))

    def value(self, expr: str) -> float:
        result = self.query(expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])


def copy_states(cluster: Cluster) -> list[Any]:
    with cluster.meta_channel() as channel:
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
    require_installed(PROMETHEUS, "install Debian's prometheus", os.environ)  # before starting a cluster for nothing
    c = Cluster(
        tmp_path_factory.mktemp("metrics-cluster"),
        writable=1,
        readonly=1,
        backend=os.environ.get("MISHARDS_TEST_BACKEND", "milvus"),  # type: ignore[arg-type]
        router_port=0,
        extra_env={"DEFAULT_SHARDS_NUM": "2", "READ_REPLICAS": "1", "MAX_RETRY": "3"},
    )
    with c:  # started; stopped by PID on the way out
        yield c


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, replica_cluster: Cluster) -> Iterator[Prometheus]:
    server = Prometheus(
        tmp_path_factory.mktemp("prometheus"), {s: replica_cluster.ports[f"{s}_metrics"] for s in SERVICES}
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def expected_label_values(cluster: Cluster) -> dict[str, dict[str, set[str]]]:
    """Label values each panel must show: the events the workload causes (more may appear).

    The router names a Milvus instance by the address it calls, meta and discovery by its
    identity; both are host:port for the file and static back ends this cluster uses.
    """
    writable, replica = cluster.writable_instances[0], cluster.readonly_instances[0]
    return {
        "Requests by method": {"method": {"Insert", "Upsert", "Delete", "Search", "Query"}},
        "Errors by method and code": {"method": {"DescribeCollection"}},
        "Latency p99 by method": {"method": {"Insert", "Search", "Query"}},
        "Requests in flight": {"component": set(SERVICES)},
        "Backend call latency p99 by instance": {"backend": {writable.address, replica.address}},
        "Backend errors by instance": {"backend": {replica.address}, "method": {"Search"}},
        "Fan-out width (mean shards per request)": {"method": {"Search", "Query"}},
        "Retries": {"method": {"Search"}},
        "Merge time p99": {"kind": {"search", "query", "count"}},
        "Rows written": {"method": {"Insert", "Upsert", "Delete"}},
        "Copies by state": {"state": {"ready"}},
        "Replica lag (log entries)": {"backend": {replica.identity}, "shard": {"0", "1"}},
        "Meta mutation log length": {"collection": {"dashboard"}},
        "Meta RPC latency p99": {"method": {"ExecuteDdl"}},
        "Instances by role and health": {"role": {"writable", "readonly"}, "health": {"healthy", "down"}},
        "Probe failures by instance": {"backend": {replica.identity}},
    }


def panel_problems(
    q: PanelQuery, result: list[dict[str, Any]], wanted: dict[str, set[str]], milvus: set[str]
) -> list[str]:
    """What is wrong with one query's answer: no series, a legend label missing, an expected value absent,
    or a per-instance series naming something other than a Milvus instance."""
    if not result:
        return [f"{q.panel}: no series from {q.expr}"]
    problems = []
    for series in result:
        missing = [label for label in q.legend if label not in series["metric"] and label not in MAY_BE_EMPTY]
        if missing:
            problems.append(f"{q.panel}: series {series['metric']} lacks the legend's {missing}")
    for label, values in wanted.items():
        seen = {s["metric"].get(label) for s in result}
        if not values <= seen:
            problems.append(
                f"{q.panel}: no series with {label}={sorted(values - seen)} (seen {sorted(map(str, seen))})"
            )
    if "backend" in q.legend:  # per Milvus instance: each series names one, never a scrape target
        strangers = {s["metric"].get("backend") for s in result} - milvus
        if strangers:
            problems.append(f"{q.panel}: backend values that are no Milvus instance: {sorted(map(str, strangers))}")
    return problems


def dashboard_problems(prometheus: Prometheus, cluster: Cluster) -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = panel_queries(dashboard, variable_values(dashboard, prometheus.label_values))
    expected = expected_label_values(cluster)
    titles = {q.panel for q in queries}
    assert set(expected) | set(EXEMPT) <= titles, f"expectations for panels that do not exist: {set(expected) - titles}"
    per_instance = {q.panel for q in queries if "backend" in q.legend}
    assert per_instance <= {t for t, w in expected.items() if "backend" in w}, (
        "each per-instance panel names its instances"
    )
    milvus = {i.address for i in cluster.instances} | {i.identity for i in cluster.instances}
    problems = []
    for q in queries:
        if q.panel not in EXEMPT:
            problems += panel_problems(q, prometheus.query(q.expr), expected.get(q.panel, {}), milvus)
    return problems


def run_dashboard_workload(cluster: Cluster, client: MilvusClient, name: str) -> None:
    """Writes of every kind, reads at two levels, an error; then the replica fails reads (retries,
    backend errors) and dies (probe failures)."""
    fill(client, name)
    client.upsert(name, [{"id": 1, "vector": [1.0, 1.0, 2.0, 1.0]}])
    client.delete(name, ids=[39])
    with pytest.raises(MilvusException):
        client.describe_collection("missing_" + name)
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
            return total(scrape(cluster, "router"), BACKEND_CALLS, backend=replica.address, method="Search")

        before = served()
        client.search(name, data=[[1.0, 1.0, 2.0, 1.0]], limit=3, consistency_level="Bounded")
        return served() > before

    wait_for("the router to read from the replicas", replica_serves_bounded_searches, 30)
    fail_and_kill_replica(cluster, client, name, collection_id)


def fail_and_kill_replica(cluster: Cluster, client: MilvusClient, name: str, collection_id: int) -> None:
    """The replica stops serving while its instance stays up (its copies released behind Mishards'
    back): reads sent to it fail and are retried on the primary. Killing the instance first would race
    discovery, which takes a dead instance out of rotation within a probe round, possibly before any
    read reached it. Then the instance dies: probes fail."""
    replica = cluster.readonly_instances[0]
    with grpc.insecure_channel(replica.address) as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(with_metadata(channel, backend_metadata(replica.token)))
        for k in range(2):
            release = milvus_pb2.ReleaseCollectionRequest(collection_name=f"mishards_{collection_id}_s{k}")
            assert stub.ReleaseCollection(release, timeout=30).error_code == 0

    def retried() -> bool:
        hits = client.search(name, data=[[1.0, 1.0, 2.0, 1.0]], limit=3, consistency_level="Bounded")
        assert len(hits[0]) == 3
        return total(scrape(cluster, "router"), "mishards_router_retries_total", method="Search") >= 1

    wait_for("a retried search", retried, 30)
    replica.kill()
    wait_for(
        "a failed probe",
        lambda: (
            total(scrape(cluster, "discovery"), "mishards_discovery_probe_failures_total", backend=replica.identity)
            >= 1
        ),
    )


def test_every_dashboard_query_returns_its_series_from_prometheus(
    replica_cluster: Cluster, prometheus: Prometheus
) -> None:
    cluster = replica_cluster
    client = MilvusClient(uri=cluster.router_uri)
    name = "dashboard"
    run_dashboard_workload(cluster, client, name)
    deadline = time.monotonic() + 30  # a few scrapes: rate() needs two samples of each new series
    while (problems := dashboard_problems(prometheus, cluster)) and time.monotonic() < deadline:
        time.sleep(SCRAPE_INTERVAL)
    assert not problems, "\n".join(problems)
    for service in SERVICES:
        assert prometheus.value(f'up{{job="{service}"}}') == 1
    # No metric label was renamed at scrape time (exported_instance, exported_service, ...).
    renamed = {
        k for s in prometheus.query('{__name__=~"mishards_.+"}') for k in s["metric"] if k.startswith("exported_")
    }
    assert not renamed, renamed
    # The data path is measured, not only present.
    replica = cluster.readonly_instances[0]
    assert (
        prometheus.value('sum(mishards_rpc_requests_total{component="router", method="Search", milvus_code="0"})') >= 3
    )
    assert prometheus.value(f'sum(mishards_router_backend_errors_total{{backend="{replica.address}"}})') >= 1
    assert prometheus.value('sum(mishards_router_rows_written_total{method="Insert"})') >= 40
    assert prometheus.value('sum(mishards_router_merge_duration_seconds_count{kind="count"})') >= 2
    assert prometheus.value('sum(mishards_rpc_requests_total{component="meta", method="ExecuteDdl"})') >= 1
    assert prometheus.value(f'sum(mishards_meta_replica_lag_entries{{collection="{name}"}})') == 0  # caught up
    assert prometheus.value('mishards_discovery_instances{role="writable", health="healthy"}') == 1
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
