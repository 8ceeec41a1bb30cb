"""Internal-call authentication and TLS for every hop (docs/security.md).

Internal token: meta and discovery accept a call only when its metadata carries
``authorization: Bearer <MISHARDS_INTERNAL_TOKEN>``; ``grpc.health.v1`` is exempt (probes
hold no secret). An empty token turns the check off (and is logged as a warning at start).

TLS: with ``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` every service serves TLS with those files;
``TLS_CLIENT_CA_FILE`` makes it mutual. Internal clients (router and meta to meta and
discovery, the CLI) verify the servers with ``TLS_CA_FILE`` (else ``TLS_CLIENT_CA_FILE``)
and, with mutual TLS, present the same certificate. ``MILVUS_BACKEND_TLS_CA_FILE`` makes
the channels to Milvus instances TLS.
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

log = logging.getLogger(__name__)

TOKEN_HEADER = "authorization"
BEARER = "Bearer "
EXEMPT_PREFIXES = ("/grpc.health.v1.",)
UNAUTHENTICATED_MESSAGE = "internal call without a valid MISHARDS_INTERNAL_TOKEN"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the TLS files of one hop; empty strings mean "not set"."""

    cert: str = ""
    key: str = ""
    client_ca: str = ""
    ca: str = ""
    server_name: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert and self.key)

    def channel_options(self) -> list[tuple[str, Any]]:
        """The name to check in the server's certificate, when it is not the dialled host."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.enabled and self.server_name else []

    def server_credentials(self) -> grpc.ServerCredentials:
        """Server TLS with the certificate; mutual (client certificate required) with a client CA."""
        client_ca = _read(self.client_ca) if self.client_ca else None
        return grpc.ssl_server_credentials(
            [(_read(self.key), _read(self.cert))],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )

    def client_credentials(self) -> grpc.ChannelCredentials:
        """What an internal client presents: trust the CA; our own certificate when TLS is mutual."""
        ca = self.ca or self.client_ca
        root = _read(ca) if ca else None
        if self.client_ca:
            return grpc.ssl_channel_credentials(root, _read(self.key), _read(self.cert))
        return grpc.ssl_channel_credentials(root)


@dataclass(frozen=True)
class InternalSecurity:
    """How a process reaches meta and discovery: the internal token and the TLS files."""

    token: str = ""
    tls: TlsFiles = TlsFiles()

    @classmethod
    def from_settings(cls, settings: Any) -> InternalSecurity:
        return cls(
            token=settings.MISHARDS_INTERNAL_TOKEN,
            tls=TlsFiles(
                cert=settings.TLS_CERT_FILE,
                key=settings.TLS_KEY_FILE,
                client_ca=settings.TLS_CLIENT_CA_FILE,
                ca=settings.TLS_CA_FILE,
                server_name=settings.TLS_SERVER_NAME,
            ),
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ((TOKEN_HEADER, BEARER + self.token),) if self.token else ()

    def sync_channel(self, address: str, options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
        """A blocking channel (CLI, tests) that sends the token on every call."""
        if self.tls.enabled:
            options = (options or []) + self.tls.channel_options()
            channel = grpc.secure_channel(address, self.tls.client_credentials(), options=options)
        else:
            channel = grpc.insecure_channel(address, options=options)
        if not self.token:
            return channel
        return grpc.intercept_channel(channel, _SyncTokenInterceptor(self.metadata()))


def backend_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """The `authorization` metadata Milvus expects for MILVUS_BACKEND_TOKEN (base64, as pymilvus sends it)."""
    if not token:
        return ()
    return (("authorization", base64.b64encode(token.encode()).decode()),)


def with_metadata(channel: grpc.Channel, pairs: tuple[tuple[str, str], ...]) -> grpc.Channel:
    """A blocking channel that adds ``pairs`` to the metadata of every call (as is, without pairs)."""
    return grpc.intercept_channel(channel, _SyncTokenInterceptor(pairs)) if pairs else channel


def backend_credentials(ca_file: str) -> grpc.ChannelCredentials | None:
    """TLS credentials of channels to Milvus instances (MILVUS_BACKEND_TLS_CA_FILE), None without."""
    return grpc.ssl_channel_credentials(_read(ca_file)) if ca_file else None


def _with_metadata(details: Any, pairs: tuple[tuple[str, str], ...], cls: Any) -> Any:
    metadata = list(details.metadata or ()) + list(pairs)
    return cls(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)


class _SyncTokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self.pairs = pairs

    def _details(self, details: Any) -> Any:
        return _SyncDetails(
            details.method, details.timeout, list(details.metadata or ()) + list(self.pairs), details.credentials
        )

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)


@dataclass(frozen=True)
class _SyncDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None = None
    compression: Any = None


class TokenUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the internal token to every unary call of an asyncio channel."""

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self.pairs = pairs

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_metadata(client_call_details, self.pairs, grpc.aio.ClientCallDetails), request)


class TokenUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    """Adds the internal token to every server-streaming call (discovery's and meta's watches)."""

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self.pairs = pairs

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_metadata(client_call_details, self.pairs, grpc.aio.ClientCallDetails), request)


def token_interceptors(security: InternalSecurity) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors that send the internal token (none when it is empty)."""
    pairs = security.metadata()
    return [TokenUnaryUnary(pairs), TokenUnaryStream(pairs)] if pairs else []


def token_matches(metadata: Any, token: str) -> bool:
    """True when the call's metadata carries `authorization: Bearer <token>` (constant-time compare)."""
    expected = (BEARER + token).encode()
    for key, value in metadata or ():
        if key == TOKEN_HEADER:
            presented = value.encode() if isinstance(value, str) else bytes(value)
            if hmac.compare_digest(presented, expected):
                return True
    return False


class InternalAuthInterceptor(grpc.aio.ServerInterceptor):
    """Meta's and discovery's gate: only callers holding MISHARDS_INTERNAL_TOKEN get through.

    A call without it, or with another token, ends with UNAUTHENTICATED before its handler
    runs, and one warning line names the method and the peer (never what was presented).
    """

    def __init__(self, service: str, token: str) -> None:
        self.service = service
        self.token = token

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        method = method.decode() if isinstance(method, bytes) else method
        if method.startswith(EXEMPT_PREFIXES) or token_matches(handler_call_details.invocation_metadata, self.token):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return self._deny(method, handler)

    def _deny(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
            log.warning("%s: refused %s from %s: %s", self.service, method, context.peer(), UNAUTHENTICATED_MESSAGE)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)

        async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await refuse(request, context)
            yield  # pragma: no cover - abort raised above

        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(refuse_stream, **kwargs)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(refuse_stream, **kwargs)
        return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)


def server_interceptors(service: str, settings: Any) -> list[grpc.aio.ServerInterceptor]:
    """The internal-auth gate of meta and discovery (none, with a warning, when the token is empty)."""
    if not settings.MISHARDS_INTERNAL_TOKEN:
        log.warning("%s: MISHARDS_INTERNAL_TOKEN is empty: every caller that reaches this port is trusted", service)
        return []
    return [InternalAuthInterceptor(service, settings.MISHARDS_INTERNAL_TOKEN)]
