"""py-spy profiles of a running service: record while a workload runs, then fold the stacks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*)\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, workload: Callable[[], Any]) -> Path | None:
    """py-spy record (raw folded stacks) of ``pid`` while ``workload()`` runs; None without py-spy."""
    exe = py_spy()
    if exe is None:
        return None
    proc = subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(int(max(1, seconds))), "--rate", "250",
         "--format", "raw", "--nolineno", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        workload()
    finally:
        try:
            _, err = proc.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return None
    if proc.returncode != 0 or not out.exists():
        print(f"  py-spy failed: {err.decode(errors='replace').strip()[-300:]}")
        return None
    return out


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "/src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


# Frames every sample of an asyncio gRPC server carries, or that wait rather than work:
# left out of the "top" lists so that they show where the router's own time goes.
_NOISE = ("(asyncio/", "(threading.py)", "(selectors.py)", "(router/main.py)", "(common/server.py)", "<module>")


def _is_noise(frame: str) -> bool:
    return any(n in frame for n in _NOISE)


def fold(path: Path) -> dict[str, Any]:
    """Top frames by self samples and by inclusive samples, and the total sample count."""
    self_count: Counter[str] = Counter()
    incl_count: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [_short(f) for f in stack.split(";")[1:]]  # the first entry names the process/thread
        if not frames:
            continue
        total += count
        self_count[frames[-1]] += count
        for f in set(frames):
            incl_count[f] += count
    return {
        "samples": total,
        "top_self": [(f, n / total) for f, n in self_count.most_common(15)] if total else [],
        "top_inclusive": [(f, n / total) for f, n in incl_count.most_common() if not _is_noise(f)][:25]
        if total
        else [],
        # Thread.run: grpc.aio's poller thread (native code); select: the event loop waiting.
        "idle_or_native": {f: n / total for f, n in self_count.items() if _is_noise(f)} if total else {},
        "inclusive": {f: n / total for f, n in incl_count.items()} if total else {},
    }


def share_of(folded: dict[str, Any], needle: str) -> float:
    """Fraction of samples with a frame whose name contains ``needle``."""
    return max((v for f, v in folded.get("inclusive", {}).items() if needle in f), default=0.0)
