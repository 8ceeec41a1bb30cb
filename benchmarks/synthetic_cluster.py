"""A Cluster whose writable instances are synthetic backends (benchmarks.synthetic), not Milvus.

The services (discovery, meta, router) are the real ones, started by the Cluster class
exactly as for Milvus; only the instances differ: one synthetic process serves all of them.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.processes import Child
from mishards.cli.cluster import SERVICES, Cluster
from mishards.cli.launcher import grpc_milvus_healthy
from mishards.cli.ports import LOCALHOST, ephemeral_allocator


@dataclass
class SyntheticInstance:
    """What Cluster needs of an instance: its role and address (the fleet process is stopped apart)."""

    port: int
    role: str = "writable"

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def identity(self) -> str:
        return self.address

    @property
    def uri(self) -> str:
        return f"http://{self.address}"

    @property
    def ports(self) -> dict[str, int]:
        return {"grpc": self.port}

    def stop(self, timeout: float = 0.0) -> None:
        pass


class SyntheticCluster(Cluster):
    """``shards`` synthetic writable instances, DEFAULT_SHARDS_NUM = shards, real services."""

    def __init__(self, root_dir: Path | str, shards: int, delay_ms: float, extra_env: dict[str, str] | None = None):
        env = {"DEFAULT_SHARDS_NUM": str(shards), "LOG_LEVEL": "WARNING", **(extra_env or {})}
        super().__init__(root_dir, writable=shards, readonly=0, router_port=0, extra_env=env)
        self.delay_ms = delay_ms
        self.fleet: Child | None = None

    def start(self) -> SyntheticCluster:
        self.root_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        try:
            self.resolve_ports()
            ports = ephemeral_allocator().allocate(self.writable)
            self.instances = [SyntheticInstance(p) for p in ports]  # type: ignore[misc]
            self.fleet = Child(
                "synthetic",
                "benchmarks.synthetic",
                ["--ports", ",".join(map(str, ports)), "--delay-ms", str(self.delay_ms)],
                self.log_dir / "synthetic.out",
            )
            self.fleet.start(lambda: all(grpc_milvus_healthy(i.address, 1.0) for i in self.instances))
            # Newer Cluster versions publish the instances in a file that discovery follows.
            if hasattr(self, "write_instances_file"):
                self.write_instances_file()
            self.services.clear()
            for name in SERVICES:
                self.start_service(name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        super().stop()
        if self.fleet is not None:
            self.fleet.stop()
            self.fleet = None
        atexit.unregister(self.stop)

    def __exit__(self, *exc: Any) -> None:
        self.stop()
