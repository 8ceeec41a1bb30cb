"""A testcontainers driver of the integration harness: MySQL, two `milvusdb/milvus`
standalone containers and the Mishards image (discovery, meta, router) on one Docker
network. It offers what tests/integration uses of `mishards.cli.cluster.Cluster`:
`start()`, `stop()`, `router_uri` and `instances[i].address`.

Chosen when a Docker engine answers (`docker_available()`); these machines have none, so
the tests that use it skip with that reason.
"""

from __future__ import annotations

import os
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

MILVUS_IMAGE = os.environ.get("MILVUS_IMAGE", "milvusdb/milvus:v2.5.4")
MYSQL_IMAGE = os.environ.get("MYSQL_IMAGE", "mysql:8.0.40")
MISHARDS_IMAGE = os.environ.get("MISHARDS_IMAGE", "mishards:0.1.0")


def docker_available() -> tuple[bool, str]:
    """(True, "") when a Docker engine answers, else (False, why)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:  # no socket, no permission, no engine
        return False, f"no Docker engine reachable ({type(exc).__name__}: {exc})"
    return True, ""


def wait_healthz(url: str, timeout: float = 180.0) -> None:
    """Milvus is ready when /healthz on 9091 answers 200 (what the chart's readiness probe asks)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")
        time.sleep(2)


@dataclass
class Instance:
    address: str
    role: str


@dataclass
class ContainerCluster:
    writable: int = 2
    readonly: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    router_uri: str = ""
    _containers: list[Any] = field(default_factory=list)
    _network: Any = None

    def _run(self, container: Any, alias: str) -> Any:
        container.with_network(self._network).with_network_aliases(alias)
        container.start()
        self._containers.append(container)
        return container

    def start(self) -> None:
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.network import Network
        from testcontainers.core.waiting_utils import wait_for_logs

        self._network = Network().create()
        milvus_hosts: dict[str, list[str]] = {"writable": [], "readonly": []}
        for role, count in (("writable", self.writable), ("readonly", self.readonly)):
            for i in range(count):
                alias = f"milvus-{role[:2]}-{i}"
                milvus = (
                    DockerContainer(MILVUS_IMAGE)
                    .with_command("milvus run standalone")
                    .with_env("ETCD_USE_EMBED", "true")
                    .with_env("ETCD_DATA_DIR", "/var/lib/milvus/etcd")
                    .with_env("COMMON_STORAGETYPE", "local")
                    .with_exposed_ports(19530, 9091)
                )
                self._run(milvus, alias)
                wait_healthz(f"http://{milvus.get_container_host_ip()}:{milvus.get_exposed_port(9091)}/healthz")
                milvus_hosts[role].append(f"{alias}:19530")
                host = milvus.get_container_host_ip()
                self.instances.append(Instance(f"{host}:{milvus.get_exposed_port(19530)}", role))
        mysql = (
            DockerContainer(MYSQL_IMAGE)
            .with_command("--default-authentication-plugin=mysql_native_password")
            .with_env("MYSQL_ROOT_PASSWORD", "mishards")
            .with_env("MYSQL_DATABASE", "mishards")
        )
        self._run(mysql, "mysql")
        wait_for_logs(mysql, "port: 3306  MySQL Community Server", timeout=120)
        common = {"LOG_LEVEL": "INFO", "DISCOVERY_ADDRESS": "discovery:19542", "META_ADDRESS": "meta:19541"}
        common.update(self.extra_env)
        services = {
            "discovery": {
                "DISCOVERY_CLASS_NAME": "static",
                "WOSERVER": ",".join(milvus_hosts["writable"]),
                "DISCOVERY_STATIC_HOSTS": ",".join(milvus_hosts["readonly"]),
            },
            "meta": {"SQLALCHEMY_DATABASE_URI": "mysql+pymysql://root:mishards@mysql:3306/mishards?charset=utf8mb4"},
            "router": {},
        }
        for name, env in services.items():
            container = DockerContainer(MISHARDS_IMAGE).with_command(f"mishards-{name}")
            for key, value in {**common, **env}.items():
                container.with_env(key, value)
            if name == "router":
                container.with_exposed_ports(19530)
            self._run(container, name)
            wait_for_logs(container, f"{name} serving on port", timeout=120)
            if name == "router":
                host = container.get_container_host_ip()
                self.router_uri = f"http://{host}:{container.get_exposed_port(19530)}"

    def stop(self) -> None:
        for container in reversed(self._containers):
            try:
                container.stop()
            except Exception:  # best effort: the next container must still go
                pass
        self._containers.clear()
        if self._network is not None:
            self._network.remove()
            self._network = None
