"""Inter-process locks: workers on one machine (a file) or on several (PostgreSQL) take turns at
one-time setup, or divide work."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path | None, wait: bool = True, on_wait: Callable[[], object] | None = None) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if needed); ``None`` locks nothing. Yields True
    once held; with ``wait=False`` yields False at once if another process holds it. ``on_wait``
    is called (once) before waiting for another process (to say why nothing happens).

    The holder may delete ``path`` before it lets go (lock files of finished work are removed):
    a lock taken on a file that is no longer at ``path`` is let go and taken again on the one
    there now. Without that, a process that waited on the deleted file and one that opened the
    new file would both hold "the lock" (two commands registered one run's model twice).
    """
    if path is None:
        yield True
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        with open(path, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                if on_wait is not None and not waited:
                    on_wait()
                waited = True
                fcntl.flock(handle, fcntl.LOCK_EX)
            if not names(path, handle):
                continue  # closing the file lets its lock go
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return


def names(path: Path, handle) -> bool:
    """Whether ``path`` still names the open file ``handle`` (not deleted, nor replaced)."""
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(handle.fileno())
    return (at_path.st_dev, at_path.st_ino) == (opened.st_dev, opened.st_ino)


@contextlib.contextmanager
def database_lock(url: str, name: str) -> Iterator[None]:
    """A PostgreSQL advisory lock: workers on several machines take turns at one-time setup.
    Other databases lock nothing (their setup races are tolerated, not prevented)."""
    if not url.startswith("postgresql"):
        yield
        return
    import zlib

    import sqlalchemy

    key = zlib.crc32(name.encode())  # advisory locks take a bigint key
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()
