"""Optuna storages: a journal file for workers on one machine, an RDB URL (with heartbeats) for
several machines.
"""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage

from ..errors import UserError, first_line
from ..system.outages import OUTAGE_WAIT_S, OutageWaiter

HEARTBEAT_INTERVAL_S, GRACE_PERIOD_S = 30, 90


def default_storage(studies_dir: Path, study_name: str) -> str:
    return f"journal:{studies_dir / (study_name + '.journal')}"


def journal_path(url: str) -> Path | None:
    """The file of a journal storage URL (``journal:PATH`` or a path ending in .journal), else None."""
    if url.startswith("journal:") or url.endswith(".journal"):
        return Path(url.removeprefix("journal:"))
    return None


def make_storage(url: str, heartbeat_interval: int = HEARTBEAT_INTERVAL_S, grace_period: int = GRACE_PERIOD_S,
                 outage_wait: float = OUTAGE_WAIT_S):
    """``journal:PATH`` (or a path ending in .journal), or an RDB URL with heartbeats whose
    calls wait up to ``outage_wait`` seconds for a database that is away (restarting, failing over)."""
    path = journal_path(url)
    if path is not None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        from .journal import WriterLock

        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=WriterLock(path)))
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from ..system.locks import database_lock

    try:
        # Several workers creating the tables of a fresh database at once collide
        # (duplicate key in pg_type): one at a time.
        with warnings.catch_warnings(), database_lock(url, "optuna-storage-tables"):
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
            return PatientRDBStorage(url, OutageWaiter(f"the study database {redact_url(url)}", outage_wait, say=_say),
                                     heartbeat_interval=heartbeat_interval, grace_period=grace_period,
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


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class PatientRDBStorage(RDBStorage):
    """Optuna's RDBStorage whose every call waits out a database that is away (``outages``).

    A call whose connection broke mid-write is made again; the writes a study makes then (a
    trial's state, an epoch's value, an attribute) set the same values again, except creating a
    trial, which could make a second one if the first reached the database just before it went.
    Past the wait, the error goes on: the trial's heartbeat then stops, and the next worker fails
    it and queues it again after the grace period."""

    def __init__(self, url: str, outages: OutageWaiter, **kwargs):
        self.outages = outages  # before RDBStorage's own setup, which already reads the database
        super().__init__(url, **kwargs)


def _waiting(name: str):
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return self.outages.call(lambda: method(self, *args, **kwargs))

    return call


for _name in ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
              "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
              "get_study_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
              "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
              "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
              "get_trial", "get_all_trials", "get_n_trials", "get_best_trial", "record_heartbeat",
              "_get_stale_trial_ids"):
    setattr(PatientRDBStorage, _name, _waiting(_name))
