"""Timed blocks and the A, B, C, A, B, C… alternation of arms."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.procstat import CpuMeter
from benchmarks.workload import Arm


@dataclass
class Block:
    units: int  # searches, queries or rows
    seconds: float  # wall time of the block (reads) or time spent in the calls (writes)
    latencies: list[float] = field(default_factory=list)


def latency_block(arm: Arm, op: Callable[[Arm, int], int], seconds: float, first: int = 0) -> Block:
    """One client issuing ``op`` back to back for ``seconds``."""
    lat: list[float] = []
    units = 0
    i = first
    end = time.perf_counter() + seconds
    t_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        if t0 >= end:
            break
        units += op(arm, i)
        lat.append(time.perf_counter() - t0)
        i += 1
    return Block(units, time.perf_counter() - t_start, lat)


def closed_loop(concurrency: int, seconds: float, step: Callable[[int, int], int]) -> tuple[int, float]:
    """``concurrency`` threads calling ``step(thread, i)`` back to back for ``seconds``, started together
    (``i`` counts up from a per-thread offset); the units the steps returned, and the wall time.
    The first error a thread raised is raised after every thread has stopped."""
    counts = [0] * concurrency
    errors: list[BaseException] = []
    barrier = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(w: int) -> None:
        barrier.wait()
        i = w * 100_003
        try:
            while time.perf_counter() < stop_at[0]:
                counts[w] += step(w, i)
                i += 1
        except BaseException as exc:  # reported after the block
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts), wall


def throughput_block(arm: Arm, op: Callable[[Arm, int], int], seconds: float, concurrency: int) -> Block:
    """``concurrency`` threads sharing the arm's client, each issuing ``op`` back to back."""
    return Block(*closed_loop(concurrency, seconds, lambda _w, i: op(arm, i)))


def write_block(
    arm: Arm,
    prepare: Callable[[Arm, int], Callable[[], int]],
    batches: int,
    first: int = 0,
    writers: int = 1,
    settle: Callable[[Arm], Any] | None = None,
) -> Block:
    """``batches`` writes by ``writers`` threads, then ``settle`` (a Strong count): timed from the first
    write until the rows are visible, so a backlog the acknowledgement left behind is paid for."""
    calls = [prepare(arm, i) for i in range(first, first + batches)]  # rows built outside the timing
    lat: list[float] = [0.0] * batches
    units = [0] * batches
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for k in range(w, batches, writers):
                t0 = time.perf_counter()
                units[k] = calls[k]()
                lat[k] = time.perf_counter() - t0
        except BaseException as exc:  # reported after the block
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if settle is not None:
        settle(arm)
    return Block(sum(units), time.perf_counter() - started, lat)


def session_block(
    arm: Arm, write: Callable[[Arm, int], Any], read: Callable[[Arm, int], int], seconds: float, first: int = 0
) -> Block:
    """A write then a Session read by the same client, back to back; only the reads are timed."""
    lat: list[float] = []
    i = first
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        write(arm, i)
        t0 = time.perf_counter()
        read(arm, i)
        lat.append(time.perf_counter() - t0)
        i += 1
    return Block(len(lat), sum(lat), lat)


def alternate(
    arms: Sequence[Arm],
    rounds: int,
    run_block: Callable[[Arm, int], Block],
    warmup: Callable[[Arm], Any],
    cpu_pids: dict[str, int | None],
) -> dict[str, dict[str, Any]]:
    """Warm every arm up, then run blocks A, B, C, A, B, C… ``rounds`` times; summarise per arm."""
    for arm in arms:
        warmup(arm)
    blocks: dict[str, list[Block]] = {a.name: [] for a in arms}
    cpu: dict[str, dict[str, float]] = {a.name: {} for a in arms}
    for r in range(rounds):
        for arm in arms:
            meter = CpuMeter(cpu_pids)
            meter.start()
            block = run_block(arm, r)
            for proc, used in meter.stop().items():
                cpu[arm.name][proc] = cpu[arm.name].get(proc, 0.0) + used
            blocks[arm.name].append(block)
    return {name: summarise(bs, cpu[name]) for name, bs in blocks.items()}


def summarise(blocks: list[Block], cpu: dict[str, float]) -> dict[str, Any]:
    units = sum(b.units for b in blocks)
    rates = [b.units / b.seconds for b in blocks if b.seconds > 0]
    out: dict[str, Any] = {
        "units": units,
        "rate_median": statistics.median(rates) if rates else 0.0,
        "rates": rates,
        "cpu_seconds": cpu,
        "cpu_ms_per_unit": {p: 1000.0 * s / units for p, s in cpu.items()} if units else {},
    }
    lat = [x for b in blocks for x in b.latencies]
    if lat:
        arr = np.array(lat) * 1000.0
        out.update(
            p50_ms=float(np.percentile(arr, 50)),
            p99_ms=float(np.percentile(arr, 99)),
            mean_ms=float(arr.mean()),
            round_p50_ms=[float(np.percentile(np.array(b.latencies) * 1000.0, 50)) for b in blocks if b.latencies],
        )
    return out
