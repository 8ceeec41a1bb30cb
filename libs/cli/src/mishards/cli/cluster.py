"""The embedded cluster: Milvus instances, discovery, meta and router as child processes.

Used by `mishards up` and by the integration tests. Everything lives under one root
folder: ``cluster.json`` records the service ports (so a restart on the same folder
finds the same addresses), ``instances/`` holds the Milvus instances, ``logs/`` the
output of every service, ``run/`` their PID files.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mishards.cli.launcher import (
    Backend,
    MilvusInstance,
    Role,
    bring_up_instances,
    log_tail,
    open_instances,
    read_record,
    stop_instances,
    terminate_process,
    write_record,
)
from mishards.cli.ports import (
    DEFAULT_PORT_RANGE,
    LOCALHOST,
    PortAllocator,
    ephemeral_allocator,
)
from mishards.common.security import InternalSecurity, TlsFiles

ServiceName = Literal["discovery", "meta", "router"]
# Start order; stop runs in reverse.
SERVICES: tuple[ServiceName, ...] = ("discovery", "meta", "router")
CLUSTER_FILE = "cluster.json"
# The generated MISHARDS_INTERNAL_TOKEN of a cluster folder (mode 0600); the CLI reads it too.
TOKEN_FILE = "internal-token"
# The generated MILVUS_BACKEND_TOKEN ("root:<password>") of the cluster's embedded Milvus instances (mode 0600).
BACKEND_TOKEN_FILE = "backend-token"
CLUSTER_RECORD_VERSION = 1
DEFAULT_ROUTER_PORT = 19530
# The README defaults, taken by `mishards up` when free.
DEFAULT_SERVICE_PORTS: dict[str, int] = {
    "meta": 19541,
    "discovery": 19542,
    "router_metrics": 9191,
    "meta_metrics": 9192,
    "discovery_metrics": 9193,
}


class ServiceError(RuntimeError):
    """A service process could not be started or did not become SERVING."""


def grpc_serving(address: str, timeout: float = 2.0, security: InternalSecurity | None = None) -> bool:
    """True when ``grpc.health.v1`` at ``address`` answers SERVING for the server ("")."""
    try:
        with (security or InternalSecurity()).sync_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def read_or_create_token(root_dir: Path, name: str = TOKEN_FILE, prefix: str = "") -> str:
    """A token of the cluster folder: read from ``name``, or ``prefix`` + a random one written mode 0600."""
    path = root_dir / name
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    root_dir.mkdir(parents=True, exist_ok=True)
    token = prefix + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def backend_token(root_dir: Path, backend: str, extra_env: Mapping[str, str] | None = None) -> str:
    """MILVUS_BACKEND_TOKEN of a cluster folder's instances: ``extra_env``'s, else for the ``milvus``
    backend root's generated password (``backend-token``), else none (milvus-lite has no authentication)."""
    given = (extra_env or {}).get("MILVUS_BACKEND_TOKEN")
    if given is not None:
        return given
    if backend != "milvus":
        return ""
    return read_or_create_token(root_dir, BACKEND_TOKEN_FILE, prefix="root:")


