"""Entry point of `mishards-discovery`, and an in-process builder for tests."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass

from mishards.common.interceptors import TelemetryServerInterceptor
from mishards.common.logs import setup_logging
from mishards.common.metrics import HttpServer, default_port
from mishards.common.plugins import PluginError
from mishards.common.security import InternalSecurity, server_interceptors
from mishards.common.server import Server, create_server, serve
from mishards.common.settings import Settings, SettingsError, load_settings
from mishards.common.tracing import setup_tracing_or_exit
from mishards.discovery.backends import DiscoveryBackend, create_backend
from mishards.discovery.membership import MembershipBoard
from mishards.discovery.prober import HealthChecker, MilvusHealthChecker, ProbeFn, Prober
from mishards.discovery.servicer import DiscoveryServicer
from mishards.v1 import discovery_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "discovery"


@dataclass
class DiscoveryService:
    """Everything the discovery process runs: back end, board, prober and gRPC server."""

    settings: Settings
    backend: DiscoveryBackend
    board: MembershipBoard
    prober: Prober
    server: Server

    @property
    def port(self) -> int:
        return self.server.port

    async def start_probing(self) -> None:
        """Finish the first probe round, then keep probing in the background."""
        await self.prober.start()

    async def close(self) -> None:
        """End watch streams, stop probing, close the back end. Never raises."""
        self.board.close()
        await self.prober.stop()
        try:
            await self.backend.close()
        except Exception:  # a plugin's close must not break shutdown
            log.exception("closing the discovery back end failed")

    async def start(self) -> None:
        """Start serving in-process (tests): SERVING once the first round has finished."""
        await self.server.server.start()
        await self.start_probing()
        await self.server.set_serving(True)

    async def stop(self, grace: float = 0.0) -> None:
        """Stop what `start()` started: NOT_SERVING, end watches, drain, close."""
        await self.server.set_serving(False)
        self.board.close()
        await self.server.server.stop(grace)
        await self.close()


async def build_service(
    settings: Settings,
    *,
    backend: DiscoveryBackend | None = None,
    probe: HealthChecker | ProbeFn | None = None,
    host: str | None = None,
    port: int | None = None,
) -> DiscoveryService:
    """Wire a discovery service from settings, bound but not started, NOT_SERVING.

    `backend` defaults to the configured one, `probe` to Milvus CheckHealth, `host` and
    `port` to SERVER_HOST and DISCOVERY_SERVER_PORT (port 0 picks a free one); joins
    are damped by DISCOVERY_HEALTHY_AFTER. Raises
    SettingsError or PluginError for a bad configuration, OSError when it cannot bind.
    """
    backend = backend if backend is not None else create_backend(settings)
    board = MembershipBoard()
    if probe is None:
        probe = MilvusHealthChecker(settings.MILVUS_BACKEND_TOKEN, settings.MILVUS_BACKEND_TLS_CA_FILE)
    prober = Prober(
        backend,
        board,
        probe=probe,
        interval=settings.DISCOVERY_PROBE_INTERVAL,
        timeout=settings.DISCOVERY_PROBE_TIMEOUT,
        healthy_after=settings.DISCOVERY_HEALTHY_AFTER,
    )
    bound = create_server(
        settings.SERVER_HOST if host is None else host,
        settings.DISCOVERY_SERVER_PORT if port is None else port,
        interceptors=[TelemetryServerInterceptor(SERVICE_NAME), *server_interceptors(SERVICE_NAME, settings)],
        tls=InternalSecurity.from_settings(settings).tls,
    )
    # grpc's health servicer starts out SERVING; say so only after the first round.
    await bound.set_serving(False)
    server = bound
    discovery_pb2_grpc.add_DiscoveryServicer_to_server(  # type: ignore[no-untyped-call]
        DiscoveryServicer(board), server.server
    )
    return DiscoveryService(settings=settings, backend=backend, board=board, prober=prober, server=server)


async def run(settings: Settings, backend: DiscoveryBackend | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain for GRACE_PERIOD seconds."""
    service = await build_service(settings, backend=backend)
    http = HttpServer(settings.METRICS_HOST, default_port(settings.METRICS_PORT, SERVICE_NAME))

    async def on_start() -> None:
        await http.start()
        await service.start_probing()

    async def on_stop() -> None:
        await service.close()
        await http.stop()

    await serve(
        service.server,
        SERVICE_NAME,
        on_start=on_start,
        on_stop=on_stop,
        grace=settings.GRACE_PERIOD,
        on_drain=service.board.close,
    )


def _fail(message: object, code: int) -> None:
    print(f"mishards-discovery: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(code)


def main() -> None:
    """Console script: exit 2 with a one-line message on a bad setting or plugin."""
    try:
        settings = load_settings()
        setup_logging(settings, SERVICE_NAME)
        setup_tracing_or_exit(settings, SERVICE_NAME)
        backend = create_backend(settings)
    except (SettingsError, PluginError) as exc:
        _fail(exc, 2)
        return
    except OSError as exc:  # e.g. LOG_PATH not writable
        _fail(f"cannot start: {exc}", 2)
        return
    try:
        asyncio.run(run(settings, backend=backend))
    except (OSError, RuntimeError) as exc:  # e.g. the port is taken
        _fail(f"cannot serve on port {settings.DISCOVERY_SERVER_PORT}: {exc}", 1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
