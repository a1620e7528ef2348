"""Optuna storages: a journal file for workers on one machine, an RDB URL (with heartbeats) for
several machines.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna

from ..errors import UserError, first_line

HEARTBEAT_INTERVAL_S, GRACE_PERIOD_S = 30, 90


def default_storage(studies_dir: Path, study_name: str) -> str:
    return f"journal:{studies_dir / (study_name + '.journal')}"


def journal_path(url: str) -> Path | None:
    """The file of a journal storage URL (``journal:PATH`` or a path ending in .journal), else None."""
    if url.startswith("journal:") or url.endswith(".journal"):
        return Path(url.removeprefix("journal:"))
    return None


def make_storage(url: str, heartbeat_interval: int = HEARTBEAT_INTERVAL_S, grace_period: int = GRACE_PERIOD_S):
    """``journal:PATH`` (or a path ending in .journal), or an RDB URL with heartbeats."""
    path = journal_path(url)
    if path is not None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    from ..system.locks import database_lock

    try:
        # Several workers creating the tables of a fresh database at once collide
        # (duplicate key in pg_type): one at a time.
        with warnings.catch_warnings(), database_lock(url, "optuna-storage-tables"):
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
            return RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                              engine_kwargs={"pool_pre_ping": True})
    except Exception as exc:  # sqlalchemy: bad URL, unreachable host, wrong password, missing database
        raise UserError(f"cannot open Optuna storage {redact_url(url)}: {first_line(exc)}") from None


def redact_url(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
