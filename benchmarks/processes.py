"""Helper processes of the benchmark (forwarder, synthetic backends), stopped by PID."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mishards.cli.launcher import log_tail, terminate_process


class Child:
    """``python -m <module> args`` in its own session, output to ``log_file``."""

    def __init__(self, name: str, module: str, args: Sequence[str], log_file: Path) -> None:
        self.name = name
        self.command = [sys.executable, "-m", module, *args]
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        """Start the process and wait until ``ready()`` is true."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=Path(__file__).resolve().parent.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{log_tail(self.log_file)}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{log_tail(self.log_file)}")
            time.sleep(0.1)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is not None:
            terminate_process(self.proc, timeout)
            self.proc = None
