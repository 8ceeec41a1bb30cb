"""Router workers: ROUTER_WORKERS router processes on one port, under a small supervisor.

With ROUTER_WORKERS above 1, `mishards-router` does not serve itself. It claims SERVER_PORT
(fails at once when the port is taken; port 0 becomes a free one), makes a fresh
PROMETHEUS_MULTIPROC_DIR, and starts the workers (`python -m mishards.router.main --worker I`).
Each worker is a full router (its own event loop, catalog cache, meta and discovery watches,
backend channels) listening on the port with SO_REUSEPORT, so the kernel spreads connections
over them. Worker 0 also serves METRICS_PORT: every worker's metrics, merged, and its own
topology page.

On SIGTERM or SIGINT the supervisor sends SIGTERM to the workers, which drain as one router
does, and exits 0 once they have (1 when one had to be killed after GRACE_PERIOD + 10 s). A worker that exits on its own (a crash, a failed start) ends the router:
the supervisor stops the other workers and exits 1, so that whoever runs it (Kubernetes,
`mishards up`) restarts one consistent set, metrics files and port included, rather than a
worker 0 whose metrics would mix a dead worker's counters with a new one's.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("mishards.router.workers")

WORKER_FLAG = "--worker"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Time a worker gets beyond GRACE_PERIOD to close its channels and exit before it is killed.
STOP_MARGIN = 10.0


def worker_index(argv: Sequence[str]) -> int | None:
    """The index given by `--worker I` (a process the supervisor started), else None."""
    args = list(argv)
    if WORKER_FLAG not in args:
        return None
    position = args.index(WORKER_FLAG)
    try:
        index = int(args[position + 1])
    except (IndexError, ValueError):
        raise SystemExit(f"mishards-router: {WORKER_FLAG} takes a worker index") from None
    if index < 0:
        raise SystemExit(f"mishards-router: {WORKER_FLAG} takes a worker index")
    return index


def worker_command(index: int) -> list[str]:
    """The command line of worker `index` (this interpreter, this module)."""
    return [sys.executable, "-m", "mishards.router.main", WORKER_FLAG, str(index)]


def claim_port(host: str, port: int) -> int:
    """Check that host:port is free for the workers and return it (port 0: a free one).

    Binds without SO_REUSEPORT, as one router would, so a port held by anything else (another
    router, with or without workers) is an OSError here instead of a silent shared listener.
    """
    family, _, _, _, address = socket.getaddrinfo(
        host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise OSError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
        return int(probe.getsockname()[1])


def fresh_metrics_dir(environ: Mapping[str, str]) -> tuple[str, bool]:
    """The workers' PROMETHEUS_MULTIPROC_DIR, emptied; and whether it was made here (removed at exit).

    The environment's folder when it names one (its files are deleted: a previous run's counters
    would be added to this one's), else a new temporary folder.
    """
    given = environ.get(MULTIPROC_ENV, "")
    if not given:
        return tempfile.mkdtemp(prefix="mishards-router-metrics-"), True
    os.makedirs(given, exist_ok=True)
    for name in os.listdir(given):
        if name.endswith(".db"):
            os.unlink(os.path.join(given, name))
    return given, False


@dataclass
class Supervisor:
    """Runs the workers' commands, forwards SIGTERM/SIGINT to them, and says how they ended.

    `run()` returns 0 when the workers stopped because the supervisor was asked to stop and
    every one exited cleanly, 1 when a worker exited on its own or a stop was not clean.
    """

    commands: list[list[str]]
    env: Mapping[str, str]
    grace: float = 5.0
    stop_margin: float = STOP_MARGIN
    poll_interval: float = 0.1
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _stop_signal: int | None = None

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for command in self.commands:
                self.procs.append(subprocess.Popen(command, env=dict(self.env), stdin=subprocess.DEVNULL))
            log.info("router workers started: pids %s", ", ".join(str(p.pid) for p in self.procs))
            return self._watch()
        finally:
            self._stop_all(signal.SIGTERM)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _watch(self) -> int:
        while True:
            if self._stop_signal is not None:
                log.info("router stopping on %s", signal.Signals(self._stop_signal).name)
                return 0 if self._stop_all(signal.SIGTERM) else 1  # SIGTERM: the workers' graceful stop
            for index, proc in enumerate(self.procs):
                code = proc.poll()
                if code is not None:
                    log.error(
                        "router worker %d (pid %d) exited with code %s: stopping the router", index, proc.pid, code
                    )
                    self._stop_all(signal.SIGTERM)
                    return 1
            time.sleep(self.poll_interval)

    def _stop_all(self, signum: int) -> bool:
        """Signal every live worker, wait for them (SIGKILL after the grace period); True when all exited 0."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signum)
        deadline = time.monotonic() + self.grace + self.stop_margin
        clean = True
        for index, proc in enumerate(self.procs):
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("router worker %d (pid %d) did not stop in time: killed", index, proc.pid)
                proc.kill()
                proc.wait()
            clean = clean and proc.returncode == 0
        return clean


def supervise(host: str, port: int, workers: int, grace: float) -> int:
    """Claim the port, start `workers` workers over a fresh metrics folder, and supervise them."""
    try:
        bound = claim_port(host, port)
    except OSError as exc:
        log.error("router cannot start: %s", exc)
        print(f"mishards-router: cannot start: {exc}", file=sys.stderr)
        return 2
    folder, made_here = fresh_metrics_dir(os.environ)
    env = {**os.environ, "SERVER_PORT": str(bound), MULTIPROC_ENV: folder}
    log.info("router: %d workers on port %d (metrics files in %s)", workers, bound, folder)
    try:
        return Supervisor([worker_command(i) for i in range(workers)], env, grace).run()
    finally:
        if made_here:
            shutil.rmtree(folder, ignore_errors=True)
