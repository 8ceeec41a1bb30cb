"""`compose up -d` with podman-compose, honouring `depends_on: condition: service_healthy`.

    python deploy/all_in_one/up.py [-f FILE] [-p PROJECT] [--without SERVICE]... [--timeout S]
                                   [--wait-writable TOPOLOGY_URL]

podman-compose starts dependants at once (it ignores the condition on podman < 4.6), and
podman 4.3 runs health checks from systemd timers, which machines without systemd lack. So
this starts the services one at a time in dependency order with `podman-compose up -d
--no-deps`, and before each, runs the health check of every dependency it waits for
(`podman healthcheck run`) until it passes. At the end every started service that has a
health check is healthy, or this exits 1 with the failing container's last log lines.

A healthy router is not yet a cluster that takes writes: discovery may still be settling
a Milvus instance's health. With `--wait-writable`, this then polls the router's
`/topology.json` until a writable instance is healthy, so that `make deploy` returns a
cluster the README quick start can use at once; when none is in time it exits 1 with
every instance's health and reason as the router sees them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
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


def writable_healthy(topology: Mapping[str, Any]) -> bool:
    """Whether the router's topology shows a healthy writable Milvus instance."""
    return any(i.get("role") == "writable" and i.get("health") == "healthy" for i in topology.get("instances", []))


def wait_writable(url: str, timeout: float) -> None:
    """Poll the router's topology page until a writable instance is healthy (ComposeError when not in time)."""
    deadline = time.monotonic() + timeout
    seen: Any = "no answer yet"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 (a loopback URL from the Makefile)
                seen = json.load(reply)
            if writable_healthy(seen):
                print("Cluster ready: a writable Milvus instance is healthy", flush=True)
                return
        except (OSError, ValueError) as exc:
            seen = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            instances = seen.get("instances", seen) if isinstance(seen, dict) else seen
            raise ComposeError(f"no healthy writable Milvus instance after {timeout:.0f} s; the router sees: {instances}")
        time.sleep(POLL_SECONDS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-f", "--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("-p", "--project", default="mishards")
    parser.add_argument("--without", action="append", default=[], help="a service not to start (repeatable)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds each service may take to be healthy")
    parser.add_argument(
        "--wait-writable",
        metavar="TOPOLOGY_URL",
        help="then wait until the router's /topology.json shows a healthy writable instance",
    )
    args = parser.parse_args(argv)
    try:
        up(args.file, args.project, args.without, args.timeout)
        if args.wait_writable:
            wait_writable(args.wait_writable, args.timeout)
    except ComposeError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
