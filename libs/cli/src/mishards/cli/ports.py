"""Port allocation for the processes `mishards up` starts on this machine."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import socket
import tempfile
import threading
from collections.abc import Iterable
from typing import ClassVar

DEFAULT_PORT_RANGE: tuple[int, int] = (19600, 19799)
_RANDOM = random.SystemRandom()
LOCALHOST = "127.0.0.1"


class PortRangeExhausted(RuntimeError):
    """No free port is left in the allocator's range."""


def port_is_free(port: int, host: str = "") -> bool:
    """True when nothing holds ``port``: a listening socket can be bound to it right now.

    The default ``host`` "" (all IPv4 addresses) also catches servers that bind the
    machine's own IP or ``0.0.0.0`` rather than 127.0.0.1, as Milvus components do.
    """
    return _can_bind(port, host, reuse=False)


def port_has_listener(port: int, host: str = "") -> bool:
    """True when a socket is bound to ``port`` (TIME_WAIT leftovers of old connections do not count)."""
    return not _can_bind(port, host, reuse=True)


def _can_bind(port: int, host: str, reuse: bool) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                return False
            raise
    return True


def port_accepts(port: int, host: str = LOCALHOST, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class PortAllocator:
    """Hands out free TCP ports of ``[start, end]`` (both inclusive).

    A port is handed out at most once per process: all allocators share one
    registry of ports already given (unless a test passes its own ``taken`` set),
    so two clusters started by one process never collide. Every port is checked
    with a bind test (all IPv4 addresses, no SO_REUSEADDR) before it is handed out.
    Scans start at a random port of the range, so clusters started at the same time by
    different processes (two test runs on one machine) seldom race for the same port.

    Ports of the shared registry are also claimed across processes, with an exclusive
    ``flock`` on ``$TMPDIR/mishards-ports/<port>.lock`` held until they are released (or the
    process ends): a port that one process holds for a stopped instance (killed by a test,
    about to restart on its recorded ports) is not handed to another process meanwhile.
    """

    _shared_taken: ClassVar[set[int]] = set()
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _claims: ClassVar[dict[int, int]] = {}  # port -> the descriptor of its locked claim file

    def __init__(
        self,
        start: int = DEFAULT_PORT_RANGE[0],
        end: int = DEFAULT_PORT_RANGE[1],
        *,
        host: str = "",
        taken: set[int] | None = None,
    ) -> None:
        if not 1 <= start <= end <= 65535:
            raise ValueError(f"bad port range {start}-{end}")
        self.start = start
        self.end = end
        self.host = host
        self._taken = self._shared_taken if taken is None else taken

    @property
    def _shared(self) -> bool:
        return self._taken is self._shared_taken

    def reserve(self, ports: Iterable[int]) -> None:
        """Mark ports as given (e.g. ports recorded by an earlier run) so they are never handed out."""
        ports = list(ports)
        with self._lock:
            self._taken.update(ports)
            if self._shared:
                for port in ports:
                    _claim(port, self._claims)  # best effort: the recorded port is ours either way

    def release(self, ports: Iterable[int]) -> None:
        """Give ports back, e.g. after a start that failed before recording them."""
        ports = list(ports)
        with self._lock:
            self._taken.difference_update(ports)
            if self._shared:
                for port in ports:
                    _unclaim(port, self._claims)

    def allocate(self, count: int = 1) -> list[int]:
        """Return ``count`` distinct free ports; raise PortRangeExhausted when the range has too few."""
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            found: list[int] = []
            # Scan from a random point (wrapping round) so that two processes allocating at
            # the same moment, each before binding, rarely pick the same ports.
            size = self.end - self.start + 1
            first = _RANDOM.randrange(size)
            for i in range(size):
                port = self.start + (first + i) % size
                if len(found) == count:
                    break
                if port in self._taken or not port_is_free(port, self.host):
                    continue
                if self._shared and not _claim(port, self._claims):
                    continue  # another process holds it (for an instance of its own that is down)
                found.append(port)
            if len(found) < count:
                raise PortRangeExhausted(f"need {count} free ports in {self.start}-{self.end}, found {len(found)}")
            self._taken.update(found)
            return found

    def allocate_one(self, preferred: int | None = None) -> int:
        """Return one free port: ``preferred`` when it is free and not yet given, else any free one."""
        if preferred:
            with self._lock:
                if (
                    preferred not in self._taken
                    and port_is_free(preferred, self.host)
                    and (not self._shared or _claim(preferred, self._claims))
                ):
                    self._taken.add(preferred)
                    return preferred
        return self.allocate(1)[0]


def _claim_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), "mishards-ports")
    os.makedirs(path, exist_ok=True)
    return path


def _claim(port: int, claims: dict[int, int]) -> bool:
    """Lock ``port``'s claim file for this process; False when another process holds it."""
    if port in claims:
        return True
    fd = os.open(os.path.join(_claim_dir(), f"{port}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    claims[port] = fd
    return True


def _unclaim(port: int, claims: dict[int, int]) -> None:
    fd = claims.pop(port, None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops its lock


def ephemeral_allocator(taken: set[int] | None = None) -> PortAllocator:
    """An allocator over a high range below Linux's default ephemeral range (32768-60999).

    Service ports are recorded and reused across restarts, so they must not come from
    the kernel's ephemeral range, where an outgoing connection could hold them later.
    """
    return PortAllocator(20000, 32767, taken=taken)
