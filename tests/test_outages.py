"""A server away for a while is waited for, said once when the wait starts and once when it ends;
past the bound, or for an error that is not about the connection, the error goes on at once.
(Real outages, a tracking server stopped and PostgreSQL stopped mid-study: tests/test_postgres.py.)"""

from __future__ import annotations

import pytest
import sqlalchemy.exc

from sentiment_core.system.outages import OutageWaiter, is_connection_error


def failing(times: int, error: Exception):
    calls = []

    def operation():
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return operation, calls


def test_an_outage_is_waited_for_and_told_in_two_lines():
    said = []
    waiter = OutageWaiter("the study database", patience_s=5, say=said.append, first_delay=0.01)
    operation, calls = failing(3, ConnectionRefusedError("connection refused"))
    assert waiter.call(operation) == "done" and len(calls) == 4
    assert len(said) == 2
    assert said[0].startswith("the study database is unreachable (connection refused): retrying for up to 5 s")
    assert said[1].startswith("the study database answered again after") and said[1].endswith("going on")
    assert waiter.call(lambda: 1) == 1 and len(said) == 2  # nothing more to say while it answers


def test_past_the_bound_the_error_goes_on():
    waiter = OutageWaiter("db", patience_s=0.05, say=lambda line: None, first_delay=0.01)
    operation, calls = failing(10_000, ConnectionResetError("reset"))
    with pytest.raises(ConnectionResetError):
        waiter.call(operation)
    assert 2 <= len(calls) < 100


def test_other_errors_are_not_waited_for():
    waiter = OutageWaiter("db", patience_s=60, say=lambda line: None)
    operation, calls = failing(1, ValueError("duplicate key value violates unique constraint"))
    with pytest.raises(ValueError):
        waiter.call(operation)
    assert len(calls) == 1


def test_what_counts_as_a_connection_error():
    dropped = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    assert is_connection_error(dropped)
    try:
        try:
            raise dropped
        except sqlalchemy.exc.OperationalError as inner:
            raise RuntimeError("An exception is raised during the commit.") from inner  # Optuna's wrapper
    except RuntimeError as wrapped:
        assert is_connection_error(wrapped)
    refused = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert not is_connection_error(refused) and not is_connection_error(ValueError("bad value"))
