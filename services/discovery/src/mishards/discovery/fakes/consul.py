"""A fake Consul agent: `/v1/health/service/<name>` with `X-Consul-Index` blocking queries.

Follows the real API where the consul back end relies on it: entries shaped as
`[{"Node": {...}, "Service": {...}, "Checks": [...]}]`, `passing` and `tag` filters,
`dc` and `X-Consul-Token` checks, an `X-Consul-Index` per service that only moves when
the service changes, and blocking queries held until the index passes `index` or
`wait` elapses. Tests can make it fail (5xx), hang, or restart with its indexes reset.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_DURATION = re.compile(r"([\d.]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_wait(text: str) -> float:
    """Seconds of a Go duration (`30s`, `1m30s`, `100ms`); Consul's default wait is 5 minutes."""
    if not text:
        return 300.0
    return min(600.0, sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text)))


@dataclass
class Registration:
    """One service instance on one node, with one health check."""

    service: str
    service_id: str
    address: str
    port: int
    tags: list[str] = field(default_factory=list)
    node: str = "node-1"
    node_address: str = "127.0.0.1"
    passing: bool = True
    create_index: int = 0
    modify_index: int = 0

    def entry(self) -> dict[str, Any]:
        status = "passing" if self.passing else "critical"
        return {
            "Node": {"ID": f"id-{self.node}", "Node": self.node, "Address": self.node_address, "Datacenter": "dc1"},
            "Service": {
                "ID": self.service_id,
                "Service": self.service,
                "Tags": list(self.tags),
                "Address": self.address,
                "Port": self.port,
                "CreateIndex": self.create_index,
                "ModifyIndex": self.modify_index,
            },
            "Checks": [
                {"Node": self.node, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing"},
                {
                    "Node": self.node,
                    "CheckID": f"service:{self.service_id}",
                    "Name": "Milvus gRPC",
                    "Status": status,
                    "ServiceID": self.service_id,
                    "ServiceName": self.service,
                },
            ],
        }


class FakeConsul:
    """A Consul agent's health endpoint on 127.0.0.1; start with `start()`, end with `stop()`."""

    def __init__(self, port: int = 0, datacenter: str = "dc1", token: str = "") -> None:
        self.datacenter = datacenter
        self.token = token
        self._requested_port = port
        self._cond = threading.Condition()
        self._index = 10
        self._service_index: dict[str, int] = {}
        self._registrations: dict[str, Registration] = {}
        self._error: tuple[int, str] | None = None
        self._hang = 0.0
        self._generation = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        #: (service, query parameters) of every health query, in arrival order.
        self.queries: list[tuple[str, dict[str, str]]] = []

    # -- life cycle -------------------------------------------------------------

    def start(self) -> FakeConsul:
        """Listen (on the port of the previous start, after a `restart`)."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", self.port or self._requested_port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="fake-consul", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection, blocked queries included."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def restart(self, reset_index: bool = True) -> None:
        """Stop and start again on the same port; a dev-mode agent forgets its indexes."""
        self.stop()
        if reset_index:
            with self._cond:
                self._index = 1
                for reg in self._registrations.values():
                    self._index += 1
                    reg.create_index = reg.modify_index = self._index
                self._service_index = {}
                for reg in self._registrations.values():
                    self._service_index[reg.service] = max(self._service_index.get(reg.service, 0), reg.modify_index)
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- state ------------------------------------------------------------------

    def _touch(self, service: str) -> None:
        self._index += 1
        self._service_index[service] = self._index
        self._cond.notify_all()

    def register(
        self,
        service: str,
        service_id: str,
        address: str,
        port: int,
        tags: list[str] | None = None,
        passing: bool = True,
        node: str = "node-1",
    ) -> None:
        """Register (or re-register) a service instance, as `PUT /v1/agent/service/register` does."""
        with self._cond:
            old = self._registrations.pop(service_id, None)
            if old is not None and old.service != service:
                self._touch(old.service)
            reg = Registration(service, service_id, address, port, list(tags or []), node=node, passing=passing)
            self._index += 1
            reg.create_index = old.create_index if old is not None and old.service == service else self._index
            reg.modify_index = self._index
            self._registrations[service_id] = reg
            self._service_index[service] = self._index
            self._cond.notify_all()

    def deregister(self, service_id: str) -> None:
        """Remove a service instance; unknown IDs are ignored."""
        with self._cond:
            reg = self._registrations.pop(service_id, None)
            if reg is not None:
                self._touch(reg.service)

    def set_passing(self, service_id: str, passing: bool) -> None:
        """Make the instance's health check pass or fail."""
        with self._cond:
            reg = self._registrations[service_id]
            if reg.passing != passing:
                reg.passing = passing
                self._touch(reg.service)

    def fail(self, status: int = 500, message: str = "No cluster leader") -> None:
        """Answer every query with `status` (blocked queries too) until `recover()`."""
        with self._cond:
            self._error = (status, message)
            self._cond.notify_all()

    def recover(self) -> None:
        with self._cond:
            self._error = None
            self._cond.notify_all()

    def hang(self, seconds: float) -> None:
        """Hold every new query `seconds` before it is looked at (0 ends hanging)."""
        self._hang = seconds

    def service_index(self, service: str) -> int:
        with self._cond:
            return self._service_index.get(service, 1)

    def registrations(self) -> dict[str, Registration]:
        with self._cond:
            return dict(self._registrations)

    # -- HTTP -------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        generation = self._generation
        url = urllib.parse.urlsplit(request.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        tags = [v for k, v in urllib.parse.parse_qsl(url.query) if k == "tag"]
        prefix = "/v1/health/service/"
        if not url.path.startswith(prefix):
            self._reply(request, 404, b"not found", {})
            return
        service = urllib.parse.unquote(url.path[len(prefix) :])
        self.queries.append((service, params))
        if self._hang:
            deadline = time.monotonic() + self._hang
            while time.monotonic() < deadline and generation == self._generation:
                time.sleep(0.02)
        if self.token and request.headers.get("X-Consul-Token") != self.token:
            self._reply(request, 403, b"ACL not found", {})
            return
        if params.get("dc", self.datacenter) != self.datacenter:
            self._reply(request, 500, f"No path to datacenter {params['dc']!r}".encode(), {})
            return
        index = int(params.get("index", "0") or 0)
        wait = parse_wait(params.get("wait", ""))
        deadline = time.monotonic() + wait
        with self._cond:
            while (
                index
                and self._error is None
                and generation == self._generation
                and self._service_index.get(service, 1) <= index
                and time.monotonic() < deadline
            ):
                self._cond.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            if generation != self._generation:
                # The agent went away: the connection drops without an answer.
                _abort(request)
                return
            if self._error is not None:
                status, message = self._error
                body, headers = message.encode(), {}
            else:
                entries = [
                    r.entry()
                    for r in sorted(self._registrations.values(), key=lambda r: r.service_id)
                    if r.service == service
                    and ("passing" not in params or r.passing)
                    and all(t in r.tags for t in tags)
                ]
                status, body = 200, json.dumps(entries).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-Consul-Index": str(self._service_index.get(service, 1)),
                    "X-Consul-Knownleader": "true",
                    "X-Consul-Lastcontact": "0",
                }
        self._reply(request, status, body, headers)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            request.send_response(status)
            for key, value in headers.items():
                request.send_header(key, value)
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except OSError:
            pass


def _abort(request: BaseHTTPRequestHandler) -> None:
    request.close_connection = True
    try:
        request.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
