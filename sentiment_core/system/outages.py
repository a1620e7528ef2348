"""A server that is away for a while (a redeployed tracking server, a database failing over or
restarting) is waited for, for a bounded time, and said so in one line when the wait starts and
one when it ends; past the bound the error goes on as it came."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import causes, first_line, root_cause

T = TypeVar("T")
OUTAGE_WAIT_S = 300
# The drivers' and SQLAlchemy's words for "no connection" (by name: neither is needed to import this).
_CONNECTION_ERRORS = {"sqlalchemy.exc.OperationalError", "sqlalchemy.exc.InterfaceError",
                      "sqlalchemy.exc.DisconnectionError", "psycopg.OperationalError", "psycopg.InterfaceError"}


def is_connection_error(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it wraps) says the server could not be reached or dropped the
    connection, as opposed to a refusal of what was asked (a unique key, a bad value)."""
    return any(f"{type(cause).__module__}.{type(cause).__name__}" in _CONNECTION_ERRORS
               or isinstance(cause, ConnectionError) or getattr(cause, "connection_invalidated", False)
               for cause in causes(error))


class OutageWaiter:
    """Calls that retry, with backoff, while ``what`` is unreachable, for up to ``patience_s``
    seconds counted from the start of the outage (shared by every thread of the process)."""

    def __init__(self, what: str, patience_s: float = OUTAGE_WAIT_S, say: Callable[[str], object] = print,
                 first_delay: float = 0.5, max_delay: float = 10.0):
        self.what, self.patience_s, self.say = what, patience_s, say
        self.first_delay, self.max_delay = first_delay, max_delay
        self._since: float | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # a copy in another process waits on its own
        return {**self.__dict__, "_since": None, "_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def call(self, operation: Callable[[], T]) -> T:
        delay = self.first_delay
        while True:
            try:
                result = operation()
            except Exception as error:
                if not is_connection_error(error):
                    raise
                now = time.monotonic()
                with self._lock:
                    if self._since is None:
                        self._since = now
                        self.say(f"{self.what} is unreachable ({first_line(root_cause(error))}): retrying for up to "
                                 f"{self.patience_s:.0f} s")
                    waited = now - self._since
                if waited >= self.patience_s:
                    raise
                time.sleep(min(delay, self.patience_s - waited))
                delay = min(delay * 2, self.max_delay)
                continue
            if self._since is not None:
                with self._lock:
                    if self._since is not None:
                        self.say(f"{self.what} answered again after {time.monotonic() - self._since:.0f} s: going on")
                        self._since = None
            return result
