"""The image, run for real: discovery, meta and router from it as containers (testcontainers, on
podman's Docker-compatible API here) over embedded Milvus on the host; the README quick start
and `mishards status` against them. Skipped without an engine or image, except under CI."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import readme_quick_start, unavailable
from containers import MISHARDS_IMAGE, SERVICES, ContainerCluster, engine, image_exists, mysql_database

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def engine_host() -> Iterator[str]:
    try:
        with engine() as docker_host:
            if not image_exists(MISHARDS_IMAGE):
                unavailable(f"no image {MISHARDS_IMAGE} in the engine: run `make build`")
            yield docker_host
    except RuntimeError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def cluster(engine_host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerCluster]:
    with mysql_database() as database_uri:
        c = ContainerCluster(root_dir=tmp_path_factory.mktemp("containers"), database_uri=database_uri)
        c.start()
        try:
            yield c
        finally:
            c.stop()


def test_readme_quick_start_through_the_router_container(cluster: ContainerCluster) -> None:
    readme = readme_quick_start()
    readme.check_quick_start_output(readme.run_quick_start(cluster.router_uri))


def test_mishards_status_shows_the_instances_and_the_copies(cluster: ContainerCluster) -> None:
    status = subprocess.run(
        [BIN / "mishards", "status", "--meta", cluster.meta_address, "--discovery", cluster.discovery_address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    out = status.stdout
    assert f"meta       {cluster.meta_address}: SERVING" in out, out
    assert re.search(rf"discovery  {cluster.discovery_address}: version \d+, ok", out), out
    for instance in cluster.instances:
        assert re.search(rf"^{re.escape(instance.address)}\s+\S+\s+writable\s+healthy", out, re.M), out
    # the quick start's collection: 2 shards, each with its primary on one instance, caught up
    copies = re.findall(r"^default\.demo\s+(\d)\s+(\S+)\s+primary\s+ready\s+\d+\s+0\b", out, re.M)
    assert sorted(shard for shard, _ in copies) == ["0", "1"], out
    assert {address for _, address in copies} == {i.address for i in cluster.instances}, out


def test_image_healthcheck_and_user(cluster: ContainerCluster) -> None:
    for name in SERVICES:
        container = cluster.containers[name]
        code, output = container.exec(["python", "/opt/mishards/bin/mishards-healthcheck"])
        assert (code, output.decode().strip()) == (0, f"mishards-{name} on port {cluster.ports[name]}: SERVING")
        code, output = container.exec(["id", "-u"])
        assert (code, output.decode().strip()) == (0, "10001"), name


def test_services_stop_cleanly_on_sigterm(cluster: ContainerCluster) -> None:
    cluster.stop()
    assert cluster.exit_codes == dict.fromkeys(SERVICES, 0)
