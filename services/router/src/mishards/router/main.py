"""mishards-router: the Milvus-protocol endpoint clients connect to."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import signal
import sys

from mishards.common.backends import BackendPool
from mishards.common.entry import load_settings_or_exit, run_service
from mishards.common.interceptors import TelemetryServerInterceptor
from mishards.common.logs import setup_logging
from mishards.common.membership import MembershipWatcher
from mishards.common.metrics import HttpServer, default_port
from mishards.common.security import InternalSecurity
from mishards.common.server import Server, create_server, serve
from mishards.common.settings import Settings
from mishards.router.admission import Admission
from mishards.router.aggregate import CopyState
from mishards.router.auth import AuthCache, AuthInterceptor
from mishards.router.catalog import CatalogCache
from mishards.router.fanout import call_shards
from mishards.router.ids import IdAllocator
from mishards.router.meta_client import MetaClient
from mishards.router.reads import Reader
from mishards.router.servicer import RouterServicer
from mishards.router.strategies import create_read_strategy
from mishards.router.topology import Topology
from mishards.router.topology_page import RecentErrors, TopologyPage, meta_copy_states
from mishards.router.wire import Layer, add_milvus_service, wrap_tolerant
from mishards.router.workers import supervise, worker_index
from mishards.router.writes import MetaWriteLog, WriteLog, Writer

log = logging.getLogger("mishards.router")


def build_servicer(
    settings: Settings,
    meta: MetaClient,
    catalog: CatalogCache,
    auth: AuthCache,
    topology: Topology,
    backends: BackendPool,
    write_log: WriteLog | None = None,
) -> RouterServicer:
    """The Milvus servicer and the parts it dispatches to: reads, writes and the copies' state.

    Writes go to meta's log (`MetaWriteLog`) unless `write_log` is given (the offline tests'
    in-memory log)."""
    reader = Reader(
        topology,
        functools.partial(call_shards, backends),
        settings.BACKEND_TIMEOUT,
        settings.MAX_RETRY,
        meta,
        settings.READ_WAIT_TIMEOUT,
        settings.BOUNDED_STALENESS_MS,
    )
    if write_log is None:
        write_log = MetaWriteLog(meta, topology, settings.BACKEND_TIMEOUT, settings.WRITE_ACK == "applied")
    ids = IdAllocator(meta, settings.ID_BLOCK_SIZE)
    return RouterServicer(
        catalog=catalog,
        meta=meta,
        topology=topology,
        backends=backends,
        reader=reader,
        writer=Writer(write_log, ids, reader.keys_matching, meta.timestamp),
        copies=CopyState(topology, backends, settings.BACKEND_TIMEOUT),
        auth=auth,
        admission=Admission(settings.MAX_INFLIGHT_BYTES, settings.INFLIGHT_QUEUE_TIMEOUT),
        max_hybrid_requests=settings.MAX_HYBRID_REQUESTS,
        passthrough=settings.READ_PASSTHROUGH,
    )


class RouterService:
    """Everything the router runs, built from settings (construct inside a running loop).

    `worker` is the index of a router worker (ROUTER_WORKERS > 1): it shares the port with the
    other workers, only worker 0 serves /metrics and the topology page, and every worker stops
    when its supervisor is gone.
    """

    def __init__(
        self,
        settings: Settings,
        port: int | None = None,
        metrics_port: int | None = None,
        worker: int | None = None,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self._supervisor_pid = os.getppid()
        self._parent_watch: asyncio.Task[None] | None = None
        security = InternalSecurity.from_settings(settings)
        self.meta = MetaClient.connect(settings.META_ADDRESS, security)
        self.catalog = CatalogCache(self.meta)
        self.auth = AuthCache(self.meta)
        self.catalog.listeners.append(self.auth.on_catalog)  # users and grants follow the catalog feed
        self.membership = MembershipWatcher(settings.DISCOVERY_ADDRESS, security)
        self.backends = BackendPool(settings.MILVUS_BACKEND_TOKEN, settings.MILVUS_BACKEND_TLS_CA_FILE)
        self.topology = Topology(self.membership, create_read_strategy(settings))
        self.servicer = build_servicer(settings, self.meta, self.catalog, self.auth, self.topology, self.backends)
        # Telemetry: spans, request ids and RPC metrics; /metrics and the topology page (port 0: any free one).
        self.errors = RecentErrors()
        telemetry = TelemetryServerInterceptor("router", on_error=self.errors.record, count_rows=True)
        self.page = TopologyPage(self.membership, self.catalog, self.errors, meta_copy_states(self.meta))
        http_port = default_port(settings.METRICS_PORT, "router") if metrics_port is None else metrics_port
        self.http: HttpServer | None = None
        if not worker:  # one process serves the metrics port: the router, or worker 0 of several
            self.http = HttpServer(settings.METRICS_HOST, http_port, self.page.routes())
        # Each method's handler is wrapped once here, innermost first, instead of by server interceptors
        # run per call: authentication and privileges inside telemetry (refused calls are counted and
        # traced), tolerant decoding outermost (undecodable requests get INTERNAL before anything runs).
        layers: list[Layer] = []
        if settings.AUTHORIZATION_ENABLED:
            layers.append(AuthInterceptor(self.auth).wrap)
        layers += [telemetry.wrap, wrap_tolerant]
        self.server: Server = create_server(
            settings.SERVER_HOST,
            settings.SERVER_PORT if port is None else port,
            tls=security.tls,
            reuse_port=worker is not None,
            bind_when_ready=worker is not None,  # workers share the port: none takes connections before it is ready
        )
        add_milvus_service(self.server.server, self.servicer.handlers(), layers)

    async def on_start(self) -> None:
        if self.http is not None:
            await self.http.start()
        if self.worker is not None:
            self._parent_watch = asyncio.ensure_future(self._stop_when_orphaned())
        await self.membership.start(wait_first=60.0)
        await self.catalog.start()
        # What start built (modules, stubs, the catalog) lives as long as the process: moved out of the
        # collector's reach, so that its collections on the request path walk only what requests made.
        gc.collect()
        gc.freeze()

    async def on_stop(self) -> None:
        if self._parent_watch is not None:
            self._parent_watch.cancel()
        await self.catalog.stop()
        await self.meta.close()
        await self.membership.stop()
        await self.backends.close()
        if self.http is not None:
            await self.http.stop()

    async def _stop_when_orphaned(self) -> None:
        # A supervisor killed with SIGKILL forwards nothing: its workers drain on their own.
        while os.getppid() == self._supervisor_pid:
            await asyncio.sleep(1.0)
        log.warning("router worker %s: supervisor %d is gone, stopping", self.worker, self._supervisor_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    async def run(self) -> None:
        await serve(self.server, "router", self.on_start, self.on_stop, self.settings.GRACE_PERIOD)


def main() -> None:
    """`mishards-router`: one router, or (ROUTER_WORKERS > 1) the supervisor of that many workers."""
    index = worker_index(sys.argv[1:])
    if index is not None:
        run_service("router", functools.partial(RouterService, worker=index), log_name=f"router-{index}")
        return
    settings = load_settings_or_exit("router")
    if settings.ROUTER_WORKERS == 1:
        run_service("router", RouterService, settings=settings)
        return
    setup_logging(settings, "router")
    sys.exit(supervise(settings.SERVER_HOST, settings.SERVER_PORT, settings.ROUTER_WORKERS, settings.GRACE_PERIOD))


if __name__ == "__main__":
    main()
