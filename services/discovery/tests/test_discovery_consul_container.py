"""The conformance suite against a real Consul agent in Docker (testcontainers).

Skipped, with the reason, where no Docker engine answers (as on the project's own
machines); the fake-agent run in test_discovery_conformance.py covers the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest

from mishards.common.settings import Settings
from mishards.discovery.backends import InstanceSpec
from mishards.discovery.backends.consul import ConsulBackend
from mishards.discovery.backends.hostport import split_host_port
from mishards.discovery.testing import CHECKS, FollowedHarness, NotApplicable

CONSUL_IMAGE = "hashicorp/consul:1.20"


def _docker_problem() -> str | None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:  # no socket, no daemon, no permission
        return f"no Docker engine answers ({type(exc).__name__}: {exc}); real-Consul conformance skipped"
    return None


@pytest.fixture(scope="module")
def consul_agent() -> Iterator[tuple[str, int, object]]:
    problem = _docker_problem()
    if problem:
        pytest.skip(problem)
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer(CONSUL_IMAGE).with_command("agent -dev -client 0.0.0.0").with_exposed_ports(8500)
    container.start()
    try:
        wait_for_logs(container, "Synced node info", timeout=60)
        yield container.get_container_host_ip(), int(container.get_exposed_port(8500)), container
    finally:
        container.stop()


class RealConsulHarness(FollowedHarness):
    """Registers specs with the agent API (TTL checks set passing); an outage pauses the container."""

    def __init__(self, agent: tuple[str, int, object], specs: Sequence[InstanceSpec]) -> None:
        import consul

        host, port, self.container = agent
        self.client = consul.Consul(host=host, port=port)
        for service_id in self.client.agent.services():
            self.client.agent.service.deregister(service_id)
        self._registered: dict[str, InstanceSpec] = {}
        self._apply(specs)
        backend = ConsulBackend(Settings(DISCOVERY_CONSUL_HOST=host, DISCOVERY_CONSUL_PORT=port))
        backend.wait, backend.request_timeout = "2s", 1.0
        super().__init__(backend, specs)

    def _apply(self, specs: Sequence[InstanceSpec]) -> None:
        import consul

        wanted = {s.identity: s for s in specs}
        for identity in list(self._registered):
            if identity not in wanted:
                self.client.agent.service.deregister(identity)
                del self._registered[identity]
        for s in specs:
            if self._registered.get(s.identity) == s:
                continue
            host, port = split_host_port(s.address, 19530)
            name = "milvus-wo" if s.role == "writable" else "milvus-ro"
            self.client.agent.service.register(
                name, service_id=s.identity, address=host, port=port, check=consul.Check.ttl("600s")
            )
            self.client.agent.check.ttl_pass(f"service:{s.identity}")
            self._registered[s.identity] = s

    def set_instances(self, specs: Sequence[InstanceSpec]) -> None:
        self._apply(specs)
        self._expect(specs)

    def break_source(self) -> None:
        self._broken = True
        self.container.get_wrapped_container().pause()  # type: ignore[attr-defined]

    def repair_source(self) -> None:
        self._broken = False
        self.container.get_wrapped_container().unpause()  # type: ignore[attr-defined]


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_conformance_on_real_consul(consul_agent: tuple[str, int, object], check: str) -> None:
    try:
        asyncio.run(CHECKS[check](lambda specs: RealConsulHarness(consul_agent, specs)))
    except NotApplicable as exc:
        pytest.skip(f"real consul: {exc}")
