"""Prometheus metrics of every service, and the small HTTP server that exposes them.

The metric families live in the process's default registry, so each service's `/metrics`
lists them all; only those the service feeds carry samples. Names follow Prometheus
conventions (`mishards_<area>_<what>_<unit>`, counters end in `_total`) and no label is named
after a target label Prometheus or its Operator sets (`instance`, `job`, `service`, `pod`, ...),
which would rename ours to `exported_<name>`: the Milvus instance is `backend`, the
Mishards service `component`. The list is in
`docs/observability.md` and the Grafana dashboard `deploy/dashboards/mishards.json`
queries them.

With several router workers (ROUTER_WORKERS) every worker writes its samples to files in
`PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode, chosen by that variable when
prometheus_client is imported) and `exposition()` merges them: counters and histograms summed
over the workers, gauges by their `multiprocess_mode` (in-flight RPCs summed over live workers,
the others the largest live value). Without the variable nothing changes.

`HttpServer` is a tiny asyncio HTTP/1.1 server (GET only, one response per connection):
`/metrics` for Prometheus plus whatever routes a service adds (the router's topology page).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST

DEFAULT_METRICS_PORTS = {"router": 9191, "meta": 9192, "discovery": 9193}

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# --- every service: RPCs served ------------------------------------------------------------------
RPC_REQUESTS = Counter(
    "mishards_rpc_requests_total",
    "RPCs served, by component, method, gRPC code and Milvus status code (0: success; empty: not a Milvus answer)",
    ["component", "method", "grpc_code", "milvus_code"],
)
RPC_DURATION = Histogram(
    "mishards_rpc_duration_seconds",
    "Time to answer a unary RPC, by component and method",
    ["component", "method"],
    buckets=LATENCY_BUCKETS,
)
RPC_IN_FLIGHT = Gauge(
    "mishards_rpc_in_flight", "Unary RPCs being served, by component", ["component"], multiprocess_mode="livesum"
)

# --- router: the data path --------------------------------------------------------------------------
BACKEND_DURATION = Histogram(
    "mishards_router_backend_call_duration_seconds",
    "Time of one call to a Milvus instance, by backend (the instance's address) and method",
    ["backend", "method"],
    buckets=LATENCY_BUCKETS,
)
BACKEND_ERRORS = Counter(
    "mishards_router_backend_errors_total",
    "Calls to a Milvus instance that failed (no answer or an error status), by backend (address) and method",
    ["backend", "method"],
)
FANOUT_WIDTH = Histogram(
    "mishards_router_fanout_width",
    "Shard copies one request was sent to, by method",
    ["method"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64),
)
RETRIES = Counter("mishards_router_retries_total", "Reads retried on another copy, by method", ["method"])
MERGE_DURATION = Histogram(
    "mishards_router_merge_duration_seconds",
    "Time to merge the shards' answers, by kind (search, query, count)",
    ["kind"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
ROWS_WRITTEN = Counter(
    "mishards_router_rows_written_total",
    "Rows the router acknowledged as written, by method (Insert, Upsert, Delete)",
    ["method"],
)
COPIES = Gauge(
    "mishards_router_copies",
    "Shard copies in the router's catalog, by state (ready, catching_up, ...)",
    ["state"],
    multiprocess_mode="livemax",
)

# --- meta ---------------------------------------------------------------------------------------------
REPLICA_LAG = Gauge(
    "mishards_meta_replica_lag_entries",
    "Mutation-log entries a copy has yet to apply, by collection, shard and backend (instance identity; replicas only)",
    ["collection", "shard", "backend"],
    multiprocess_mode="livemax",
)
STUCK_ENTRIES = Gauge(
    "mishards_meta_stuck_entries",
    "1 while a copy's next log entry is refused by its backend and retried, by collection id, shard and backend",
    ["collection", "shard", "backend"],
    multiprocess_mode="livemax",
)
PROMOTION_ABORTS = Counter(
    "mishards_meta_promotion_aborts_total",
    "Log entries a lost primary had applied that its promoted replica refused (aborted: an alert), by collection id "
    "and shard",
    ["collection", "shard"],
)
PROMOTIONS = Counter(
    "mishards_meta_promotions_total",
    "Replicas promoted to primary, by reason (lost: the primary was unreachable; planned: an operator's switch)",
    ["reason"],
)
META_LOG_LENGTH = Gauge(
    "mishards_meta_log_entries",
    "Entries in meta's mutation log not yet truncated, by collection and shard",
    ["collection", "shard"],
    multiprocess_mode="livemax",
)

# --- discovery ----------------------------------------------------------------------------------------
DISCOVERY_INSTANCES = Gauge(
    "mishards_discovery_instances",
    "Milvus instances discovery knows, by role and health",
    ["role", "health"],
    multiprocess_mode="livemax",
)
DISCOVERY_PROBE_FAILURES = Counter(
    "mishards_discovery_probe_failures_total",
    "Health probes of a Milvus instance that failed, by backend (instance identity)",
    ["backend"],
)
# Meta and discovery run as one process; their gauges' mode only keeps a router worker's unset copy from
# showing one series per PID.
DISCOVERY_MEMBERSHIP_VERSION = Gauge(
    "mishards_discovery_membership_version", "Version of the published membership", multiprocess_mode="livemax"
)


def default_port(setting: int, service: str) -> int:
    """The port a service serves /metrics on: METRICS_PORT, or the service's default when it is 0."""
    return setting or DEFAULT_METRICS_PORTS[service]


def exposition() -> bytes:
    """The text exposition of every metric of this process, or of every router worker when
    PROMETHEUS_MULTIPROC_DIR is set (the variable that put prometheus_client in multiprocess mode)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    return generate_latest(registry)


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes


Handler = Callable[[], Awaitable[Response]]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request", 500: "Internal Server Error"}


async def _metrics() -> Response:
    return Response(200, CONTENT_TYPE_LATEST, exposition())


class HttpServer:
    """`/metrics` and extra GET routes on host:port (port 0 picks a free one; `port` is the bound one)."""

    def __init__(self, host: str, port: int, routes: dict[str, Handler] | None = None) -> None:
        self.host = host
        self.requested_port = port
        self.port = 0
        self.routes: dict[str, Handler] = {"/metrics": _metrics, **(routes or {})}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind and serve in the running loop; raises OSError when the port is taken."""
        self._server = await asyncio.start_server(self._handle, self.host, self.requested_port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            if len(parts) < 2:
                response = Response(400, "text/plain", b"bad request\n")
            elif parts[0] not in ("GET", "HEAD"):
                response = Response(405, "text/plain", b"GET only\n")
            else:
                path = parts[1].split("?", 1)[0]
                handler = self.routes.get(path)
                if handler is None:
                    response = Response(404, "text/plain", b"not found\n")
                else:
                    try:
                        response = await handler()
                    except Exception:
                        log.exception("HTTP %s failed", path)
                        response = Response(500, "text/plain", b"internal error\n")
                if parts[0] == "HEAD":
                    response = Response(response.status, response.content_type, b"")
            reason = _REASONS.get(response.status, "OK")
            writer.write(
                (
                    f"HTTP/1.1 {response.status} {reason}\r\nContent-Type: {response.content_type}\r\n"
                    f"Content-Length: {len(response.body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
                ).encode("latin-1")
                + response.body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
