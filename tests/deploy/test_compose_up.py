"""deploy/all_in_one/up.py's start order, offline: what it computes from the compose file."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from conftest import REPO

spec = importlib.util.spec_from_file_location("compose_up", REPO / "deploy/all_in_one/up.py")
assert spec and spec.loader
up = importlib.util.module_from_spec(spec)
spec.loader.exec_module(up)


def test_the_all_in_one_starts_each_service_after_what_it_waits_for():
    services = yaml.safe_load((REPO / "deploy/all_in_one/docker-compose.yml").read_text())["services"]
    order = up.start_order(services, without=["jaeger"])
    assert set(order) == set(services) - {"jaeger"}
    for name in order:
        for dependency, condition in up.dependencies(services[name]).items():
            assert condition == "service_healthy", (name, dependency)
            assert order.index(dependency) < order.index(name)
    assert order[-1] == "router"


def test_dependencies_short_and_long_forms():
    assert up.dependencies({"depends_on": ["a", "b"]}) == {"a": "service_started", "b": "service_started"}
    long = {"depends_on": {"a": {"condition": "service_healthy"}, "b": None}}
    assert up.dependencies(long) == {"a": "service_healthy", "b": "service_started"}
    assert up.dependencies({}) == {}


def test_start_order_rejects_cycles_and_missing_dependencies():
    with pytest.raises(up.ComposeError, match="cycle"):
        up.start_order({"a": {"depends_on": ["b"]}, "b": {"depends_on": ["a"]}})
    with pytest.raises(up.ComposeError, match="'db', which is not started"):
        up.start_order({"app": {"depends_on": ["db"]}, "db": {}}, without=["db"])
    with pytest.raises(up.ComposeError, match="'nowhere'"):
        up.start_order({"app": {"depends_on": ["nowhere"]}})


class TopologyServer:
    """A loopback HTTP server answering /topology.json with the instances it is given, in turn."""

    def __init__(self, answers: list[list[dict[str, str]]]) -> None:
        import http.server
        import json
        import threading

        self.answers = answers
        self.asked = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                instances = outer.answers[min(outer.asked, len(outer.answers) - 1)]
                outer.asked += 1
                body = json.dumps({"instances": instances}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/topology.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


WO_DOWN = {"role": "writable", "health": "down", "reason": "Milvus reports unhealthy: starting"}
WO_UP = {"role": "writable", "health": "healthy", "reason": ""}
RO_UP = {"role": "readonly", "health": "healthy", "reason": ""}


def test_wait_writable_returns_once_a_writable_instance_is_healthy(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(up, "POLL_SECONDS", 0.01)
    server = TopologyServer([[WO_DOWN, RO_UP], [WO_DOWN, RO_UP], [WO_UP, RO_UP]])
    try:
        up.wait_writable(server.url, timeout=10)
    finally:
        server.close()
    assert server.asked == 3  # a healthy read-only instance alone did not do


def test_wait_writable_gives_up_with_what_the_router_sees(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(up, "POLL_SECONDS", 0.01)
    server = TopologyServer([[WO_DOWN, RO_UP]])
    try:
        with pytest.raises(up.ComposeError, match="no healthy writable Milvus instance.*starting"):
            up.wait_writable(server.url, timeout=0.2)
    finally:
        server.close()
    with pytest.raises(up.ComposeError, match="URLError|ConnectionRefused"):
        up.wait_writable(server.url, timeout=0.05)  # nothing listens any more
