"""Cluster with stand-in services (the real ones are tested in tests/integration)."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mishards.cli.cluster import BACKEND_TOKEN_FILE, CLUSTER_FILE, Cluster, ServiceError, backend_token, grpc_serving
from mishards.cli.launcher import read_record
from mishards.cli.main import build_parser, cmd_status

STANDIN = str(Path(__file__).with_name("standin_service.py"))
COMMANDS = {name: [sys.executable, STANDIN, name] for name in ("discovery", "meta", "router")}


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def make_cluster(root: Path, **kwargs: object) -> Cluster:
    options: dict[str, object] = {
        "writable": 0,
        "readonly": 0,
        "router_port": 0,
        "service_commands": COMMANDS,
        "start_timeout": 30.0,
        "stop_timeout": 5.0,
    }
    options.update(kwargs)
    return Cluster(root, **options)  # type: ignore[arg-type]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = make_cluster(tmp_path / "root", extra_env={"DEFAULT_SHARDS_NUM": "4"})
    try:
        yield c
    finally:
        c.stop()


def _env(c: Cluster, name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((c.log_dir / f"{name}.env.json").read_text())
    return data


def test_start_passes_the_settings_and_stop_ends_every_process(
    cluster: Cluster,
) -> None:
    with cluster:
        pids = {n: cluster.service_pid(n) for n in ("discovery", "meta", "router")}
        assert all(_alive(p) for p in pids.values())
        for address in (
            cluster.router_address,
            cluster.meta_address,
            cluster.discovery_address,
        ):
            assert grpc_serving(address)
        assert cluster.router_uri == f"http://{cluster.router_address}"

        disc, meta, router = (
            _env(cluster, "discovery"),
            _env(cluster, "meta"),
            _env(cluster, "router"),
        )
        assert disc["DISCOVERY_CLASS_NAME"] == "file"
        listed = yaml.safe_load(Path(disc["DISCOVERY_FILE_PATH"]).read_text())
        assert [(r["address"], r["role"]) for r in listed] == [(i.address, i.role) for i in cluster.instances]
        assert disc["DISCOVERY_SERVER_PORT"] == cluster.discovery_address.rsplit(":", 1)[1]
        assert disc["DISCOVERY_PROBE_INTERVAL"] == "1"
        assert meta["DISCOVERY_ADDRESS"] == router["DISCOVERY_ADDRESS"] == cluster.discovery_address
        assert meta["META_SERVER_PORT"] == cluster.meta_address.rsplit(":", 1)[1]
        assert meta["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{cluster.root_dir / 'meta.db'}"
        assert router["META_ADDRESS"] == cluster.meta_address
        assert router["SERVER_PORT"] == str(cluster.router_port)
        assert router["ROUTER_WORKERS"] == "1" and "ROUTER_WORKERS" not in meta
        metrics = {e["METRICS_PORT"] for e in (disc, meta, router)}
        assert len(metrics) == 3
        for env in (disc, meta, router):
            assert env["SERVER_HOST"] == "127.0.0.1"
            assert env["LOG_PATH"] == str(cluster.log_dir)
            assert env["DEFAULT_SHARDS_NUM"] == "4"
            assert env["MILVUS_BACKEND_TOKEN"] == cluster.backend_token

        out = io.StringIO()
        args = build_parser().parse_args(["status", "--data", str(cluster.root_dir)])
        assert cmd_status(args, out) == 0
        assert f"meta       {cluster.meta_address}: SERVING" in out.getvalue()
    assert not any(_alive(p) for p in pids.values())


def test_restart_finds_the_same_ports(tmp_path: Path) -> None:
    first = make_cluster(tmp_path)
    with first:
        ports = dict(first.ports)
    record = read_record(tmp_path / CLUSTER_FILE)
    assert record is not None and record["ports"] == ports
    second = make_cluster(tmp_path)
    with second:
        assert second.ports == ports
        assert grpc_serving(second.router_address)


def test_kill_stop_and_start_one_service(cluster: Cluster) -> None:
    cluster.start()
    old = cluster.service_pid("meta")
    cluster.kill_service("meta")
    assert not _alive(old)
    assert not grpc_serving(cluster.meta_address, timeout=0.5)
    cluster.start_service("meta")
    assert cluster.service_pid("meta") != old
    assert grpc_serving(cluster.meta_address)
    cluster.stop_service("router")
    assert not grpc_serving(cluster.router_address, timeout=0.5)
    with pytest.raises(ValueError, match="unknown service"):
        cluster.stop_service("proxy")


def test_extra_router_has_its_own_ports_and_logs_and_stops_with_the_cluster(cluster: Cluster) -> None:
    with pytest.raises(ServiceError, match="start the cluster"):
        cluster.start_extra_router()
    with cluster:
        extra = cluster.start_extra_router()
        assert _alive(extra.pid) and extra.pid != cluster.service_pid("router")
        assert extra.port != cluster.router_port and grpc_serving(extra.address)
        assert (cluster.root_dir / "run" / "router-1.pid").read_text().strip() == str(extra.pid)
        main = _env(cluster, "router")
        env: dict[str, str] = json.loads((cluster.log_dir / "router-1" / "router.env.json").read_text())
        assert env["SERVER_PORT"] == str(extra.port)
        assert env["LOG_PATH"] == str(cluster.log_dir / "router-1")
        assert env["METRICS_PORT"] not in (main["METRICS_PORT"], str(extra.port))
        for key in ("META_ADDRESS", "DISCOVERY_ADDRESS", "DEFAULT_SHARDS_NUM", "SERVER_HOST"):
            assert env[key] == main[key]
        second = cluster.start_extra_router()
        assert second.port != extra.port and second.name == "router-2"
        second.stop(5.0)  # by PID, alone
        assert not _alive(second.pid) and _alive(extra.pid)
        assert grpc_serving(cluster.router_address)
    assert not _alive(extra.pid) and cluster.extra_routers == []


def test_early_exit_raises_with_the_log_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    c = make_cluster(tmp_path, extra_env={"STANDIN_FAIL": "meta"})
    with pytest.raises(ServiceError, match="bad setting STANDIN_FAIL") as info:
        c.start()
    assert "meta exited with code 3" in str(info.value)
    assert not _alive(c.service_pid("discovery"))
    assert not c.services["discovery"].is_running()


def test_missing_console_script_fails_before_starting_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> list[str]:
        raise ServiceError(f"{name} is not installed")

    monkeypatch.setattr("mishards.cli.cluster.console_script", missing)
    c = make_cluster(tmp_path, service_commands={"discovery": COMMANDS["discovery"]})
    with pytest.raises(ServiceError, match="mishards-meta is not installed"):
        c.start()
    assert c.service_pid("discovery") is None


def test_the_backend_token_is_root_with_a_generated_password_kept_0600(tmp_path: Path) -> None:
    token = backend_token(tmp_path, "milvus")
    user, _, password = token.partition(":")
    assert user == "root" and len(password) >= 32 and password != "Milvus"
    path = tmp_path / BACKEND_TOKEN_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert backend_token(tmp_path, "milvus") == token  # a restart finds the same one
    assert backend_token(tmp_path, "milvus", {"MILVUS_BACKEND_TOKEN": "alice:pw"}) == "alice:pw"
    assert backend_token(tmp_path / "lite", "milvus-lite") == ""  # milvus-lite has no authentication
    assert not (tmp_path / "lite" / BACKEND_TOKEN_FILE).exists()


def test_router_workers_reach_the_router_only(tmp_path: Path) -> None:
    c = make_cluster(tmp_path, router_workers=3)
    c.resolve_ports()
    assert c._service_env("router")["ROUTER_WORKERS"] == "3"
    assert "ROUTER_WORKERS" not in c._service_env("meta")
    with pytest.raises(ValueError, match="router workers"):
        make_cluster(tmp_path, router_workers=0)
