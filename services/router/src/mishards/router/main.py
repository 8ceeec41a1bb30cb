"""mishards-router: the Milvus-protocol endpoint clients connect to."""

from __future__ import annotations

import gc
import logging

from mishards.common.backends import BackendPool
from mishards.common.entry import run_service
from mishards.common.interceptors import TelemetryServerInterceptor
from mishards.common.membership import MembershipWatcher
from mishards.common.metrics import HttpServer, default_port
from mishards.common.security import InternalSecurity
from mishards.common.server import Server, create_server, serve
from mishards.common.settings import Settings
from mishards.router.admission import Admission
from mishards.router.auth import AuthCache, AuthInterceptor
from mishards.router.catalog import CatalogCache
from mishards.router.ids import IdAllocator
from mishards.router.servicer import RouterServicer
from mishards.router.strategies import create_read_router
from mishards.router.topology import Topology
from mishards.router.topology_page import RecentErrors, TopologyPage, meta_copy_states
from mishards.router.wire import Layer, add_milvus_service, wrap_tolerant
from mishards.router.writes import MetaMutationLog

log = logging.getLogger("mishards.router")


class RouterService:
    """Everything the router runs, built from settings (construct inside a running loop)."""

    def __init__(self, settings: Settings, port: int | None = None, metrics_port: int | None = None) -> None:
        self.settings = settings
        security = InternalSecurity.from_settings(settings)
        self.catalog = CatalogCache(settings.META_ADDRESS, security)
        self.auth = AuthCache(self.catalog.stub)
        self.catalog.listeners.append(self.auth.on_catalog)  # users and grants follow the catalog feed
        self.membership = MembershipWatcher(settings.DISCOVERY_ADDRESS, security)
        self.backends = BackendPool(settings.MILVUS_BACKEND_TOKEN, settings.MILVUS_BACKEND_TLS_CA_FILE)
        self.topology = Topology(self.membership, create_read_router(settings))
        self.servicer = RouterServicer(
            catalog=self.catalog,
            meta=self.catalog.stub,
            topology=self.topology,
            backends=self.backends,
            mutation_log=MetaMutationLog(
                self.catalog.stub, self.topology, settings.BACKEND_TIMEOUT, settings.WRITE_ACK == "applied"
            ),
            ids=IdAllocator(self.catalog.stub, settings.ID_BLOCK_SIZE),
            timeout=settings.BACKEND_TIMEOUT,
            retries=settings.MAX_RETRY,
            read_wait=settings.READ_WAIT_TIMEOUT,
            staleness_ms=settings.BOUNDED_STALENESS_MS,
            auth=self.auth,
            admission=Admission(settings.MAX_INFLIGHT_BYTES, settings.INFLIGHT_QUEUE_TIMEOUT),
            max_hybrid_requests=settings.MAX_HYBRID_REQUESTS,
            passthrough=settings.READ_PASSTHROUGH,
        )
        # Telemetry: spans, request ids and RPC metrics; /metrics and the topology page (port 0: any free one).
        self.errors = RecentErrors()
        telemetry = TelemetryServerInterceptor("router", on_error=self.errors.record, count_rows=True)
        self.page = TopologyPage(self.membership, self.catalog, self.errors, meta_copy_states(self.catalog.stub))
        http_port = default_port(settings.METRICS_PORT, "router") if metrics_port is None else metrics_port
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
        )
        add_milvus_service(self.server.server, self.servicer, layers)

    async def on_start(self) -> None:
        await self.http.start()
        await self.membership.start(wait_first=60.0)
        await self.catalog.start()
        # What start built (modules, stubs, the catalog) lives as long as the process: moved out of the
        # collector's reach, so that its collections on the request path walk only what requests made.
        gc.collect()
        gc.freeze()

    async def on_stop(self) -> None:
        await self.catalog.stop()
        await self.membership.stop()
        await self.backends.close()
        await self.http.stop()

    async def run(self) -> None:
        await serve(self.server, "router", self.on_start, self.on_stop, self.settings.GRACE_PERIOD)


def main() -> None:
    run_service("router", RouterService)


if __name__ == "__main__":
    main()
