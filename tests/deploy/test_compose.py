"""The compose all-in-one, run for real with podman through the Makefile's own targets: `make
deploy` (podman-compose under deploy/all_in_one/up.py, local Milvus and MariaDB images, no
Jaeger), `make probe_deploy`, the README quick start through its router, `make clean_deploy`.
Skipped without podman or the images, except under CI."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from conftest import REPO, readme_quick_start, unavailable

IMAGES = ("localhost/mishards:0.1.0", "localhost/mishards-milvus:2.3.5", "localhost/mishards-mariadb:10.11")
SERVICES = {"milvus-wo", "milvus-ro", "mariadb", "discovery", "meta", "router"}


def make(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "ENGINE=podman", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def podman_lines(*args: str) -> list[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=60, check=True).stdout.split()


@pytest.fixture(scope="module")
def deployed() -> Iterator[dict[str, str]]:
    if shutil.which("podman") is None or shutil.which("podman-compose") is None:
        unavailable("podman and podman-compose are not installed (deploy/podman/install.sh)")
    missing = [image for image in IMAGES if subprocess.run(["podman", "image", "exists", image]).returncode != 0]
    if missing:
        unavailable(f"images missing: {missing} (make build; deploy/podman/build-images.sh)")
    from mishards.cli.ports import ephemeral_allocator

    router_port, metrics_port = ephemeral_allocator().allocate(2)
    project = f"mishards-test-{uuid.uuid4().hex[:8]}"
    settings = {
        "COMPOSE_PROJECT": project,
        "MISHARDS_PORT": str(router_port),
        "MISHARDS_METRICS_PORT": str(metrics_port),
    }
    try:
        up = make("deploy", *(f"{key}={value}" for key, value in settings.items()))
        settings["deploy_output"] = up.stdout + up.stderr
        assert up.returncode == 0, settings["deploy_output"][-5000:]
        yield {**settings, "router": f"127.0.0.1:{router_port}"}
    finally:
        down = make("clean_deploy", f"COMPOSE_PROJECT={project}")
        assert down.returncode == 0, down.stdout + down.stderr
        label = f"label=com.docker.compose.project={project}"
        assert podman_lines("ps", "-a", "-q", "--filter", label) == []
        assert podman_lines("volume", "ls", "-q", "--filter", label) == []
        assert podman_lines("network", "ls", "-q", "--filter", label) == []


def test_deploy_starts_every_service_in_health_order(deployed: dict[str, str]) -> None:
    lines = deployed["deploy_output"].splitlines()
    events = [line.split()[1:3] for line in lines if line.startswith("Container ")]
    started = [name.split("_")[1] for name, what in events if what == "Started"]
    assert set(started) == SERVICES, lines
    healthy = {name.split("_")[1]: i for i, (name, what) in enumerate(events) if what == "Healthy"}
    position = {name.split("_")[1]: i for i, (name, what) in enumerate(events) if what == "Started"}
    # each service starts only once what it waits for is healthy (depends_on: service_healthy)
    for service, needs in {"discovery": ("milvus-wo", "milvus-ro"), "meta": ("mariadb", "discovery"),
                           "router": ("meta", "discovery")}.items():  # fmt: skip
        for dependency in needs:
            assert healthy[dependency] < position[service], lines
    assert "router" in healthy, lines
    assert not [name for name, _ in events if "jaeger" in name], lines


def service_logs(project: str, *services: str) -> str:
    """The last log lines of the project's services, for a failure's message."""
    out = []
    for service in services:
        logs = subprocess.run(
            ["podman", "logs", "--tail", "25", f"{project}_{service}_1"], capture_output=True, text=True, timeout=60
        )
        out.append(f"--- {service}:\n{logs.stdout}{logs.stderr}")
    return "\n".join(out)


def test_probe_deploy_and_the_readme_quick_start(deployed: dict[str, str]) -> None:
    assert "Cluster ready: a writable Milvus instance is healthy" in deployed["deploy_output"]
    probe = make("probe_deploy", f"ROUTER_ADDRESS={deployed['router']}", timeout=60)
    assert (probe.returncode, probe.stdout.strip().splitlines()[-1]) == (0, "Pass ==> Pass: Connected"), probe.stderr
    readme = readme_quick_start()
    try:
        readme.check_quick_start_output(readme.run_quick_start(f"http://{deployed['router']}"))
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n{service_logs(deployed['COMPOSE_PROJECT'], 'discovery', 'meta', 'router')}"
        ) from None
