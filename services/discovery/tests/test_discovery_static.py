"""Static back end: entry parsing, identities, roles, address resolution."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mishards.common.settings import Settings, SettingsError
from mishards.discovery.backends import InstanceSpec, StaticBackend
from mishards.discovery.backends.hostport import split_host_port
from mishards.discovery.backends.static import parse_static_entries


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("milvus-wo", ("milvus-wo", 19530)),
        ("milvus-wo:19601", ("milvus-wo", 19601)),
        ("tcp://milvus-wo:19601", ("milvus-wo", 19601)),
        ("TCP://10.0.0.1", ("10.0.0.1", 19530)),
        ("  tcp://10.0.0.1:19602/ ", ("10.0.0.1", 19602)),
        ("[::1]:19601", ("::1", 19601)),
        ("[::1]", ("::1", 19530)),
        ("::1", ("::1", 19530)),
    ],
)
def test_split_host_port(raw: str, expected: tuple[str, int]) -> None:
    assert split_host_port(raw, 19530) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "tcp://", "http://x:1", "x:abc", "x:0", "x:70000", "[::1", "a b:1", ":19530"],
)
def test_split_host_port_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match=".+"):
        split_host_port(raw, 19530)


def test_identities_roles_and_default_port() -> None:
    settings = Settings(
        WOSERVER=["tcp://milvus-wo:19601", "10.0.0.2"],
        DISCOVERY_STATIC_HOSTS=["milvus-ro-0", "tcp://[::1]:19700"],
        DISCOVERY_STATIC_PORT=19999,
    )
    entries = parse_static_entries(settings)
    assert [(e.identity, e.role) for e in entries] == [
        ("milvus-wo:19601", "writable"),
        ("10.0.0.2:19999", "writable"),
        ("milvus-ro-0:19999", "readonly"),
        ("[::1]:19700", "readonly"),
    ]


def test_bad_entry_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="DISCOVERY_STATIC_HOSTS"):
        StaticBackend(Settings(WOSERVER=["a:1"], DISCOVERY_STATIC_HOSTS=["b:port"]))


def test_duplicate_entry_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="already listed in WOSERVER"):
        StaticBackend(Settings(WOSERVER=["a:19530"], DISCOVERY_STATIC_HOSTS=["tcp://a"]))


def test_list_resolves_addresses_and_keeps_identity() -> None:
    backend = StaticBackend(
        Settings(
            WOSERVER=["localhost:19601"],
            DISCOVERY_STATIC_HOSTS=["127.0.0.1:19602", "no-such-host.invalid:19603"],
            DISCOVERY_PROBE_TIMEOUT=2.0,
        )
    )
    listed = asyncio.run(backend.list_instances())
    assert listed == [
        # localhost resolves, IPv4 first, to an IP; the identity stays as written.
        InstanceSpec("localhost:19601", "127.0.0.1:19601", "writable"),
        InstanceSpec("127.0.0.1:19602", "127.0.0.1:19602", "readonly"),
        # Unresolvable: listed with its unresolved address, the prober marks it down.
        InstanceSpec("no-such-host.invalid:19603", "no-such-host.invalid:19603", "readonly"),
    ]


def test_address_follows_a_host_name_change(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = StaticBackend(Settings(WOSERVER=["milvus-wo:19601"]))
    answers = iter(["10.0.0.1", "10.0.0.9"])

    async def fake_getaddrinfo(host: str, port: int, **_: object) -> list[tuple]:
        assert host == "milvus-wo"
        return [(2, 1, 6, "", (next(answers), port))]

    async def run() -> list[list[InstanceSpec]]:
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
        return [await backend.list_instances(), await backend.list_instances()]

    first, second = asyncio.run(run())
    assert first == [InstanceSpec("milvus-wo:19601", "10.0.0.1:19601", "writable")]
    assert second == [InstanceSpec("milvus-wo:19601", "10.0.0.9:19601", "writable")]


def test_a_failed_lookup_keeps_the_address_the_host_last_resolved_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container network's resolver that cancels a query for a moment (podman's aardvark-dns
    reloading) must not move a healthy instance to an unresolved `host:port`."""
    backend = StaticBackend(Settings(WOSERVER=["milvus-wo:19601"], DISCOVERY_STATIC_HOSTS=["milvus-ro:19602"]))
    answers: dict[str, list[str | None]] = {
        "milvus-wo": ["10.0.0.1", None, "10.0.0.7"],
        "milvus-ro": [None, None, None],
    }

    async def fake_getaddrinfo(host: str, port: int, **_: object) -> list[tuple]:
        ip = answers[host].pop(0)
        if ip is None:
            raise socket.gaierror(-3, "Temporary failure in name resolution")
        return [(2, 1, 6, "", (ip, port))]

    async def run() -> list[list[str]]:
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
        return [[s.address for s in await backend.list_instances()] for _ in range(3)]

    assert asyncio.run(run()) == [
        ["10.0.0.1:19601", "milvus-ro:19602"],  # milvus-ro never resolved: listed unresolved (probed down)
        ["10.0.0.1:19601", "milvus-ro:19602"],  # the lookup failed: the last address stays
        ["10.0.0.7:19601", "milvus-ro:19602"],  # resolved again: the new address
    ]
