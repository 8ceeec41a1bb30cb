import threading

from mishards.meta.tso import LOGICAL_BITS, TimestampOracle, physical_ms


class Bound:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self, upto: int) -> int:
        old = self.value
        self.value = max(old, upto)
        return old


def test_monotonic_even_when_clock_stands_still() -> None:
    bound = Bound()
    tso = TimestampOracle(bound, clock=lambda: 1000.0)
    seen = [tso.get() for _ in range(1000)]
    assert seen == sorted(set(seen))
    assert physical_ms(seen[0]) == 1_000_000


def test_batches_are_consecutive() -> None:
    tso = TimestampOracle(Bound(), clock=lambda: 5.0)
    first = tso.get(10)
    assert tso.get() == first + 10


def test_restart_never_goes_back_even_if_clock_does() -> None:
    bound = Bound()
    now = [2000.0]
    tso = TimestampOracle(bound, clock=lambda: now[0])
    last = tso.get()
    now[0] = 1000.0  # wall clock jumps back, then meta restarts
    tso2 = TimestampOracle(bound, clock=lambda: now[0])
    assert tso2.get() > last


def test_logical_overflow_moves_to_next_millisecond() -> None:
    tso = TimestampOracle(Bound(), clock=lambda: 1.0)
    a = tso.get((1 << LOGICAL_BITS) - 2)
    b = tso.get(5)
    assert physical_ms(b) == physical_ms(a) + 1


def test_get_reserved_never_persists_and_reserve_ahead_makes_room() -> None:
    """The log's append draws its timestamp under a store lock: it must not write the window there."""
    bound = Bound()
    now = [10.0]
    tso = TimestampOracle(bound, clock=lambda: now[0])
    assert tso.get_reserved() is None and bound.value == 0  # no window yet
    tso.reserve_ahead()
    reserved = bound.value
    first = tso.get_reserved()
    assert first is not None and physical_ms(first) == 10_000 and bound.value == reserved
    now[0] = 10.0 + 3.5  # past the window
    assert tso.get_reserved() is None and bound.value == reserved
    tso.reserve_ahead()
    second = tso.get_reserved()
    assert second is not None and second > first and bound.value > reserved
    tso.reserve_ahead()  # more than half the window left: nothing written
    assert bound.value == physical_ms(second) + 3000


def test_issuing_never_waits_for_a_window_being_written() -> None:
    """A store write of the bound may wait for a lock an issuing caller holds (the append
    transaction on SQLite); issuing must not wait for that write, or neither ends."""
    writing, release = threading.Event(), threading.Event()
    bound = Bound()

    def slow_reserve(upto: int) -> int:
        if upto:  # not the start-up read
            writing.set()
            assert release.wait(5)
        return bound(upto)

    tso = TimestampOracle(slow_reserve, clock=lambda: 10.0)
    writer = threading.Thread(target=tso.reserve_ahead)
    writer.start()
    assert writing.wait(5)
    assert tso.get_reserved() is None  # answered at once while the window is being written
    release.set()
    writer.join(5)
    assert not writer.is_alive() and tso.get_reserved() is not None
