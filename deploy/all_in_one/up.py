"""`compose up -d` with podman-compose, honouring `depends_on: condition: service_healthy`.

    python deploy/all_in_one/up.py [-f FILE] [-p PROJECT] [--without SERVICE]... [--timeout S]

podman-compose starts dependants at once (it ignores the condition on podman < 4.6), and
podman 4.3 runs health checks from systemd timers, which machines without systemd lack. So
this starts the services one at a time in dependency order with `podman-compose up -d
--no-deps`, and before each, runs the health check of every dependency it waits for
(`podman healthcheck run`) until it passes. At the end every started service that has a
health check is healthy, or this exits 1 with the failing container's last log lines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

DEFAULT_FILE = Path(__file__).with_name("docker-compose.yml")
POLL_SECONDS = 2.0


class ComposeError(RuntimeError):
    """A service could not be started or did not become healthy."""


def dependencies(service: Mapping[str, Any]) -> dict[str, str]:
    """The service's depends_on as {name: condition} (the short list form means service_started)."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in depends.items()}


def start_order(services: Mapping[str, Mapping[str, Any]], without: Sequence[str] = ()) -> list[str]:
    """Service names, each after everything it depends on; a cycle or a missing service is an error."""
    wanted = [name for name in services if name not in without]
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in services or name in without:
            raise ComposeError(f"a service depends on {name!r}, which is not started")
        if name in visiting:
            raise ComposeError(f"depends_on has a cycle through {name!r}")
        visiting.add(name)
        for dependency in dependencies(services[name]):
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120)


def container_of(project: str, service: str) -> str:
    """The name of the service's container (podman-compose labels it as Docker Compose does)."""
    listed = podman(
        "ps", "-a", "--format", "{{.Names}}",
        "--filter", f"label=com.docker.compose.project={project}",
        "--filter", f"label=com.docker.compose.service={service}",
    )  # fmt: skip
    names = listed.stdout.split()
    if listed.returncode != 0 or len(names) != 1:
        raise ComposeError(
            f"service {service}: expected one container, podman ps says {listed.stdout or listed.stderr}"
        )
    return names[0]


def has_healthcheck(container: str) -> bool:
    inspected = podman("inspect", "--type", "container", container)
    if inspected.returncode != 0:
        raise ComposeError(f"podman inspect {container}: {inspected.stderr.strip()}")
    config = json.loads(inspected.stdout)[0].get("Config") or {}
    return bool(config.get("Healthcheck"))


def wait_healthy(container: str, timeout: float) -> None:
    """Run the container's health check until it passes (ComposeError when it stops or times out)."""
    deadline = time.monotonic() + timeout
    while podman("healthcheck", "run", container).returncode != 0:
        state = podman("inspect", "--type", "container", "--format", "{{.State.Status}}", container).stdout.strip()
        if state != "running" or time.monotonic() > deadline:
            logs = podman("logs", "--tail", "30", container)
            raise ComposeError(f"{container} is {state}, not healthy; its last log lines:\n{logs.stdout}{logs.stderr}")
        time.sleep(POLL_SECONDS)


def compose_up(compose: list[str], service: str) -> None:
    started = subprocess.run([*compose, "up", "-d", "--no-deps", service], capture_output=True, text=True)
    if started.returncode != 0:
        raise ComposeError(f"podman-compose up {service} failed:\n{started.stdout}{started.stderr}")


def up(file: Path, project: str, without: Sequence[str], timeout: float) -> None:
    services = yaml.safe_load(file.read_text())["services"]
    order = start_order(services, without)
    compose = ["podman-compose", "-p", project, "-f", str(file)]
    containers: dict[str, str] = {}
    started: dict[str, float] = {}

    def healthy(service: str) -> None:
        wait_healthy(containers[service], timeout)
        seconds = time.monotonic() - started.pop(service)
        print(f"Container {containers[service]}  Healthy ({seconds:.0f} s after its start)", flush=True)

    for service in order:
        for dependency, condition in dependencies(services[service]).items():
            if condition == "service_healthy" and dependency in started:
                healthy(dependency)
        compose_up(compose, service)
        started[service] = time.monotonic()
        containers[service] = container_of(project, service)
        print(f"Container {containers[service]}  Started", flush=True)
    for service in order:
        if service in started and has_healthcheck(containers[service]):
            healthy(service)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-f", "--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("-p", "--project", default="mishards")
    parser.add_argument("--without", action="append", default=[], help="a service not to start (repeatable)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds each service may take to be healthy")
    args = parser.parse_args(argv)
    try:
        up(args.file, args.project, args.without, args.timeout)
    except ComposeError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
