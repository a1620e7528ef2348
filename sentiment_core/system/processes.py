"""Who runs a trial or an MLflow run, and whether that process still exists.

A process is named by (host, pid, start time): a pid alone can be reused by an unrelated
process after a crash, the start time (from /proc) tells the two apart. Only processes on this
host can be checked; another host's are always assumed alive (never end work on a guess).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_identity() -> dict:
    pid = os.getpid()
    return {"worker_host": socket.gethostname(), "worker_pid": pid, "worker_start": process_start_time(pid)}


def is_alive(identity: dict) -> bool:
    """False only when the process is certainly gone: same host, and its pid is free or reused."""
    if identity.get("worker_host") != socket.gethostname():
        return True  # another machine: cannot tell here
    pid, start = identity.get("worker_pid"), identity.get("worker_start")
    if not isinstance(pid, int) or start is None:
        return True  # cannot tell: never end work on a guess
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Same pid, different start time: the pid was reused by another process.
    return process_start_time(pid) == start
