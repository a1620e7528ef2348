"""Check an Optuna journal file before a study opens it, and repair a torn last record.

Optuna appends each record as one JSON line. A write cut short (power loss, an out-of-memory
kill, a full disk) leaves the last line incomplete; Optuna's reader skips it, but the next
append glues a new record onto it, and from then on every read fails with a JSONDecodeError.
Cutting the incomplete record (after a backup) keeps every complete trial and lets the study
resume; a trial whose last record was lost looks like a trial of a dead worker and is failed
and retried like one. Damage anywhere else is not guessed at: the file is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

from ..errors import UserError
from ..system.locks import file_lock


class WriterLock:
    """Optuna's journal writer lock (``acquire`` / ``release``, what ``JournalFileBackend``'s
    ``lock_obj`` calls) as an flock on ``<journal>.writer.lock``, which the kernel lets go the
    moment its holder dies.

    Optuna's default lock is a symlink beside the journal. A worker SIGKILLed or OOM-killed during
    an append leaves it behind, and the next writer waited out Optuna's 30 s grace period before
    taking it over (a test that SIGKILLs a worker took 36 s instead of 5, 1 run in 2). The lock file
    stays: deleting one races with whoever waits on it. Every writer in this project takes this
    lock; plain Optuna writing the same journal at the same moment would take its symlink instead
    and not be kept out (local file systems only, as the journal itself).
    """

    def __init__(self, journal: str | Path):
        self.path = Path(f"{journal}.writer.lock")
        self._held: contextlib.ExitStack | None = None

    def acquire(self) -> bool:
        held = contextlib.ExitStack()
        held.enter_context(file_lock(self.path))
        self._held = held  # only once held: another thread of this process may be waiting on its own
        return True

    def release(self) -> None:
        held, self._held = self._held, None
        held.close()


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False
    return isinstance(record, dict) and "op_code" in record


def check_journal(path: str | Path, repair: bool = True) -> str | None:
    """Repair a torn tail of the journal at ``path`` in place; return a one-line note of what was
    done (None when the file is sound or absent). Raise UserError for damage before the last
    record or for a file that is not a journal, leaving it untouched. ``repair=False`` only says
    what it found (Optuna's reader skips an incomplete last record, so a reader can go on)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    if not repair:  # a reader takes no lock (it would write one beside the file): at worst it sees a live append
        return _check_locked(path, repair)
    # The writers' lock: no worker is half-way through an append while we look.
    lock = WriterLock(path)
    lock.acquire()
    try:
        return _check_locked(path, repair)
    finally:
        lock.release()


def _check_locked(path: Path, repair: bool) -> str | None:
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: bytes after the last newline
    records = [line for line in complete if line.strip()]
    good = [_is_record(line) for line in records]
    if tail == b"" and all(good):
        return None  # ends on a record boundary: nothing to repair
    if not any(good):
        raise UserError(f"{path} is not an Optuna journal (no complete record in it); point --storage at the "
                        "study's .journal file, or use another --study-name to start a new study")
    # Everything before the last record must be sound; only the last one may be cut.
    last_bad = tail != b"" or not good[-1]
    damaged = [i + 1 for i, ok in enumerate(good[:-1] if tail == b"" else good) if not ok]
    if damaged or not last_bad:
        raise UserError(f"{path}: record {damaged[0]} of {len(records) + (tail != b'')} is damaged, before the "
                        "last one, so it is not a torn write; the file was left untouched. Restore a backup, "
                        "or start a new study with another --study-name")
    # Keep up to the newline that ends the last sound record.
    keep = len(data) - len(tail) if tail != b"" else data.rstrip(b"\n").rfind(b"\n") + 1
    if not repair:
        return (f"note: {path} ends in an incomplete record ({len(data) - keep} bytes at offset {keep}), read as if "
                "it were not there; a command that adds trials repairs the file")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.torn-{stamp}.bak")
    shutil.copy2(path, backup)
    os.truncate(path, keep)
    return (f"repaired {path}: cut its incomplete last record ({len(data) - keep} bytes at offset {keep}); "
            f"every complete trial is kept; the original is saved as {backup}")