def console_script(name: str) -> list[str]:
    """The command of an installed console script: next to ``sys.executable`` first, then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    raise ServiceError(f"{name} is not installed (looked in {beside.parent} and PATH)")


class ServiceProcess:
    """One Mishards service run as a child process in its own process group."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        port: int,
        log_file: Path,
        pid_file: Path,
        security: InternalSecurity | None = None,
    ) -> None:
        self.name = name
        self.security = security
        self.command = list(command)
        self.env = dict(env)
        self.port = port
        self.log_file = log_file
        self.pid_file = pid_file
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """``127.0.0.1:port`` of the service's gRPC endpoint."""
        return f"{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running (or last started) process."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the process unless it runs already (returns at once)."""
        with self._lock:
            if self.is_running():
                return
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "ab") as log:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                log.write(f"\n==== {stamp} start {self.command}\n".encode())
                log.flush()
                self._proc = subprocess.Popen(
                    self.command,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pid_file.parent.mkdir(parents=True, exist_ok=True)
            self.pid_file.write_text(f"{self._proc.pid}\n")

    def wait_ready(self, timeout: float) -> None:
        """Block until the health check says SERVING; raise ServiceError with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc
            if proc is None:
                raise ServiceError(f"{self.name} was not started")
            if proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {proc.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{log_tail(self.log_file)}"
                )
            if grpc_serving(self.address, timeout=1.0, security=self.security):
                return
            if time.monotonic() >= deadline:
                raise ServiceError(
                    f"{self.name} not SERVING on {self.address} after {timeout:.0f}s; "
                    f"last lines of {self.log_file}:\n{log_tail(self.log_file)}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds."""
        with self._lock:
            if self._proc is not None:
                terminate_process(self._proc, timeout)
                self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the process group at once, as a crash would."""
        with self._lock:
            if self._proc is not None:
                terminate_process(self._proc, 0.0, first_signal=signal.SIGKILL)


class Cluster:
    """Milvus instances plus discovery (static), meta (SQLite) and router, all child processes.

    ``start`` brings everything up and waits until it serves; ``stop`` (also on
    leaving the ``with`` block, on a failed start, and at interpreter exit) ends
    every process it started, router first, by PID. Ports are recorded in
    ``root_dir/cluster.json`` and in the instances' folders, so a second start on
    the same ``root_dir`` finds the same addresses and data.

    ``extra_env`` goes to all three services and wins over the values set here.
    ``router_workers`` is the router's ROUTER_WORKERS (its PID is then the workers' supervisor's).
    ``service_commands`` replaces the console scripts (tests use stand-ins).
    """

    def __init__(
        self,
        root_dir: Path | str,
        writable: int = 2,
        readonly: int = 0,
        backend: Backend = "milvus",
        router_port: int = DEFAULT_ROUTER_PORT,
        extra_env: Mapping[str, str] | None = None,
        database_uri: str | None = None,
        *,
        port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
        prefer_default_ports: bool = False,
        service_commands: Mapping[str, Sequence[str]] | None = None,
        start_timeout: float = 180.0,
        stop_timeout: float = 15.0,
        router_workers: int = 1,
    ) -> None:
        if not 0 <= router_port <= 65535:
            raise ValueError(f"bad router port {router_port}")
        if router_workers < 1:
            raise ValueError(f"bad number of router workers {router_workers}")
        self.root_dir = Path(root_dir).absolute()
        self.writable = writable
        self.readonly = readonly
        self.backend: Backend = backend
        self.extra_env = {str(k): str(v) for k, v in (extra_env or {}).items()}
        self.database_uri = database_uri or f"sqlite:///{self.root_dir / 'meta.db'}"
        self.port_range = port_range
        self.prefer_default_ports = prefer_default_ports
        self.service_commands = dict(service_commands or {})
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.router_workers = router_workers
        self._requested_router_port = router_port
        self.ports: dict[str, int] = {}
        self.instances: list[MilvusInstance] = []
        self.services: dict[str, ServiceProcess] = {}
        self.extra_routers: list[ServiceProcess] = []
        self._extra_router_count = 0
        self._atexit_registered = False

    # -- addresses --------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        """Where the services' output goes (``root_dir/logs``)."""
        return self.root_dir / "logs"

    @property
    def router_port(self) -> int:
        """The router's Milvus-protocol port (known once ports are resolved)."""
        return self._port("router")

    @property
    def router_address(self) -> str:
        """``127.0.0.1:port`` of the router."""
        return f"{LOCALHOST}:{self.router_port}"

    @property
    def router_uri(self) -> str:
        """``http://127.0.0.1:port``: what pymilvus's ``MilvusClient(uri=...)`` takes."""
        return f"http://{self.router_address}"

    @property
    def meta_address(self) -> str:
        """``127.0.0.1:port`` of meta."""
        return f"{LOCALHOST}:{self._port('meta')}"

    @property
    def discovery_address(self) -> str:
        """``127.0.0.1:port`` of discovery."""
        return f"{LOCALHOST}:{self._port('discovery')}"

    @property
    def writable_instances(self) -> list[MilvusInstance]:
        return [i for i in self.instances if i.role == "writable"]

    @property
    def readonly_instances(self) -> list[MilvusInstance]:
        return [i for i in self.instances if i.role == "readonly"]

    @property
    def internal_token(self) -> str:
        """MISHARDS_INTERNAL_TOKEN of the services: ``extra_env``'s, else the folder's (generated once)."""
        return self.extra_env.get("MISHARDS_INTERNAL_TOKEN") or read_or_create_token(self.root_dir)

    @property
    def backend_token(self) -> str:
        """MILVUS_BACKEND_TOKEN of the services and the instances (see ``backend_token``)."""
        return backend_token(self.root_dir, self.backend, self.extra_env)

    @property
    def security(self) -> InternalSecurity:
        """What a client of meta and discovery needs: the token, and the TLS files of ``extra_env``."""
        env = self.extra_env
        tls = TlsFiles(
            env.get("TLS_CERT_FILE", ""), env.get("TLS_KEY_FILE", ""), env.get("TLS_CLIENT_CA_FILE", ""),
            env.get("TLS_CA_FILE", ""),
        )  # fmt: skip
        return InternalSecurity(token=self.internal_token, tls=tls)

    def meta_channel(self) -> grpc.Channel:
        """A blocking channel to meta that presents the internal token (and TLS when configured)."""
        return self.security.sync_channel(self.meta_address)

    def discovery_channel(self) -> grpc.Channel:
        """A blocking channel to discovery that presents the internal token (and TLS when configured)."""
        return self.security.sync_channel(self.discovery_address)

    def _port(self, key: str) -> int:
        if not self.ports:
            self.resolve_ports()
        return self.ports[key]

    # -- ports ------------------------------------------------------------------

    def resolve_ports(self) -> dict[str, int]:
        """Service ports: recorded in ``cluster.json`` when there, else allocated and recorded."""
        if self.ports:
            return self.ports
        record_path = self.root_dir / CLUSTER_FILE
        record = read_record(record_path) or {}
        recorded = record.get("ports")
        ports: dict[str, int] = {str(k): int(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}
        allocator = ephemeral_allocator()
        allocator.reserve(ports.values())
        if self._requested_router_port:
            ports["router"] = self._requested_router_port
        elif "router" not in ports:
            ports["router"] = allocator.allocate_one()
        for key in (
            "discovery",
            "meta",
            "discovery_metrics",
            "meta_metrics",
            "router_metrics",
        ):
            if key not in ports:
                preferred = DEFAULT_SERVICE_PORTS[key] if self.prefer_default_ports else None
                ports[key] = allocator.allocate_one(preferred)
        write_record(
            record_path,
            {
                "version": CLUSTER_RECORD_VERSION,
                "backend": self.backend,
                "ports": ports,
            },
        )
        self.ports = ports
        return ports

    # -- membership -------------------------------------------------------------

    @property
    def instances_file(self) -> Path:
        """The instance list the discovery service follows (its `file` back end)."""
        return self.root_dir / "instances.yaml"

    def write_instances_file(self, instances: Sequence[MilvusInstance] | None = None) -> None:
        """Publish the instances to discovery (atomically: a reader never sees half a file)."""
        rows = [
            f"- {{address: '{i.address}', role: {i.role}}}"
            for i in (self.instances if instances is None else instances)
        ]
        tmp = self.instances_file.with_suffix(".tmp")
        tmp.write_text("\n".join(rows) + "\n" if rows else "[]\n")
        os.replace(tmp, self.instances_file)

    def add_readonly(self, count: int = 1) -> list[MilvusInstance]:
        """Start `count` more read-only instances and announce them to the running cluster."""
        return self.add_instances("readonly", count)

    def add_writable(self, count: int = 1) -> list[MilvusInstance]:
        """Start `count` more writable instances and announce them (meta may move shards onto them)."""
        return self.add_instances("writable", count)

    def add_instances(self, role: Role, count: int) -> list[MilvusInstance]:
        from mishards.cli.launcher import BACKENDS, instance_dir

        allocator = PortAllocator(*self.port_range)
        for inst in self.instances:
            allocator.reserve(inst.ports.values())
        taken = {i.data_dir for i in self.instances}
        added: list[MilvusInstance] = []
        index = 0
        while len(added) < count:
            folder = instance_dir(self.root_dir, role, index)
            index += 1
            if folder in taken:
                continue
            added.append(BACKENDS[self.backend].open(folder, role, allocator))
            added[-1].token = self.backend_token
        bring_up_instances(added, self.start_timeout)
        self.instances.extend(added)
        if role == "readonly":
            self.readonly += len(added)
        else:
            self.writable += len(added)
        self.write_instances_file()
        return added

    def remove_instance(self, instance: MilvusInstance) -> None:
        """Withdraw an instance from discovery (its replicas are drained) and stop it."""
        self.instances = [i for i in self.instances if i is not instance]
        if instance.role == "readonly":
            self.readonly -= 1
        else:
            self.writable -= 1
        self.write_instances_file()
        instance.stop()

    # -- services ---------------------------------------------------------------

    def _service_env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SERVER_HOST=LOCALHOST,
            METRICS_HOST=LOCALHOST,
            MISHARDS_INTERNAL_TOKEN=self.internal_token,
            MILVUS_BACKEND_TOKEN=self.backend_token,
            LOG_PATH=str(self.log_dir),
            METRICS_PORT=str(self.ports[f"{name}_metrics"]),
        )
        if name == "discovery":
            # The file back end, so that instances can join a running cluster (add_readonly).
            env.update(
                DISCOVERY_CLASS_NAME="file",
                DISCOVERY_FILE_PATH=str(self.instances_file),
                WOSERVER=",".join(i.address for i in self.writable_instances),
                DISCOVERY_STATIC_HOSTS=",".join(i.address for i in self.readonly_instances),
                DISCOVERY_SERVER_PORT=str(self.ports["discovery"]),
                DISCOVERY_PROBE_INTERVAL="1",
            )
        elif name == "meta":
            env.update(
                META_SERVER_PORT=str(self.ports["meta"]),
                DISCOVERY_ADDRESS=self.discovery_address,
                SQLALCHEMY_DATABASE_URI=self.database_uri,
            )
        else:
            env.update(
                SERVER_PORT=str(self.ports["router"]),
                META_ADDRESS=self.meta_address,
                DISCOVERY_ADDRESS=self.discovery_address,
                ROUTER_WORKERS=str(self.router_workers),
            )
        env.update(self.extra_env)
        return env

    def _make_service(self, name: str) -> ServiceProcess:
        command = self.service_commands.get(name) or console_script(f"mishards-{name}")
        return ServiceProcess(
            name,
            command,
            self._service_env(name),
            self.ports[name],
            self.log_dir / f"{name}.out",
            self.root_dir / "run" / f"{name}.pid",
            self.security,
        )

    def _service(self, name: str) -> ServiceProcess:
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}; known: {', '.join(SERVICES)}")
        if name not in self.services:
            self.services[name] = self._make_service(name)
        return self.services[name]

    def start_service(self, name: str, timeout: float | None = None) -> None:
        """Start one service ("meta" | "discovery" | "router") and wait until it is SERVING."""
        service = self._service(name)
        service.start()
        service.wait_ready(self.start_timeout if timeout is None else timeout)

    def stop_service(self, name: str, timeout: float | None = None) -> None:
        """SIGTERM one service (its process group), SIGKILL after ``timeout``."""
        if name in self.services:
            self.services[name].stop(self.stop_timeout if timeout is None else timeout)
        else:
            self._service(name)  # validates the name

    def kill_service(self, name: str) -> None:
        """SIGKILL one service at once, as a crash would."""
        if name in self.services:
            self.services[name].kill()
        else:
            self._service(name)

    def service_pid(self, name: str) -> int | None:
        """PID of a service process (None before its first start)."""
        service = self.services.get(name)
        return service.pid if service else None

    def start_extra_router(
        self, timeout: float | None = None, overrides: Mapping[str, str] | None = None
    ) -> ServiceProcess:
        """Start one more router over the same meta and discovery; return it once it serves.

        It gets the router's settings with its own free loopback ports (Milvus protocol
        and metrics), its own log folder ``logs/router-N`` and PID file ``run/router-N.pid``.
        Its ``port``, ``address`` and ``pid`` say where it is; its ``stop`` ends it (by PID,
        with its process group). Extra routers are not recorded in ``cluster.json``:
        ``stop`` ends them first, and a restart does not bring them back.
        """
        if not self.ports:
            raise ServiceError("start the cluster before an extra router")
        self._extra_router_count += 1
        name = f"router-{self._extra_router_count}"
        allocator = ephemeral_allocator()
        allocator.reserve(self.ports.values())
        port, metrics_port = allocator.allocate_one(), allocator.allocate_one()
        env = self._service_env("router")
        env.update(
            SERVER_PORT=str(port),
            METRICS_PORT=str(metrics_port),
            LOG_PATH=str(self.log_dir / name),
        )
        env.update(overrides or {})
        command = self.service_commands.get("router") or console_script("mishards-router")
        service = ServiceProcess(
            name,
            command,
            env,
            port,
            self.log_dir / f"{name}.out",
            self.root_dir / "run" / f"{name}.pid",
            self.security,
        )
        self.extra_routers.append(service)
        try:
            service.start()
            service.wait_ready(self.start_timeout if timeout is None else timeout)
        except BaseException:
            service.stop(self.stop_timeout)
            self.extra_routers.remove(service)
            raise
        return service

    # -- life cycle -------------------------------------------------------------

    def start(self) -> Self:
        """Start instances, discovery, meta and router; return once all serve.

        On any failure everything started so far is stopped and the error raised.
        """
        self.root_dir.mkdir(parents=True, exist_ok=True)
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self.resolve_ports()
            self.instances = open_instances(
                self.root_dir,
                self.writable,
                self.readonly,
                self.backend,
                self.port_range,
                token=self.backend_token,
            )
            self.write_instances_file()
            self.services.clear()
            # Build the services (their env names the instances) before starting
            # anything heavy, so a missing console script fails fast.
            for name in SERVICES:
                self._service(name)
            bring_up_instances(self.instances, self.start_timeout)
            for name in SERVICES:
                self.start_service(name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop extra routers, router, meta, discovery, then the instances; never leaves a process behind."""
        for extra in self.extra_routers:
            extra.stop(self.stop_timeout)
        self.extra_routers.clear()
        for name in reversed(SERVICES):
            service = self.services.get(name)
            if service is not None:
                service.stop(self.stop_timeout)
        stop_instances(self.instances)
        self._release_ports()
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    def _release_ports(self) -> None:
        """Give this cluster's ports back to the process-wide registry, so that one process (a
        test session) can start cluster after cluster; a restart re-reserves the recorded ones."""
        instance_ports = [int(p) for inst in self.instances for p in inst.ports.values()]
        PortAllocator(*self.port_range).release(instance_ports)
        ephemeral_allocator().release(int(p) for p in self.ports.values())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Cluster({self.root_dir}, writable={self.writable}, readonly={self.readonly}, backend={self.backend!r})"
