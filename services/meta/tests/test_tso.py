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
