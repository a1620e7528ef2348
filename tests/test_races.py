"""Writes that another worker may have made first are repeated; anything else fails at once.
(The real race, 4 processes on a tracking server over PostgreSQL: tests/test_postgres.py.)"""

from __future__ import annotations

import os
import threading

import pytest
from mlflow.exceptions import MlflowException

from sentiment_core.system.folders import private_folder
from sentiment_core.system.locks import file_lock
from sentiment_core.tracking.races import is_duplicate_key, repeat_on_duplicate_key, upload_again_if_cut

POSTGRES = ('BAD_REQUEST: (psycopg.errors.UniqueViolation) duplicate key value violates unique constraint '
            '"dataset_pk"\nDETAIL:  Key (experiment_id, name, digest)=(1, embedded-train, 4be5) already exists.')
SQLITE = "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest"


def writes_failing(times: int, message: str):
    calls = []

    def write():
        calls.append(1)
        if len(calls) <= times:
            raise MlflowException(message)
        return "written"

    return write, calls


@pytest.mark.parametrize("message", [POSTGRES, SQLITE])
def test_a_duplicate_key_refusal_is_written_again(message):
    write, calls = writes_failing(2, message)
    assert repeat_on_duplicate_key(write, first_wait=0) == "written" and len(calls) == 3


def test_other_errors_fail_at_once_and_a_lasting_refusal_is_raised():
    write, calls = writes_failing(5, "RESOURCE_DOES_NOT_EXIST: Run 'abc' not found")
    with pytest.raises(MlflowException, match="not found"):
        repeat_on_duplicate_key(write, first_wait=0)
    assert len(calls) == 1
    write, calls = writes_failing(10, POSTGRES)
    with pytest.raises(MlflowException, match="dataset_pk"):
        repeat_on_duplicate_key(write, attempts=4, first_wait=0)
    assert len(calls) == 4


def test_a_wrapped_refusal_is_recognised():
    try:
        try:
            raise RuntimeError(SQLITE)
        except RuntimeError as inner:
            raise MlflowException("INTERNAL_ERROR: could not log inputs") from inner
    except MlflowException as outer:
        assert is_duplicate_key(outer)
    assert not is_duplicate_key(MlflowException("FOREIGN KEY constraint failed"))


def test_an_upload_cut_by_a_reused_connection_is_made_again():
    # What MLflow raised on CI when urllib3 retried a PUT whose file body it had already read.
    cut = "400 Client Error: Bad Request for url: http://127.0.0.1:1/api/2.0/mlflow-artifacts/artifacts/x.png. " \
          "Response text: Invalid HTTP request received."
    upload, calls = writes_failing(2, cut)
    upload_again_if_cut(upload, first_wait=0)
    assert len(calls) == 3
    upload, calls = writes_failing(1, "PERMISSION_DENIED: Permission denied")
    with pytest.raises(MlflowException, match="Permission denied"):
        upload_again_if_cut(upload, first_wait=0)
    assert len(calls) == 1


def test_the_drivers_own_refusal_is_written_again_too():
    # Some MLflow writes let SQLAlchemy's or the driver's error through unwrapped (two processes
    # setting a registered model's alias first at once, seen in a full test run): a real one here.
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE aliases (name TEXT, alias TEXT, version INTEGER, PRIMARY KEY (name, alias))")
    db.execute("INSERT INTO aliases VALUES ('sentiment-imdb-lstm', 'best', 1)")  # the other process won
    tries = []

    def set_alias():  # what the store does on a second try: the row is there now, so update it
        tries.append(1)
        verb = "INSERT" if len(tries) == 1 else "REPLACE"
        db.execute(f"{verb} INTO aliases VALUES ('sentiment-imdb-lstm', 'best', 2)")

    repeat_on_duplicate_key(set_alias, first_wait=0)
    assert len(tries) == 2 and db.execute("SELECT version FROM aliases").fetchall() == [(2,)]


def test_a_report_folder_shared_by_commands_only_ever_holds_whole_files(tmp_path):
    """Each command writes its report apart and moves it in by renames: an upload that opened a
    file keeps reading the whole of it, as long as its size said, while another command publishes
    its own version; a command that fails publishes nothing; no private folder is left."""
    out = tmp_path / "study-x"
    with private_folder(out) as first:
        (first / "report.md").write_text("first " * 1000)
    uploading = open(out / "report.md", "rb")  # what MLflow's upload does: fstat's size, then read
    size = os.fstat(uploading.fileno()).st_size
    with private_folder(out) as second:
        (second / "report.md").write_text("second")
        (second / "trials.csv").write_text("number\n0\n")
    assert len(uploading.read()) == size == 6000
    uploading.close()
    with pytest.raises(KeyboardInterrupt), private_folder(out) as third:
        (third / "report.md").write_text("cut short")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study-x"]
    assert (out / "report.md").read_text() == "second" and (out / "trials.csv").exists()


def test_a_lock_whose_holder_deleted_its_file_is_taken_on_the_file_at_the_path(tmp_path):
    # Retrain claims: the holder deletes its lock file before it lets go. A process that opened the
    # deleted file and waited on it, and one that opened the new file, both held "the lock": two
    # commands registered one run's model twice, 49 ms apart (three test processes on two cores).
    # flock belongs to an open file, so two threads that open the path contend as two processes do.
    path = tmp_path / "claim.lock"
    waiting, held, leave = threading.Event(), threading.Event(), threading.Event()

    def second():
        with file_lock(path, on_wait=waiting.set):
            held.set()
            leave.wait(60)

    thread = threading.Thread(target=second)
    try:
        with file_lock(path):
            thread.start()
            assert waiting.wait(60), "the second never waited"  # it opened this file and waits on it
            path.unlink()
        assert held.wait(60), "the second never took the lock"
        with file_lock(path, wait=False) as third:
            assert not third, "a third took the lock while the second held it"
    finally:
        leave.set()
        thread.join(60)
