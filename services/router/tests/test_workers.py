"""The router's worker supervisor, offline: stand-in workers instead of routers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mishards.router.workers import claim_port, fresh_metrics_dir, worker_index

# A stand-in worker: writes its PID, exits 0 on SIGTERM; or exits with a code after a delay.
FAKE_WORKER = """
import os, signal, sys, time
folder, index, die_after, code = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
open(os.path.join(folder, f"worker-{index}.pid"), "w").write(str(os.getpid()))
start = time.monotonic()
while die_after <= 0 or time.monotonic() - start < die_after:
    time.sleep(0.05)
sys.exit(code)
"""

# The supervisor under test, run as its own process so that signals reach only it.
SUPERVISOR = """
import logging, os, sys
from mishards.router.workers import Supervisor
logging.basicConfig(level=logging.INFO)
folder = sys.argv[1]
workers = [[sys.executable, "-c", sys.argv[2], folder, str(i), *spec.split(":")] for i, spec in enumerate(sys.argv[3:])]
sys.exit(Supervisor(workers, dict(os.environ), grace=1.0, stop_margin=0.5).run())
"""


def start_supervisor(folder: Path, *specs: str) -> subprocess.Popen[bytes]:
    """Specs are 'die_after:code' per worker (die_after 0: run until SIGTERM)."""
    return subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(folder), FAKE_WORKER, *specs], stderr=subprocess.PIPE
    )


def worker_pids(folder: Path, count: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = [folder / f"worker-{i}.pid" for i in range(count)]
        if all(f.exists() and f.read_text() for f in files):
            return [int(f.read_text()) for f in files]
        time.sleep(0.05)
    raise AssertionError("the workers did not start")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose; the supervisor reaps its children.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_supervisor_stops_every_worker_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    supervisor = start_supervisor(tmp_path, "0:0", "0:0", "0:0")
    pids = worker_pids(tmp_path, 3)
    assert all(alive(pid) for pid in pids)
    supervisor.send_signal(sig)
    assert supervisor.wait(30) == 0
    assert not [pid for pid in pids if alive(pid)]


def test_a_worker_that_exits_on_its_own_stops_the_others_and_the_supervisor_exits_1(tmp_path: Path) -> None:
    supervisor = start_supervisor(tmp_path, "0:0", "1.5:3")
    pids = worker_pids(tmp_path, 2)
    assert supervisor.wait(30) == 1
    assert not [pid for pid in pids if alive(pid)]
    assert b"worker 1" in supervisor.stderr.read()  # type: ignore[union-attr]


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    stubborn = FAKE_WORKER.replace("lambda *_: sys.exit(0)", "signal.SIG_IGN")
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(tmp_path), stubborn, "0:0"], stderr=subprocess.PIPE
    )
    (pid,) = worker_pids(tmp_path, 1)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(60) == 1  # a stop that needed SIGKILL is not clean
    assert not alive(pid)


def test_worker_index_is_read_from_the_command_line() -> None:
    assert worker_index([]) is None
    assert worker_index(["--worker", "2"]) == 2
    with pytest.raises(SystemExit):
        worker_index(["--worker"])
    with pytest.raises(SystemExit):
        worker_index(["--worker", "-1"])


def test_claim_port_picks_a_free_port_for_0_and_refuses_a_taken_one() -> None:
    port = claim_port("127.0.0.1", 0)
    assert port > 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="cannot bind 127.0.0.1"):
            claim_port("127.0.0.1", taken.getsockname()[1])
    # A port other workers share (SO_REUSEPORT) is taken too: two routers never split one port.
    with socket.socket() as shared:
        shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        shared.bind(("127.0.0.1", 0))
        shared.listen()
        with pytest.raises(OSError):
            claim_port("127.0.0.1", shared.getsockname()[1])


def test_the_metrics_folder_is_new_or_emptied_of_old_samples(tmp_path: Path) -> None:
    made, created = fresh_metrics_dir({})
    try:
        assert created and os.path.isdir(made) and not os.listdir(made)
    finally:
        os.rmdir(made)
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    given, created = fresh_metrics_dir({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert given == str(tmp_path) and not created
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]
