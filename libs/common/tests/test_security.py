"""Internal token gate, token-sending channels and TLS on a real grpc.aio server (offline)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mishards.common.security import InternalAuthInterceptor, InternalSecurity, TlsFiles, token_matches
from mishards.common.server import create_server, internal_channel
from mishards.common.settings import Settings, SettingsError

TOKEN = "s3cret-internal-token"
ECHO = "/test.Echo/Say"
WATCH = "/test.Echo/Watch"


def _identity(b: bytes) -> bytes:
    return b


async def _say(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"echo:" + request


async def _watch(request: bytes, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
    for i in range(2):
        yield b"%d" % i


HANDLERS = grpc.method_handlers_generic_handler(
    "test.Echo",
    {
        "Say": grpc.unary_unary_rpc_method_handler(_say, _identity, _identity),
        "Watch": grpc.unary_stream_rpc_method_handler(_watch, _identity, _identity),
    },
)


async def _start(token: str = TOKEN, tls: TlsFiles | None = None):  # type: ignore[no-untyped-def]
    srv = create_server("127.0.0.1", 0, interceptors=[InternalAuthInterceptor("test", token)], tls=tls)
    srv.server.add_generic_rpc_handlers((HANDLERS,))
    await srv.server.start()
    return srv


async def _call(channel: grpc.aio.Channel) -> bytes:
    return await channel.unary_unary(ECHO, _identity, _identity)(b"hi", timeout=5)  # type: ignore[no-any-return]


def test_token_matches_only_the_exact_bearer_token() -> None:
    assert token_matches((("authorization", "Bearer " + TOKEN),), TOKEN)
    assert not token_matches((("authorization", TOKEN),), TOKEN)
    assert not token_matches((("authorization", "Bearer " + TOKEN + "x"),), TOKEN)
    assert not token_matches((("x-other", "Bearer " + TOKEN),), TOKEN)
    assert not token_matches((), TOKEN)


def test_gate_refuses_missing_and_wrong_tokens_and_logs_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        srv = await _start()
        address = f"127.0.0.1:{srv.port}"
        try:
            async with grpc.aio.insecure_channel(address) as plain:
                with pytest.raises(grpc.aio.AioRpcError) as missing:
                    await _call(plain)
                assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
                stream = plain.unary_stream(WATCH, _identity, _identity)(b"", timeout=5)
                with pytest.raises(grpc.aio.AioRpcError) as stream_missing:
                    async for _ in stream:
                        pass
                assert stream_missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
                # grpc.health.v1 is exempt: probes hold no secret.
                reply = await health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            wrong = internal_channel(address, InternalSecurity(token="not-" + TOKEN))
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await _call(wrong)
            assert bad.value.code() == grpc.StatusCode.UNAUTHENTICATED
            await wrong.close()
            good = internal_channel(address, InternalSecurity(token=TOKEN))
            assert await _call(good) == b"echo:hi"
            items = [x async for x in good.unary_stream(WATCH, _identity, _identity)(b"", timeout=5)]
            assert items == [b"0", b"1"]
            await good.close()
        finally:
            await srv.server.stop(0)

    with caplog.at_level(logging.WARNING, logger="mishards.common.security"):
        asyncio.run(scenario())
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 3 and all(ECHO in m or WATCH in m for m in refusals)
    assert not any(TOKEN in r.getMessage() for r in caplog.records)


def test_sync_channel_sends_the_token() -> None:
    async def scenario() -> None:
        srv = await _start()
        try:
            sync = InternalSecurity(token=TOKEN).sync_channel(f"127.0.0.1:{srv.port}")
            answer = await asyncio.to_thread(lambda: sync.unary_unary(ECHO, _identity, _identity)(b"x", timeout=5))
            assert answer == b"echo:x"
            sync.close()
        finally:
            await srv.server.stop(0)

    asyncio.run(scenario())


def test_settings_mask_the_internal_token_and_check_tls_files(tmp_path: Path) -> None:
    settings = Settings(MISHARDS_INTERNAL_TOKEN=TOKEN)
    assert TOKEN not in repr(settings)
    with pytest.raises(SettingsError, match="TLS_CERT_FILE and TLS_KEY_FILE"):
        Settings(TLS_CERT_FILE=str(tmp_path / "c.pem"))
    with pytest.raises(SettingsError, match="TLS_CLIENT_CA_FILE"):
        Settings(TLS_CLIENT_CA_FILE=str(tmp_path / "ca.pem"))
    from mishards.common.settings import settings_from_mapping

    with pytest.raises(SettingsError, match="TLS_CA_FILE"):
        settings_from_mapping({"TLS_CA_FILE": str(tmp_path / "missing.pem")})


tls_testing = pytest.importorskip("mishards.common.tls_testing")


def test_tls_and_mutual_tls_with_the_internal_token(tmp_path: Path) -> None:
    pki = tls_testing.make_pki(tmp_path / "pki")
    other = tls_testing.make_pki(tmp_path / "other")

    async def scenario() -> None:
        tls = TlsFiles(cert=str(pki.cert), key=str(pki.key), ca=str(pki.ca))
        srv = await _start(tls=tls)
        address = f"127.0.0.1:{srv.port}"
        try:
            client = internal_channel(address, InternalSecurity(token=TOKEN, tls=tls))
            assert await _call(client) == b"echo:hi"
            await client.close()
            async with grpc.aio.insecure_channel(address) as plain:  # a TLS port refuses plaintext
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await _call(plain)
                assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
            untrusting = internal_channel(address, InternalSecurity(token=TOKEN, tls=TlsFiles(
                cert=str(pki.cert), key=str(pki.key), ca=str(other.ca))))  # fmt: skip
            with pytest.raises(grpc.aio.AioRpcError) as exc2:
                await _call(untrusting)
            assert exc2.value.code() == grpc.StatusCode.UNAVAILABLE
            await untrusting.close()
        finally:
            await srv.server.stop(0)

        mutual = TlsFiles(cert=str(pki.cert), key=str(pki.key), client_ca=str(pki.ca))
        srv = await _start(tls=mutual)
        address = f"127.0.0.1:{srv.port}"
        try:
            client = internal_channel(address, InternalSecurity(token=TOKEN, tls=mutual))
            assert await _call(client) == b"echo:hi"
            await client.close()
            # Trusting the server is not enough: without a client certificate the handshake fails.
            no_cert = internal_channel(address, InternalSecurity(token=TOKEN, tls=TlsFiles(
                cert=str(pki.cert), key=str(pki.key), ca=str(pki.ca))))  # fmt: skip
            with pytest.raises(grpc.aio.AioRpcError) as exc3:
                await _call(no_cert)
            assert exc3.value.code() == grpc.StatusCode.UNAVAILABLE
            await no_cert.close()
            # A client certificate from another CA is refused too.
            stranger = internal_channel(address, InternalSecurity(token=TOKEN, tls=TlsFiles(
                cert=str(other.cert), key=str(other.key), client_ca=str(pki.ca))))  # fmt: skip
            with pytest.raises(grpc.aio.AioRpcError) as exc4:
                await _call(stranger)
            assert exc4.value.code() == grpc.StatusCode.UNAVAILABLE
            await stranger.close()
        finally:
            await srv.server.stop(0)

    asyncio.run(scenario())
