"""`consul` back end: Milvus instances registered as Consul services, followed with blocking queries.

Writable instances are instances of the service DISCOVERY_CONSUL_WO_SERVICE, read-only
ones of DISCOVERY_CONSUL_RO_SERVICE (empty: none). Only instances whose every Consul
health check passes count (`/v1/health/service/<name>?passing=1`), optionally only
those tagged DISCOVERY_CONSUL_TAG. Identity is the Consul service ID; the address is
the service address, or the node address when the service has none.

Each service is followed by its own blocking query (`index` + `wait`), as the Consul
documentation describes: the index is reset when it goes backwards (a Consul restart
or a leader change), queries are rate limited, and failures back off exponentially.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import consul

from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends.base import InstanceSpec, Role
from mishards.discovery.backends.follow import Backoff, Feed, FollowingBackend
from mishards.discovery.backends.hostport import join_host_port

log = logging.getLogger(__name__)


def parse_health_entries(entries: Any, role: Role, tag: str = "") -> list[InstanceSpec]:
    """The instances of a `/v1/health/service/<name>` answer whose checks all pass.

    Entries without a service ID or port are skipped with a warning. Raises ValueError
    when the answer is not a list.
    """
    if entries is None:  # 404: an unknown service has no instances
        return []
    if not isinstance(entries, list):
        raise ValueError(f"expected a list of service entries, got {type(entries).__name__}")
    specs: list[InstanceSpec] = []
    for entry in entries:
        service = entry.get("Service") or {}
        node = entry.get("Node") or {}
        checks = entry.get("Checks") or []
        # The server filters with passing=1 already; checked again so a proxy or an
        # old agent that ignores the filter cannot admit a failing instance.
        if any(check.get("Status") != "passing" for check in checks):
            continue
        if tag and tag not in (service.get("Tags") or []):
            continue
        identity = str(service.get("ID") or "").strip()
        host = str(service.get("Address") or node.get("Address") or "").strip()
        port = service.get("Port") or 0
        if not identity or not host or not isinstance(port, int) or not 0 < port < 65536:
            log.warning("skipping Consul entry without ID, address or port: %s", service)
            continue
        specs.append(InstanceSpec(identity=identity, address=join_host_port(host, port), role=role))
    return specs


def next_index(previous: int, returned: int) -> int:
    """The index of the next blocking query, by the rules of Consul's documentation.

    An index that goes backwards (Consul restarted, leader changed, snapshot restored)
    resets to 0: the next query answers at once with a fresh index. An index that is
    not positive is a Consul bug that would make every query return at once; it is
    reset to 1.
    """
    if returned < previous:
        return 0
    if returned <= 0:
        return 1
    return returned


class ConsulBackend(FollowingBackend):
    """Instances of two Consul services (writable, read-only), health-filtered by Consul.

    A feed whose last query failed (agent down, timeout, 5xx, ACL denied) makes
    `list_instances` raise BackendUnavailable naming it, until a query succeeds again.
    """

    #: How long Consul may hold a blocking query (Consul caps it at 10 minutes).
    wait: str = "30s"
    #: Seconds to connect and to get an answer beyond the query's wait.
    request_timeout: float = 10.0
    #: Minimum seconds between two queries of one service (Consul asks clients to rate limit).
    min_query_interval: float = 0.1
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.host = settings.DISCOVERY_CONSUL_HOST
        self.port = settings.DISCOVERY_CONSUL_PORT
        if not self.host:
            raise SettingsError("setting DISCOVERY_CONSUL_HOST is empty; the consul back end needs it")
        wo, ro = settings.DISCOVERY_CONSUL_WO_SERVICE, settings.DISCOVERY_CONSUL_RO_SERVICE
        if not wo:
            raise SettingsError("setting DISCOVERY_CONSUL_WO_SERVICE is empty; the consul back end needs it")
        if wo == ro:
            raise SettingsError(
                f"settings DISCOVERY_CONSUL_WO_SERVICE and DISCOVERY_CONSUL_RO_SERVICE are both {wo!r}; "
                "writable and read-only instances need different services"
            )
        self.services: dict[Role, str] = {"writable": wo}
        if ro:
            self.services["readonly"] = ro
        self.token = settings.DISCOVERY_CONSUL_TOKEN or None
        self.datacenter = settings.DISCOVERY_CONSUL_DATACENTER or None
        self.tag = settings.DISCOVERY_CONSUL_TAG
        self.queries = 0

    def _client(self) -> consul.Consul:
        # One client (one HTTP session) per follower thread: requests sessions are not thread-safe.
        return consul.Consul(
            host=self.host,
            port=self.port,
            token=self.token,
            dc=self.datacenter,
            connections_timeout=self.request_timeout,
        )

    def _follow_targets(self) -> list[tuple[Feed, Callable[[Feed], None]]]:
        targets: list[tuple[Feed, Callable[[Feed], None]]] = []
        for role, service in self.services.items():
            feed = Feed(f"consul {self.host}:{self.port} service {service}")
            targets.append((feed, self._follower(role, service)))
        return targets

    def _follower(self, role: Role, service: str) -> Callable[[Feed], None]:
        def follow(feed: Feed) -> None:
            client = self._client()
            backoff = Backoff(self.backoff_initial, self.backoff_max)
            index = 0
            while not self.stopping.is_set():
                started = time.monotonic()
                try:
                    self.queries += 1
                    raw_index, entries = client.health.service(
                        service,
                        index=index or None,
                        wait=self.wait,
                        passing=True,
                        tag=self.tag or None,
                        token=self.token,
                    )
                    returned = int(raw_index)
                    specs = parse_health_entries(entries, role, self.tag)
                except Exception as exc:  # connection refused, timeout, 5xx, 403, bad JSON
                    if self.stopping.is_set():
                        break
                    feed.fail(f"{feed.name}: {_describe(exc)}")
                    index = 0  # after an outage, answer at once rather than block on a stale index
                    self.stopping.wait(backoff.next_delay())
                    continue
                backoff.reset()
                if returned < index:
                    log.info("%s: index went back from %d to %d; re-reading", feed.name, index, returned)
                index = next_index(index, returned)
                # The Consul index orders the two services' answers: when an instance
                # moves between them, the newer registration wins.
                feed.set(specs, order=float(returned))
                spent = time.monotonic() - started
                if spent < self.min_query_interval:
                    self.stopping.wait(self.min_query_interval - spent)
            client.http.session.close()

        return follow


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
