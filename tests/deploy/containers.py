"""A testcontainers driver: the Mishards image's three services (discovery, meta, router) run as
containers on the host's network, over embedded Milvus 2.3.5 instances that the project's
launcher starts on this host, with meta's store in MariaDB on 127.0.0.1:3306 (what CI runs).
It offers what the integration tests use of `mishards.cli.cluster.Cluster`: `start()`,
`stop()`, `router_uri`, `meta_address`, `discovery_address` and `instances`.

The containers go through a Docker-compatible API: DOCKER_HOST when it answers, else a podman
system service on a private socket (`engine()`), which is how these machines run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MISHARDS_IMAGE = os.environ.get("MISHARDS_IMAGE", "localhost/mishards:0.1.0")
MYSQL_URI = os.environ.get("SQLALCHEMY_DATABASE_TEST_URI", "mysql+pymysql://root:@127.0.0.1:3306")
SERVICES = ("discovery", "meta", "router")
# testcontainers reads these when it is first imported: no Ryuk reaper container (it would
# need a registry), and container addresses taken from DOCKER_HOST (the host network here).
TESTCONTAINERS_ENV = {"TESTCONTAINERS_RYUK_DISABLED": "true", "TESTCONTAINERS_CONNECTION_MODE": "docker_host"}


def engine_answers(docker_host: str | None) -> tuple[bool, str]:
    """(True, "") when the Docker-compatible API at docker_host (None: the environment's) answers."""
    try:
        import docker

        client = docker.DockerClient(base_url=docker_host, timeout=3) if docker_host else docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # no socket, no permission, no engine
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


@contextmanager
def podman_service(folder: Path, timeout: float = 30.0) -> Iterator[str]:
    """`podman system service` on folder/podman.sock for the block; yields its DOCKER_HOST."""
    socket = folder / "podman.sock"
    docker_host = f"unix://{socket}"
    with open(folder / "podman-service.log", "wb") as log:
        proc = subprocess.Popen(["podman", "system", "service", "--time=0", docker_host], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + timeout
        while not engine_answers(docker_host)[0]:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"podman system service did not answer: {(folder / 'podman-service.log').read_text()}"
                )
            time.sleep(0.2)
        yield docker_host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def engine() -> Iterator[str]:
    """A Docker-compatible API for testcontainers, with os.environ set for it during the block.

    Raises RuntimeError (with the reasons) when there is neither a Docker engine nor podman.
    """
    saved = {key: os.environ.get(key) for key in ("DOCKER_HOST", *TESTCONTAINERS_ENV)}
    os.environ.update(TESTCONTAINERS_ENV)
    try:
        ok, why = engine_answers(None)
        if ok:
            yield os.environ.get("DOCKER_HOST", "")
            return
        if shutil.which("podman") is None:
            raise RuntimeError(f"no Docker engine ({why}) and no podman (deploy/podman/install.sh installs it)")
        with tempfile.TemporaryDirectory(prefix="mishards-podman-") as folder:
            with podman_service(Path(folder)) as docker_host:
                os.environ["DOCKER_HOST"] = docker_host
                yield docker_host
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def image_exists(image: str) -> bool:
    """Whether the engine of os.environ's DOCKER_HOST holds the image (nothing can be pulled here)."""
    import docker

    client = docker.from_env(timeout=10)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()
    return True


@contextmanager
def mysql_database(server_uri: str = MYSQL_URI) -> Iterator[str]:
    """A fresh database on the MySQL server for the block; yields its SQLAlchemy URI."""
    import sqlalchemy

    name = f"mishards_tc_{uuid.uuid4().hex[:10]}"
    server = sqlalchemy.create_engine(server_uri)
    try:
        with server.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield f"{server_uri}/{name}?charset=utf8mb4"
    finally:
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        server.dispose()


@dataclass
class ContainerCluster:
    """Embedded Milvus on the host; discovery (static), meta (MySQL) and router from the image."""

    root_dir: Path
    database_uri: str
    writable: int = 2
    readonly: int = 0
    image: str = MISHARDS_IMAGE
    extra_env: dict[str, str] = field(default_factory=dict)
    instances: list[Any] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    containers: dict[str, Any] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)

    @property
    def router_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['router']}"

    @property
    def meta_address(self) -> str:
        return f"127.0.0.1:{self.ports['meta']}"

    @property
    def discovery_address(self) -> str:
        return f"127.0.0.1:{self.ports['discovery']}"

    def _allocate_ports(self) -> None:
        from mishards.cli.ports import ephemeral_allocator

        allocator = ephemeral_allocator()
        keys = [*SERVICES, *(f"{name}_metrics" for name in SERVICES)]
        self.ports = dict(zip(keys, allocator.allocate(len(keys)), strict=True))

    def _env(self, name: str) -> dict[str, str]:
        env = {
            "LOG_LEVEL": "INFO",
            "SERVER_HOST": "127.0.0.1",
            "METRICS_PORT": str(self.ports[f"{name}_metrics"]),
            "DISCOVERY_ADDRESS": self.discovery_address,
            "META_ADDRESS": self.meta_address,
        }
        if name == "discovery":
            env.update(
                DISCOVERY_CLASS_NAME="static",
                DISCOVERY_SERVER_PORT=str(self.ports["discovery"]),
                WOSERVER=",".join(i.address for i in self.instances if i.role == "writable"),
                DISCOVERY_STATIC_HOSTS=",".join(i.address for i in self.instances if i.role == "readonly"),
            )
        elif name == "meta":
            env.update(META_SERVER_PORT=str(self.ports["meta"]), SQLALCHEMY_DATABASE_URI=self.database_uri)
        else:
            env.update(SERVER_PORT=str(self.ports["router"]))
        return {**env, **self.extra_env}

    def _start_service(self, name: str, timeout: float = 120.0) -> None:
        from testcontainers.core.container import DockerContainer

        from mishards.cli.cluster import grpc_serving

        container = DockerContainer(self.image, command=f"mishards-{name}", env=self._env(name), network_mode="host")
        container.start()
        self.containers[name] = container
        deadline = time.monotonic() + timeout
        while not grpc_serving(f"127.0.0.1:{self.ports[name]}"):
            state = container.get_wrapped_container()
            state.reload()
            if state.status != "running" or time.monotonic() > deadline:
                stdout, stderr = container.get_logs()
                raise RuntimeError(f"{name} ({state.status}) never served:\n{(stdout + stderr).decode()[-3000:]}")
            time.sleep(0.5)

    def start(self) -> ContainerCluster:
        """Start the instances, then discovery, meta and router, each once it can serve."""
        from mishards.cli.launcher import bring_up_instances, open_instances

        try:
            self._allocate_ports()
            self.instances = open_instances(self.root_dir, self.writable, self.readonly, "milvus")
            bring_up_instances(self.instances, 180.0)
            for name in SERVICES:
                self._start_service(name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: int = 20) -> None:
        """Stop the containers (router first: SIGTERM, exit codes in ``exit_codes``), then the instances."""
        from mishards.cli.launcher import stop_instances

        for name in reversed(SERVICES):
            container = self.containers.pop(name, None)
            if container is None:
                continue
            wrapped = container.get_wrapped_container()
            try:
                wrapped.stop(timeout=timeout)
                self.exit_codes[name] = int(wrapped.wait(timeout=timeout)["StatusCode"])
            finally:
                container.stop()  # removes it
        stop_instances(self.instances)
