"""Stand-in for mishards-discovery/meta/router in the CLI tests: serves grpc.health.v1.

Usage: python standin_service.py NAME. Listens on the port the Cluster passes to NAME,
writes its environment to LOG_PATH/NAME.env.json, and as "discovery" also answers
ListInstances from WOSERVER and DISCOVERY_STATIC_HOSTS. STANDIN_FAIL=NAME makes NAME
print a message and exit 3 at once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mishards.v1 import discovery_pb2, discovery_pb2_grpc

PORT_VARS = {
    "discovery": "DISCOVERY_SERVER_PORT",
    "meta": "META_SERVER_PORT",
    "router": "SERVER_PORT",
}


class Discovery(discovery_pb2_grpc.DiscoveryServicer):
    def ListInstances(self, request: object, context: object) -> discovery_pb2.Membership:
        instances = []
        for var, role in (
            ("WOSERVER", discovery_pb2.WRITABLE),
            ("DISCOVERY_STATIC_HOSTS", discovery_pb2.READONLY),
        ):
            for address in filter(None, os.environ.get(var, "").split(",")):
                instances.append(
                    discovery_pb2.Instance(
                        identity=address,
                        address=address,
                        role=role,
                        health=discovery_pb2.HEALTHY,
                    )
                )
        return discovery_pb2.Membership(version=1, instances=instances, backend_ok=True)


def main() -> int:
    name = sys.argv[1]
    if os.environ.get("STANDIN_FAIL") == name:
        print(f"{name}: bad setting STANDIN_FAIL", flush=True)
        return 3
    log_path = Path(os.environ["LOG_PATH"])
    log_path.mkdir(parents=True, exist_ok=True)
    (log_path / f"{name}.env.json").write_text(json.dumps(dict(os.environ)))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if name == "discovery":
        discovery_pb2_grpc.add_DiscoveryServicer_to_server(Discovery(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"{os.environ['SERVER_HOST']}:{os.environ[PORT_VARS[name]]}")
    server.start()
    print(f"{name} serving", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
