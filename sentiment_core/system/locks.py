"""An inter-process lock on a file: workers on one machine take turns at one-time setup."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def file_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed); ``None`` locks nothing."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
