"""Port allocator: distinct ports, busy ports skipped, exhaustion reported."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from mishards.cli.ports import (
    PortAllocator,
    PortRangeExhausted,
    port_has_listener,
    port_is_free,
)


def _free_range(size: int) -> tuple[int, int]:
    # A run of `size` ports that are free right now, from a high, rarely used block.
    for start in range(23000, 27000, size):
        if all(port_is_free(p) for p in range(start, start + size)):
            return start, start + size - 1
    pytest.skip("no free port block")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_allocated_ports_are_distinct_and_never_reused() -> None:
    start, end = _free_range(8)
    taken: set[int] = set()
    first = PortAllocator(start, end, taken=taken).allocate(5)
    second = PortAllocator(start, end, taken=taken).allocate(3)
    assert len(set(first + second)) == 8
    assert all(start <= p <= end for p in first + second)
    with pytest.raises(PortRangeExhausted):
        PortAllocator(start, end, taken=taken).allocate(1)


def test_busy_port_is_skipped(listener: socket.socket) -> None:
    busy = listener.getsockname()[1]
    allocator = PortAllocator(busy, min(busy + 20, 65535), taken=set())
    ports = allocator.allocate(2)
    assert busy not in ports
    assert port_has_listener(busy)
    assert not port_is_free(busy)


def test_range_exhausted(listener: socket.socket) -> None:
    busy = listener.getsockname()[1]
    with pytest.raises(PortRangeExhausted, match="need 1 free ports"):
        PortAllocator(busy, busy, taken=set()).allocate(1)
    start, end = _free_range(3)
    with pytest.raises(PortRangeExhausted):
        PortAllocator(start, end, taken=set()).allocate(4)


def test_reserved_ports_are_skipped_and_release_returns_them() -> None:
    start, end = _free_range(3)
    allocator = PortAllocator(start, end, taken=set())
    allocator.reserve([start, start + 1])
    assert allocator.allocate(1) == [start + 2]
    allocator.release([start])
    assert allocator.allocate(1) == [start]


def test_preferred_port_when_free_else_any() -> None:
    start, end = _free_range(4)
    allocator = PortAllocator(start, end, taken=set())
    assert allocator.allocate_one(preferred=start + 3) == start + 3
    # Already handed out: another one comes back.
    other = allocator.allocate_one(preferred=start + 3)
    assert start <= other <= start + 2


def test_scans_start_at_a_random_port() -> None:
    # Two processes allocating at the same moment must not walk the range in the same order.
    start, end = _free_range(16)
    firsts = {PortAllocator(start, end, taken=set()).allocate(1)[0] for _ in range(40)}
    assert len(firsts) > 1


def test_bad_range_rejected() -> None:
    with pytest.raises(ValueError):
        PortAllocator(10, 5)


def test_a_port_another_process_holds_is_not_handed_out_even_with_nothing_listening() -> None:
    import subprocess
    import sys

    start, end = _free_range(1)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\nfrom mishards.cli.ports import PortAllocator\n"
         f"print(PortAllocator({start}, {end}).allocate(1)[0], flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == str(start)
        assert port_is_free(start)  # nobody listens: only the claim keeps it
        with pytest.raises(PortRangeExhausted):
            PortAllocator(start, end).allocate(1)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    mine = PortAllocator(start, end)
    assert mine.allocate(1) == [start]  # the holder's claim died with it
    mine.release([start])
