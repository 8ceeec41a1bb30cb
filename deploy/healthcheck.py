"""Container health check: ask the service in this container for grpc.health.v1 SERVING.

The image runs one of three console scripts as PID 1; the port to ask follows from which
one it is and the same settings the service reads (SERVER_PORT, META_SERVER_PORT,
DISCOVERY_SERVER_PORT). With TLS on (TLS_CERT_FILE) it dials TLS, verifies the certificate
with TLS_CA_FILE (else TLS_CLIENT_CA_FILE) for the name TLS_SERVER_NAME (else localhost)
and presents the service's own certificate when TLS is mutual: a Kubernetes `grpc:` probe
cannot do TLS, so the chart's probes exec this. Exit 0 when SERVING, 1 otherwise.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mishards.common.security import InternalSecurity
from mishards.common.settings import load_settings

PORT_SETTING = {
    "mishards-router": "SERVER_PORT",
    "mishards-meta": "META_SERVER_PORT",
    "mishards-discovery": "DISCOVERY_SERVER_PORT",
}


def service_of_pid1() -> str:
    with open("/proc/1/cmdline", "rb") as f:
        argv = [part.decode() for part in f.read().split(b"\0") if part]
    for part in argv:
        for script in PORT_SETTING:
            if part.endswith(script):
                return script
    raise SystemExit(f"healthcheck: PID 1 is not a Mishards service: {argv}")


def health_channel(settings, port: int) -> grpc.Channel:  # type: ignore[no-untyped-def]
    security = InternalSecurity.from_settings(settings)
    if not security.tls.enabled:
        return grpc.insecure_channel(f"127.0.0.1:{port}")
    # The certificate names the service, not 127.0.0.1: check the configured name (else localhost).
    options = [("grpc.ssl_target_name_override", settings.TLS_SERVER_NAME or "localhost")]
    return grpc.secure_channel(f"127.0.0.1:{port}", security.tls.client_credentials(), options=options)


def main() -> None:
    script = sys.argv[1] if len(sys.argv) > 1 else service_of_pid1()
    settings = load_settings()
    port = getattr(settings, PORT_SETTING[script])
    with health_channel(settings, port) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
        except grpc.RpcError as exc:
            raise SystemExit(f"healthcheck: {script} on port {port}: {exc.code().name}") from None
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(f"healthcheck: {script} on port {port}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
    print(f"{script} on port {port}: SERVING")


if __name__ == "__main__":
    main()
