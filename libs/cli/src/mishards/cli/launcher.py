"""Milvus instances run as child processes of `mishards up` and of the integration tests.

Each instance owns a data folder; its ports are recorded there (``instance.json``)
at the first start, so a restart on the same folder finds the same ports and data.
"""

from __future__ import annotations

import abc
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import ClassVar, Literal, Self

import grpc

from mishards.cli.ports import (
    DEFAULT_PORT_RANGE,
    LOCALHOST,
    PortAllocator,
    port_has_listener,
)
from mishards.common.security import backend_metadata

Role = Literal["writable", "readonly"]
Backend = Literal["milvus", "milvus-lite"]

RECORD_FILE = "instance.json"
RECORD_VERSION = 1
ROLE_PREFIX: dict[str, str] = {"writable": "wo", "readonly": "ro"}

# Config keys of milvus.MilvusServerConfig that name a listening port.
MILVUS_COMPONENT_PORTS: tuple[str, ...] = (
    "proxy_port",
    "etcd_port",
    "proxy_internal_port",
    "root_coord_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)


# Seconds Milvus may drain on SIGTERM before it quits by itself.
GRACEFUL_STOP_SECONDS = 3
# Seconds before the etcd session of a vanished Milvus component expires.
SESSION_TTL_SECONDS = 10
# Every new Milvus has the user root with this password (common.security.defaultRootPassword).
DEFAULT_ROOT_TOKEN = "root:Milvus"


class InstanceError(RuntimeError):
    """An instance could not be started, or is not what its data folder says."""


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def read_record(path: Path) -> dict[str, object] | None:
    """The JSON record at ``path``, or None when there is none."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InstanceError(f"unreadable record {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InstanceError(f"unreadable record {path}: not a JSON object")
    return data


def write_record(path: Path, data: Mapping[str, object]) -> None:
    """Write a JSON record atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group led by ``pid`` (our children start their own session)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def terminate_process(proc: subprocess.Popen[bytes], timeout: float, first_signal: int = signal.SIGTERM) -> None:
    """Stop a child started with ``start_new_session``: ``first_signal`` to its group, SIGKILL after ``timeout``."""
    if proc.poll() is None:
        signal_group(proc.pid, first_signal)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # The leader may be gone while others of its group live on: SIGKILL the group in any case.
    signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=max(timeout, 5.0))
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def grpc_milvus_healthy(address: str, timeout: float = 2.0, token: str = "") -> bool:
    """True when the Milvus gRPC endpoint at ``address`` answers CheckHealth with isHealthy.

    ``token`` ("user:password") is sent as pymilvus sends it; a Milvus with authorization on
    refuses a CheckHealth without a valid one.
    """
    from pymilvus.grpc_gen import (  # heavy import, only when probing
        milvus_pb2,
        milvus_pb2_grpc,
    )

    try:
        with grpc.insecure_channel(address) as channel:
            stub = milvus_pb2_grpc.MilvusServiceStub(channel)
            reply = stub.CheckHealth(milvus_pb2.CheckHealthRequest(), timeout=timeout, metadata=backend_metadata(token))
    except grpc.RpcError:
        return False
    return bool(reply.isHealthy) and reply.status.code == 0 and reply.status.error_code == 0


def change_root_password(address: str, old_token: str, new_token: str, timeout: float = 10.0) -> None:
    """UpdateCredential for root, authenticated as root with ``old_token`` (InstanceError when refused)."""
    from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

    def b64(token: str) -> str:
        return base64.b64encode(token.partition(":")[2].encode()).decode()

    request = milvus_pb2.UpdateCredentialRequest(
        username="root", oldPassword=b64(old_token), newPassword=b64(new_token)
    )
    try:
        with grpc.insecure_channel(address) as channel:
            status = milvus_pb2_grpc.MilvusServiceStub(channel).UpdateCredential(
                request, timeout=timeout, metadata=backend_metadata(old_token)
            )
    except grpc.RpcError as exc:
        raise InstanceError(f"{address}: changing root's password failed: {exc.code().name}") from None
    if status.code or status.error_code:
        raise InstanceError(f"{address}: changing root's password failed: {status.reason}")


def _cmdline_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


