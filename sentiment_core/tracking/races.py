"""Writes that two workers may make at the same moment, or that a broken connection cut, made safe
to repeat.

MLflow's SQL store checks whether some rows exist and then inserts them (a run's dataset inputs:
the experiment's dataset row, then the run's link to it; an experiment tag through
``session.merge``). Two workers doing the same write at once both find nothing and both insert:
the database keeps one row and refuses the other with a unique-key violation (PostgreSQL's
``UniqueViolation ... dataset_pk``, SQLite's ``UNIQUE constraint failed``), which reaches the
client as an ``MlflowException`` (BAD_REQUEST through a tracking server). The row the loser
wanted is then there, written by the winner with the same content (a dataset is keyed by
experiment, name and content digest), so writing again finds it and only adds what is missing.
A registered model's alias is the same: two processes setting ``best`` first both insert its row
(SQLite's ``UNIQUE constraint failed``, seen once in five full test runs); written again, it is an
update, and ``models.settle_best`` then reads which version should hold it.

Only that refusal is retried; every other error is raised at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import causes
from ..system.outages import is_connection_error

T = TypeVar("T")

# How each backend words a unique-key refusal (PostgreSQL through psycopg, SQLite, MySQL), as
# the store's message carries it to the client.
_DUPLICATE_KEY = ("uniqueviolation", "duplicate key value", "unique constraint failed", "duplicate entry")


def is_duplicate_key(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) is a database's refusal of a second identical key."""
    return any(marker in str(cause).lower() for cause in causes(error) for marker in _DUPLICATE_KEY)


def repeat_on_duplicate_key(write: Callable[[], T], attempts: int = 6, first_wait: float = 0.05) -> T:
    """``write()``, written again after a unique-key refusal (another worker wrote the same row in
    between), with a short random backoff; at most ``attempts`` times, then the refusal is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except Exception as error:  # MlflowException from most writes; the driver's own error from some
            if attempt == attempts or not is_duplicate_key(error):
                raise
            # Random, so workers that collided once do not collide again in step.
            time.sleep(first_wait * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def upload_again_if_cut(upload: Callable[[], object], attempts: int = 4, first_wait: float = 1.0) -> None:
    """An artifact upload through a tracking server, made again (the file read anew) when its
    connection broke: the server closes an idle kept-alive connection (uvicorn, after 5 s) just
    as the client reuses it, and urllib3 then retries the PUT with a file body already read,
    which the server refuses as "Invalid HTTP request received" (seen on CI: a study's report
    upload after its last trial). Uploading the same file to the same path again is harmless."""
    for attempt in range(attempts):
        try:
            upload()
            return
        except Exception as error:
            if attempt + 1 == attempts or not (is_connection_error(error)
                                               or "Invalid HTTP request received" in str(error)):
                raise
            time.sleep(first_wait * 2**attempt)
