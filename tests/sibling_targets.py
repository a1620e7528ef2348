"""Targets for spawned test processes, in a module that imports little (a spawned process imports
the module of its target first)."""

from __future__ import annotations

import time
from pathlib import Path


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def report_siblings(folder: str, index: int, siblings=None) -> None:
    """Worker 0 ends once worker 1 has seen both running; worker 1 then waits to see one."""
    folder = Path(folder)
    if index == 0:
        wait_for((folder / "seen-1").exists)
        return
    (folder / "seen-1").write_text(str(siblings.value))
    wait_for(lambda: siblings.value == 1)
    (folder / "seen-2").write_text(str(siblings.value))


def report_sigint(folder: str) -> None:
    """Whether this worker ignores SIGINT (a file "ignored") or stops on it ("stops")."""
    import signal

    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    (Path(folder) / "sigint").write_text("ignored" if ignored else "stops")