class MilvusInstance(abc.ABC):
    """One Milvus server (writable or read-only) running as a child process.

    The instance owns ``data_dir``: its record file (backend, role, ports), its data
    and its logs. ``pid`` is the PID of the real server process, which leads its own
    process group; ``stop`` ends that whole group, ``kill`` only the server (a crash).
    """

    backend: ClassVar[Backend]
    # Names of the ports this backend listens on; the first is the Milvus gRPC port.
    port_names: ClassVar[tuple[str, ...]]
    # Signal that asks the server to shut down cleanly.
    stop_signal: ClassVar[int] = signal.SIGTERM
    # The MILVUS_BACKEND_TOKEN ("user:password") clients reach this instance with; empty when
    # it takes anyone. An EmbeddedMilvus with a token runs with authorization on.
    token: str = ""

    def __init__(self, data_dir: Path | str, role: Role, ports: Mapping[str, int]) -> None:
        missing = [name for name in self.port_names if name not in ports]
        if missing:
            raise InstanceError(f"{data_dir}: ports missing from the record: {', '.join(missing)}")
        if role not in ROLE_PREFIX:
            raise ValueError(f"role must be writable or readonly, not {role!r}")
        self.data_dir = Path(data_dir).absolute()
        self.role: Role = role
        self.ports: dict[str, int] = {name: int(ports[name]) for name in self.port_names}
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # -- record -----------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path | str, role: Role, allocator: PortAllocator) -> Self:
        """The instance of ``data_dir``: its recorded ports when the folder has a record, else new ones (recorded now)."""
        data_dir = Path(data_dir).absolute()
        record = read_record(data_dir / RECORD_FILE)
        if record is not None:
            if record.get("backend") != cls.backend:
                raise InstanceError(
                    f"{data_dir} holds a {record.get('backend')!r} instance, not {cls.backend!r}; "
                    "use the same --backend or another data folder"
                )
            ports = record.get("ports")
            if not isinstance(ports, dict):
                raise InstanceError(f"{data_dir / RECORD_FILE}: no ports recorded")
            allocator.reserve(int(p) for p in ports.values())
            return cls(data_dir, role, {str(k): int(v) for k, v in ports.items()})
        allocated = allocator.allocate(len(cls.port_names))
        try:
            instance = cls(data_dir, role, dict(zip(cls.port_names, allocated)))
            instance.save_record()
        except BaseException:
            allocator.release(allocated)
            raise
        return instance

    def save_record(self) -> None:
        """Write backend, role and ports to ``data_dir/instance.json``."""
        write_record(
            self.data_dir / RECORD_FILE,
            {
                "version": RECORD_VERSION,
                "backend": self.backend,
                "role": self.role,
                "ports": self.ports,
            },
        )

    # -- identity ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The Milvus gRPC (pymilvus) port."""
        return self.ports[self.port_names[0]]

    @property
    def address(self) -> str:
        """``127.0.0.1:port`` of the Milvus gRPC endpoint."""
        return f"{LOCALHOST}:{self.port}"

    @property
    def identity(self) -> str:
        """The identity static discovery gives this instance (its address)."""
        return self.address

    @property
    def uri(self) -> str:
        """``http://127.0.0.1:port``, for pymilvus."""
        return f"http://{self.address}"

    @property
    def pid(self) -> int | None:
        """PID of the server process, None before start."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_file(self) -> Path:
        """Where the server's stdout and stderr go."""
        return self.data_dir / "logs" / "server.out"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "run" / "server.pid"

    def is_running(self) -> bool:
        """True while the server process started by ``start`` is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.role}, {self.address}, pid={self.pid}, {self.data_dir})"

    # -- life cycle -------------------------------------------------------------

    @abc.abstractmethod
    def _prepare(self) -> None:
        """Write configuration files into ``data_dir`` (called by ``start``)."""

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The server's command line."""

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    @abc.abstractmethod
    def _probe(self) -> bool:
        """True when the server answers (one attempt, a short timeout)."""

    def _check_not_running_elsewhere(self) -> None:
        # A server left behind by a crashed `mishards up` would hold the ports and the data.
        try:
            old_pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if old_pid != self.pid and str(self.data_dir) in _cmdline_of(old_pid):
            raise InstanceError(
                f"{self.data_dir} is already served by process {old_pid}; stop it first (kill {old_pid})"
            )

    def _check_ports_free(self) -> None:
        busy = [f"{n}={p}" for n, p in self.ports.items() if port_has_listener(p)]
        if busy:
            raise InstanceError(f"{self!r}: recorded ports in use by another process: {', '.join(busy)}")

    def start(self) -> None:
        """Start the server process (returns at once; see ``wait_ready``)."""
        with self._lock:
            if self.is_running():
                return
            self._check_not_running_elsewhere()
            self._check_ports_free()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._prepare()
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "ab") as log:
                log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} start {self._command()}\n".encode())
                log.flush()
                self._proc = subprocess.Popen(
                    self._command(),
                    cwd=self.data_dir,
                    env=self._environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pid_file.parent.mkdir(parents=True, exist_ok=True)
            self.pid_file.write_text(f"{self._proc.pid}\n")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the server answers; raise InstanceError (with the log tail) if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc
            if proc is None:
                raise InstanceError(f"{self!r} was not started")
            if proc.poll() is not None:
                raise InstanceError(
                    f"{self!r} exited with code {proc.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{log_tail(self.log_file)}"
                )
            if self._probe():
                return
            if time.monotonic() >= deadline:
                raise InstanceError(
                    f"{self!r} not ready after {timeout:.0f}s; last lines of {self.log_file}:\n"
                    f"{log_tail(self.log_file)}"
                )
            time.sleep(0.25)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the server to shut down, SIGKILL its process group after ``timeout`` seconds."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            terminate_process(proc, timeout, self.stop_signal)
            try:
                self.pid_file.unlink()
            except OSError:
                pass

    def kill(self) -> None:
        """SIGKILL the server process only, as a crash would; ``stop`` still cleans up afterwards."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


class EmbeddedMilvus(MilvusInstance):
    """The Milvus standalone binary shipped by the ``milvus`` PyPI package (etcd embedded, rocksmq).

    Listens on the 10 component ports of ``milvus.MilvusServerConfig`` plus the embedded
    etcd's peer port and the metrics/healthz port.
    """

    backend: ClassVar[Backend] = "milvus"
    port_names: ClassVar[tuple[str, ...]] = (
        *MILVUS_COMPONENT_PORTS,
        "etcd_peer_port",
        "metrics_port",
    )

    @property
    def bin_dir(self) -> Path:
        return self.data_dir / "bin"

    def _prepare(self) -> None:
        from milvus import (  # heavy, only when starting
            MilvusServerConfig,
            _initialize_data_files,
        )

        base = str(self.data_dir)
        # Not config.resolve(): its own bind test (no SO_REUSEADDR) fails on ports that
        # still have TIME_WAIT connections from our last run, so a quick restart would fail.
        config = MilvusServerConfig(data_dir=base)
        for key in MILVUS_COMPONENT_PORTS:
            config.set(key, self.ports[key])
        # Default 1800 s: a query node would hold SIGTERM for half an hour waiting for
        # peers to take its segments, which a standalone instance never has.
        config.set("common.gracefulStopTimeout", GRACEFUL_STOP_SECONDS)
        # A quit after that timeout leaves the components' etcd sessions behind; the
        # next start waits for them to expire (default 30 s).
        config.set("common.session.ttl", SESSION_TTL_SECONDS)
        # With a token, nobody goes around the router without it (common.security.authorizationEnabled).
        config.set("authorization_enabled", bool(self.token))
        config.resolve_storage()
        unresolved = [k for k, v in config.configurable_items.items() if v[1] is None]
        if unresolved:
            raise InstanceError(f"{self!r}: unresolved Milvus settings {unresolved}")
        config.write_config()  # configs/milvus.yaml
        _initialize_data_files(base)
        etcd, peer = self.ports["etcd_port"], self.ports["etcd_peer_port"]
        # The embedded etcd would bind the fixed 2379/2380 unless given its own config.
        (self.data_dir / "configs" / "etcd.yaml").write_text(
            "name: default\n"
            f"data-dir: {base}/data/etcd.data\n"
            f"listen-client-urls: http://{LOCALHOST}:{etcd}\n"
            f"advertise-client-urls: http://{LOCALHOST}:{etcd}\n"
            f"listen-peer-urls: http://{LOCALHOST}:{peer}\n"
            f"initial-advertise-peer-urls: http://{LOCALHOST}:{peer}\n"
            f"initial-cluster: default=http://{LOCALHOST}:{peer}\n",
            encoding="utf-8",
        )
        (self.data_dir / "run").mkdir(exist_ok=True)

    def _command(self) -> list[str]:
        return [str(self.bin_dir / "milvus"), "run", "standalone"]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        base = str(self.data_dir)
        ld_path = env.get("LD_LIBRARY_PATH", "")
        env.update(
            DEPLOY_MODE="STANDALONE",
            METRICS_PORT=str(self.ports["metrics_port"]),
            MILVUS_RUN_DIR=f"{base}/run",
            LD_LIBRARY_PATH=f"{self.bin_dir}:{ld_path}" if ld_path else str(self.bin_dir),
            ETCD_CONFIG_PATH=f"{base}/configs/etcd.yaml",
            ETCD_USE_EMBED="true",
            ETCD_ENDPOINTS=f"{LOCALHOST}:{self.ports['etcd_port']}",
            MILVUSCONF=f"{base}/configs",
        )
        return env

    def _healthz(self) -> bool:
        url = f"http://{LOCALHOST}:{self.ports['metrics_port']}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return bool(reply.status == 200 and reply.read().strip() == b"OK")
        except (OSError, urllib.error.URLError):
            return False

    def _probe(self) -> bool:
        # healthz says the components are up; CheckHealth says the proxy serves pymilvus.
        return self._healthz() and (grpc_milvus_healthy(self.address, token=self.token) or self._set_root_password())

    def _set_root_password(self) -> bool:
        """A new instance's root still has Milvus's default password: give it the token's.

        Only for a root token, once the default one is accepted; True when the token now is.
        """
        user, _, _ = self.token.partition(":")
        if user != "root" or self.token == DEFAULT_ROOT_TOKEN:
            return False
        if not grpc_milvus_healthy(self.address, token=DEFAULT_ROOT_TOKEN):
            return False
        try:
            change_root_password(self.address, DEFAULT_ROOT_TOKEN, self.token)
        except InstanceError:  # a proxy still starting may refuse it: the next probe tries again
            return False
        return grpc_milvus_healthy(self.address, token=self.token)


class LiteMilvus(MilvusInstance):
    """A milvus-lite server (pure Python, ``python -m milvus_lite server``) on one port."""

    backend: ClassVar[Backend] = "milvus-lite"
    port_names: ClassVar[tuple[str, ...]] = ("proxy_port",)
    # milvus-lite drains and closes its database on KeyboardInterrupt, not on SIGTERM.
    stop_signal: ClassVar[int] = signal.SIGINT

    def _prepare(self) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        return [
            sys.executable, "-m", "milvus_lite", "server",
            "--data-dir", str(self.data_dir / "data"),
            "--host", LOCALHOST,
            "--port", str(self.port),
        ]  # fmt: skip

    def _probe(self) -> bool:
        return grpc_milvus_healthy(self.address)


BACKENDS: dict[str, type[MilvusInstance]] = {
    "milvus": EmbeddedMilvus,
    "milvus-lite": LiteMilvus,
}


def instance_dir(root_dir: Path | str, role: Role, index: int) -> Path:
    """``root_dir/instances/{wo|ro}-{index}``."""
    return Path(root_dir).absolute() / "instances" / f"{ROLE_PREFIX[role]}-{index}"


def _reserve_recorded_ports(root_dir: Path, allocator: PortAllocator) -> None:
    # Instances recorded under root_dir keep their ports even when not started this time.
    for record_path in sorted((root_dir / "instances").glob(f"*/{RECORD_FILE}")):
        record = read_record(record_path)
        ports = record.get("ports") if record else None
        if isinstance(ports, dict):
            allocator.reserve(int(p) for p in ports.values())


def open_instances(
    root_dir: Path | str,
    writable: int,
    readonly: int,
    backend: Backend = "milvus",
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
    allocator: PortAllocator | None = None,
    token: str = "",
) -> list[MilvusInstance]:
    """The instances of ``root_dir`` (writable first), recorded ports reused, new ones allocated; none started.

    ``token`` becomes every instance's ``token`` (see MilvusInstance).
    """
    if writable < 0 or readonly < 0:
        raise ValueError("instance counts must be >= 0")
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}") from None
    root = Path(root_dir).absolute()
    allocator = allocator or PortAllocator(*port_range)
    _reserve_recorded_ports(root, allocator)
    wanted: list[tuple[Role, int]] = [("writable", i) for i in range(writable)]
    wanted += [("readonly", i) for i in range(readonly)]
    instances = [cls.open(instance_dir(root, role, i), role, allocator) for role, i in wanted]
    for instance in instances:
        instance.token = token
    return instances


def stop_instances(instances: Sequence[MilvusInstance], timeout: float = 30.0) -> None:
    """Stop instances in parallel."""
    if not instances:
        return
    with ThreadPoolExecutor(max_workers=len(instances)) as pool:
        list(pool.map(lambda inst: inst.stop(timeout), instances))


def start_instances(
    root_dir: Path | str,
    writable: int,
    readonly: int,
    backend: Backend = "milvus",
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
    *,
    timeout: float = 180.0,
    allocator: PortAllocator | None = None,
    token: str = "",
) -> list[MilvusInstance]:
    """Start the instances of ``root_dir`` in parallel and wait until all answer.

    Instance i lives in ``root_dir/instances/{wo|ro}-{i}``; a second call on the same
    ``root_dir`` finds the same instances, ports and data. If any instance fails, all
    are stopped and the error is raised.
    """
    instances = open_instances(root_dir, writable, readonly, backend, port_range, allocator, token)
    bring_up_instances(instances, timeout)
    return instances


def bring_up_instances(instances: Sequence[MilvusInstance], timeout: float) -> None:
    """Start instances in parallel and wait until all answer; on failure stop all and raise."""
    if not instances:
        return

    def bring_up(inst: MilvusInstance) -> None:
        inst.start()
        inst.wait_ready(timeout)

    try:
        with ThreadPoolExecutor(max_workers=len(instances)) as pool:
            futures = [pool.submit(bring_up, inst) for inst in instances]
            try:
                for future in as_completed(futures):
                    future.result()
            except BaseException:
                stop_instances(instances)  # at once, so the others stop waiting
                raise
    except BaseException:
        # Again: a thread may have started its instance after the first stop.
        stop_instances(instances)
        raise
