"""The asyncio gRPC server scaffold shared by every service.

`create_server()` builds a server with the message-size and keepalive limits of the
design brief and a `grpc.health.v1` servicer, binds it and returns the bound port
(tests bind port 0). `serve()` runs it until SIGTERM/SIGINT, then drains.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mishards.common.security import InternalSecurity, TlsFiles, backend_credentials, token_interceptors

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 512 * 1024 * 1024

# Accept big inserts and search results both ways, and the idle keepalive pings of pymilvus.
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.http2.max_ping_strikes", 0),
    # Off: a port already taken is an error at start, not a silent second listener (router workers turn it on).
    ("grpc.so_reuseport", 0),
]

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 55_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.enable_retries", 1),
    # A restarted peer (meta, a Milvus) is reached again within 2 s, not after gRPC's default of up to 120 s.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


@dataclass
class Server:
    """A bound (or, with `bind` set, still to be bound), not yet started gRPC server and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    bind: Callable[[], int] | None = None

    async def set_serving(self, serving: bool, service: str = "") -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        await self.health.set(service, status)


def create_server(
    host: str,
    port: int,
    interceptors: list[grpc.aio.ServerInterceptor] | None = None,
    tls: TlsFiles | None = None,
    reuse_port: bool = False,
    bind_when_ready: bool = False,
) -> Server:
    """Build a server bound to host:port (port 0 picks a free one) with health registered.

    With `tls` enabled the port serves TLS only (mutual when it names a client CA).
    `reuse_port` lets several processes listen on the one port (SO_REUSEPORT: the kernel
    spreads connections over them); off, a port already taken fails at once.
    `bind_when_ready` leaves the binding to `serve()`, after `on_start`: gRPC listens as soon
    as a port is added, and a process sharing a port must not take connections before it
    can answer them.
    """
    options = [(k, v) for k, v in SERVER_OPTIONS if k != "grpc.so_reuseport"]
    options.append(("grpc.so_reuseport", 1 if reuse_port else 0))
    server = grpc.aio.server(options=options, interceptors=interceptors or [])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    def bind() -> int:
        if tls is not None and tls.enabled:
            bound = server.add_secure_port(f"{host}:{port}", tls.server_credentials())
        else:
            bound = server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot bind {host}:{port}")
        return int(bound)

    if bind_when_ready:
        return Server(server=server, port=port, health=health_servicer, bind=bind)
    return Server(server=server, port=bind(), health=health_servicer)


async def serve(
    srv: Server,
    name: str,
    on_start: Callable[[], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    grace: float = 5.0,
    on_drain: Callable[[], None] | None = None,
) -> None:
    """Start, say SERVING once `on_start` has finished, and drain on SIGTERM or SIGINT.

    `on_drain` runs when draining begins (e.g. to end server streams at once, so that
    their clients reconnect elsewhere instead of being cut at the end of the grace period).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # grpc's health servicer starts out SERVING; say NOT_SERVING until on_start has finished.
    await srv.set_serving(False)
    if srv.bind is None:
        await srv.server.start()
    if on_start is not None:
        await on_start()
    if srv.bind is not None:  # a server bound only once it can answer (see create_server)
        srv.port, srv.bind = srv.bind(), None
        await srv.server.start()
    await srv.set_serving(True)
    log.info("%s serving on port %d", name, srv.port)
    waiter = asyncio.ensure_future(srv.server.wait_for_termination())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    log.info("%s draining (grace %.1fs)", name, grace)
    await srv.set_serving(False)
    if on_drain is not None:
        on_drain()
    await srv.server.stop(grace)
    if on_stop is not None:
        await on_stop()
    stopper.cancel()
    waiter.cancel()
    log.info("%s stopped", name)


def insecure_channel(
    address: str, extra: list[tuple[str, int]] | None = None, *, traced: bool = True
) -> grpc.aio.Channel:
    """An asyncio channel with the project's size and keepalive options.

    `traced` channels (to meta and discovery) open a client span per call and carry the
    trace context in the metadata; the router's Milvus channels are traced by `call_shards`.
    With tracing off (set up before the service builds its channels) no interceptor is
    installed: grpc.aio's interceptor machinery costs a task per call even when it does nothing.
    """
    from mishards.common import tracing
    from mishards.common.interceptors import client_interceptors

    return grpc.aio.insecure_channel(
        address,
        options=CHANNEL_OPTIONS + (extra or []),
        interceptors=client_interceptors() if traced and tracing.enabled() else None,
    )


def internal_channel(address: str, security: InternalSecurity) -> grpc.aio.Channel:
    """An asyncio channel to meta or discovery: traced, with the internal token, TLS when configured."""
    from mishards.common import tracing
    from mishards.common.interceptors import client_interceptors

    interceptors: list[grpc.aio.ClientInterceptor] = client_interceptors() if tracing.enabled() else []
    interceptors += token_interceptors(security)
    if security.tls.enabled:
        return grpc.aio.secure_channel(
            address,
            security.tls.client_credentials(),
            options=CHANNEL_OPTIONS + security.tls.channel_options(),
            interceptors=interceptors or None,
        )
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=interceptors or None)


def backend_channel(address: str, tls_ca_file: str = "") -> grpc.aio.Channel:
    """An asyncio channel to a Milvus instance: TLS verified with `tls_ca_file` when it is set."""
    credentials = backend_credentials(tls_ca_file)
    if credentials is not None:
        return grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS)
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
