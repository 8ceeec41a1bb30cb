"""Container health check: ask the service in this container for grpc.health.v1 SERVING.

The image runs one of three console scripts as PID 1; the port to ask follows from which
one it is and the same settings the service reads (SERVER_PORT, META_SERVER_PORT,
DISCOVERY_SERVER_PORT). Exit 0 when SERVING, 1 otherwise: no grpc_health_probe binary.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

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


def main() -> None:
    script = sys.argv[1] if len(sys.argv) > 1 else service_of_pid1()
    port = getattr(load_settings(), PORT_SETTING[script])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
        except grpc.RpcError as exc:
            raise SystemExit(f"healthcheck: {script} on port {port}: {exc.code().name}") from None
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(f"healthcheck: {script} on port {port}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
    print(f"{script} on port {port}: SERVING")


if __name__ == "__main__":
    main()
