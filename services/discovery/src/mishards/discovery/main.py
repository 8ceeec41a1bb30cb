"""mishards-discovery: membership and health of the Milvus instances (`DiscoveryService`)."""

from __future__ import annotations

import logging

from mishards.common.entry import run_service
from mishards.common.interceptors import TelemetryServerInterceptor
from mishards.common.metrics import HttpServer, default_port
from mishards.common.security import InternalSecurity, server_interceptors
from mishards.common.server import Server, create_server, serve
from mishards.common.settings import Settings
from mishards.discovery.backends import DiscoveryBackend, create_backend
from mishards.discovery.membership import MembershipBoard
from mishards.discovery.prober import HealthChecker, MilvusHealthChecker, ProbeFn, Prober
from mishards.discovery.servicer import DiscoveryServicer
from mishards.v1 import discovery_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "discovery"


class DiscoveryService:
    """Everything the discovery process runs, built from settings: back end, board, prober,
    gRPC server and metrics port; `run()` for main, `start()`/`stop()` in-process (tests).

    Built inside a running event loop (grpc.aio servers need one), bound but not started.
    `backend` defaults to the configured one, `probe` to Milvus CheckHealth, `host` and
    `port` to SERVER_HOST and DISCOVERY_SERVER_PORT (port 0 picks a free one); joins are
    damped by DISCOVERY_HEALTHY_AFTER. Raises SettingsError or PluginError for a bad
    configuration, OSError when it cannot bind.
    """

    def __init__(
        self,
        settings: Settings,
        port: int | None = None,
        metrics_port: int | None = None,
        *,
        backend: DiscoveryBackend | None = None,
        probe: HealthChecker | ProbeFn | None = None,
        host: str | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend if backend is not None else create_backend(settings)
        self.board = MembershipBoard()
        if probe is None:
            probe = MilvusHealthChecker(settings.MILVUS_BACKEND_TOKEN, settings.MILVUS_BACKEND_TLS_CA_FILE)
        self.prober = Prober(
            self.backend,
            self.board,
            probe=probe,
            interval=settings.DISCOVERY_PROBE_INTERVAL,
            timeout=settings.DISCOVERY_PROBE_TIMEOUT,
            healthy_after=settings.DISCOVERY_HEALTHY_AFTER,
        )
        self.server: Server = create_server(
            settings.SERVER_HOST if host is None else host,
            settings.DISCOVERY_SERVER_PORT if port is None else port,
            interceptors=[TelemetryServerInterceptor(SERVICE_NAME), *server_interceptors(SERVICE_NAME, settings)],
            tls=InternalSecurity.from_settings(settings).tls,
        )
        discovery_pb2_grpc.add_DiscoveryServicer_to_server(  # type: ignore[no-untyped-call]
            DiscoveryServicer(self.board), self.server.server
        )
        http_port = default_port(settings.METRICS_PORT, SERVICE_NAME) if metrics_port is None else metrics_port
        self.http = HttpServer(settings.METRICS_HOST, http_port)

    @property
    def port(self) -> int:
        return self.server.port

    async def on_start(self) -> None:
        """Serve /metrics, finish the first probe round, then keep probing in the background."""
        await self.http.start()
        await self.prober.start()

    async def on_stop(self) -> None:
        """End watch streams, stop probing, close the back end and /metrics. Never raises."""
        self.board.close()
        await self.prober.stop()
        try:
            await self.backend.close()
        except Exception:  # a plugin's close must not break shutdown
            log.exception("closing the discovery back end failed")
        await self.http.stop()

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT (SERVING once the first round has finished), then drain."""
        await serve(
            self.server,
            SERVICE_NAME,
            on_start=self.on_start,
            on_stop=self.on_stop,
            grace=self.settings.GRACE_PERIOD,
            on_drain=self.board.close,
        )

    async def start(self) -> None:
        """Start serving in-process (tests): SERVING once the first round has finished."""
        # grpc's health servicer starts out SERVING; say so only after the first round.
        await self.server.set_serving(False)
        await self.server.server.start()
        await self.on_start()
        await self.server.set_serving(True)

    async def stop(self, grace: float = 0.0) -> None:
        """Stop what `start()` started: NOT_SERVING, end watches, drain, close."""
        await self.server.set_serving(False)
        self.board.close()
        await self.server.server.stop(grace)
        await self.on_stop()


def main() -> None:
    """Console script: a bad setting or plugin, or a port that cannot be bound, exits 2 with one line."""
    run_service(SERVICE_NAME, DiscoveryService)


if __name__ == "__main__":
    main()
