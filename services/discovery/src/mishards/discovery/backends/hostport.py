"""Parsing and resolution of `host[:port]` entries shared by the static and file back ends."""

from __future__ import annotations

import asyncio
import logging
import socket

log = logging.getLogger(__name__)


def join_host_port(host: str, port: int) -> str:
    """`host:port`, with IPv6 literals in brackets (`[::1]:19530`)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def parse_port(raw: str, entry: str) -> int:
    """A port number 1-65535; ValueError naming `entry` otherwise."""
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{entry!r} has port {raw!r}, not a number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{entry!r} has port {port}, outside 1-65535")
    return port


def split_host_port(raw: str, default_port: int) -> tuple[str, int]:
    """(host, port) of `[tcp://]host[:port]`; IPv6 literals as `[addr]:port` or bare `addr`.

    Raises ValueError saying what is wrong with the entry.
    """
    text = raw.strip()
    if text.lower().startswith("tcp://"):
        text = text[len("tcp://") :]
    text = text.rstrip("/")
    if "://" in text:
        raise ValueError(f"{raw!r} has a scheme other than tcp://")
    if not text:
        raise ValueError(f"{raw!r} has no host")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{raw!r} has an unclosed [")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{raw!r} has text after ]")
        port = parse_port(rest[1:], raw) if rest else default_port
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = parse_port(port_text, raw)
    else:  # a bare name, IPv4 address or IPv6 literal without a port
        host, port = text, default_port
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise ValueError(f"{raw!r} has no usable host")
    return host, port


async def resolve_address(host: str, port: int, timeout: float, previous: str | None = None) -> str:
    """`ip:port` of host (IPv4 preferred). When resolution fails: `previous` (the address the
    host last resolved to: a failed lookup is far more often a DNS hiccup, such as a container
    network's resolver reloading, than a host that moved), else `host:port` unresolved."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (TimeoutError, OSError, UnicodeError) as exc:
        log.warning("cannot resolve %s: %s", host, exc or type(exc).__name__)
        return previous or join_host_port(host, port)
    # Milvus often listens on IPv4 only while `localhost` resolves to ::1 first.
    infos.sort(key=lambda info: 0 if info[0] == socket.AF_INET else 1)
    if not infos:
        return previous or join_host_port(host, port)
    return join_host_port(str(infos[0][4][0]), port)


class Resolver:
    """Resolves `host:port` at every call, keeping each host's last resolved address for when a
    lookup fails (see `resolve_address`). A host that never resolved stays `host:port`."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._last: dict[tuple[str, int], str] = {}

    async def resolve(self, host: str, port: int) -> str:
        address = await resolve_address(host, port, self.timeout, self._last.get((host, port)))
        if address != join_host_port(host, port):
            self._last[(host, port)] = address
        return address
