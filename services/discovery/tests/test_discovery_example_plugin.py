"""The example plugin in docs/plugins loads by path + class name and passes the conformance suite."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mishards.common.settings import Settings
from mishards.discovery.backends import InstanceSpec, create_backend
from mishards.discovery.testing import CHECKS, BackendHarness, NotApplicable

PLUGIN_DIR = Path(__file__).resolve().parents[3] / "docs" / "plugins"


class Inventory:
    """An HTTP server publishing the instance list as JSON (or an error while broken)."""

    def __init__(self) -> None:
        self.document: list[dict[str, str]] = []
        self.broken = False
        inventory = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                status, body = (503, b"down") if inventory.broken else (200, json.dumps(inventory.document).encode())
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/milvus.json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def inventory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inventory]:
    server = Inventory()
    monkeypatch.setenv("JSON_DISCOVERY_URL", server.url)
    yield server
    server.close()


def plugin_settings() -> Settings:
    return Settings(DISCOVERY_PLUGIN_PATH=str(PLUGIN_DIR), DISCOVERY_CLASS_NAME="JsonUrlDiscovery")


class PluginHarness(BackendHarness):
    def __init__(self, inventory: Inventory, specs: Sequence[InstanceSpec]) -> None:
        self.inventory = inventory
        self.set_instances(specs)
        super().__init__(create_backend(plugin_settings()))

    def set_instances(self, specs: Sequence[InstanceSpec]) -> None:
        self.inventory.document = [{"identity": s.identity, "address": s.address, "role": s.role} for s in specs]

    def break_source(self) -> None:
        self.inventory.broken = True

    def repair_source(self) -> None:
        self.inventory.broken = False


def test_loads_by_path_and_class_name(inventory: Inventory) -> None:
    inventory.document = [{"identity": "milvus-a", "address": "10.0.0.1:19530", "role": "writable"}]
    backend = create_backend(plugin_settings())
    assert type(backend).__name__ == "JsonUrlDiscovery"
    assert asyncio.run(backend.list_instances()) == [InstanceSpec("milvus-a", "10.0.0.1:19530", "writable")]


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_example_plugin_conformance(inventory: Inventory, check: str) -> None:
    try:
        asyncio.run(CHECKS[check](lambda specs: PluginHarness(inventory, specs)))
    except NotApplicable as exc:
        pytest.skip(str(exc))
