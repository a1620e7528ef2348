"""What survives a crash: torn study journals and runs of processes killed with SIGKILL."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.engine import Engine

from helpers import TINY, store, tune
from sentiment_core.errors import UserError
from sentiment_core.tracking.runs import KILLED_REASON_TAG, RunTracker, monitor_system, reap_dead_runs, store_engine
from sentiment_core.tracking.store import open_experiment
from sentiment_core.tracking.tracked_run import run_training
from sentiment_core.tuning.journal import check_journal
from sentiment_core.tuning.storage import make_storage

REPO = Path(__file__).resolve().parents[1]
COMPARE = REPO / "experiments" / "compare_rnn_lstm.py"


def _journal(path: Path, trials: int = 3) -> Path:
    """A real journal of a small study (no training: the objective is a formula)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="j", storage=JournalStorage(JournalFileBackend(str(path))))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=trials)
    return path


def _complete(path: Path) -> list[tuple[int, dict]]:
    study = optuna.load_study(study_name="j", storage=JournalStorage(JournalFileBackend(str(path))))
    return [(t.number, t.params) for t in study.get_trials(states=(TrialState.COMPLETE,))]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_torn_last_record_is_cut_after_a_backup(tmp_path):
    path = _journal(tmp_path / "s.journal")
    data = path.read_bytes()
    path.write_bytes(data[:-25])
    note = check_journal(path)
    backups = list(tmp_path.glob("s.journal.torn-*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == data[:-25]
    assert "repaired" in note and str(backups[0]) in note and "\n" not in note
    # What is left ends on the newline of the last complete record, and Optuna appends to it cleanly.
    assert data.startswith(path.read_bytes()) and path.read_bytes().endswith(b"\n")
    assert len(path.read_bytes().splitlines()) == len(data.splitlines()) - 1
    study = optuna.load_study(study_name="j", storage=JournalStorage(JournalFileBackend(str(path))))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(_complete(path)) >= 3


def test_a_journal_cut_at_a_record_boundary_needs_nothing(tmp_path):
    path = _journal(tmp_path / "s.journal")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    before = _digest(path)
    assert check_journal(path) is None
    assert _digest(path) == before and not list(tmp_path.glob("*.bak"))


def test_damage_before_the_last_record_is_refused_and_untouched(tmp_path):
    path = _journal(tmp_path / "s.journal")
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + b"\n"  # a record cut in the middle of the file
    path.write_bytes(b"".join(lines))
    before = _digest(path)
    with pytest.raises(UserError, match="record 3 of .* is damaged") as error:
        check_journal(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert _digest(path) == before and not list(tmp_path.glob("*.bak"))


def test_a_file_that_is_not_a_journal_is_refused(tmp_path):
    path = tmp_path / "notes.journal"
    path.write_text("my notes about the study\n")
    with pytest.raises(UserError, match="not an Optuna journal"):
        check_journal(path)
    assert path.read_text() == "my notes about the study\n"


def _cut_at_the_last_trial_end(journal: Path) -> int:
    """Tear the journal inside the record that finished its last trial (and drop what followed), as
    if the process died writing it; returns that trial's id."""
    lines = journal.read_bytes().split(b"\n")
    ends = [i for i, line in enumerate(lines) if line.strip() and (r := json.loads(line))["op_code"] == 6
            and r["state"] in (1, 2)]  # SET_TRIAL_STATE_VALUES to COMPLETE or PRUNED
    last = ends[-1]
    journal.write_bytes(b"\n".join(lines[:last]) + b"\n" + lines[last][: len(lines[last]) // 2])
    return json.loads(lines[last])["trial_id"]


HOLD_THE_WRITER_LOCK = """
import sys, time
from sentiment_core.tuning.journal import WriterLock
lock = WriterLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.processes
def test_a_journal_writer_killed_holding_its_lock_holds_up_no_one(tmp_path):
    # A worker SIGKILLed during an append left Optuna's own lock (a symlink) behind, and the next
    # writer waited out its 30 s grace period. The kernel lets the writers' flock go with its holder.
    journal = tmp_path / "s.journal"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_WRITER_LOCK, str(journal)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    writer = threading.Thread(target=lambda: optuna.create_study(study_name="s", storage=make_storage(f"journal:{journal}")))
    try:
        assert holder.stdout.readline().strip() == "held"
        writer.start()
        writer.join(1.0)
        assert writer.is_alive(), "the study was written while another process held the writers' lock"
        holder.kill()
        holder.wait(60)
        writer.join(20)  # within Optuna's 30 s grace period: a lock left behind would still hold it
        assert not writer.is_alive(), "the lock of a dead process still held up the writer"
    finally:
        holder.kill()
        writer.join(60)
    assert optuna.load_study(study_name="s", storage=make_storage(f"journal:{journal}")) is not None


@pytest.mark.processes
def test_the_tuning_command_repairs_a_torn_journal_and_resumes(tmp_path, run_inprocess):
    # Its own process: the one that "died" writing the record must be gone for the next command.
    first = tune(tmp_path, "--n-trials", "3")
    assert first.returncode == 0, first.stderr
    journal = tmp_path / "study.journal"
    cut_trial = _cut_at_the_last_trial_end(journal)  # the last write was cut short
    storage = lambda: JournalStorage(JournalFileBackend(str(journal)))  # noqa: E731
    kept = {t.number: t.params for t in optuna.load_study(study_name="s", storage=storage()).get_trials(
        states=(TrialState.COMPLETE, TrialState.PRUNED))}
    assert len(kept) >= 2

    second = tune(tmp_path, "--n-trials", "2", runner=run_inprocess)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    repairs = [line for line in second.stdout.splitlines() if line.startswith("repaired")]
    assert len(repairs) == 1 and ".torn-" in repairs[0] and "saved as" in repairs[0]
    assert len(list(tmp_path.glob("study.journal.torn-*.bak"))) == 1
    trials = optuna.load_study(study_name="s", storage=storage()).get_trials()
    finished = {t.number: t.params for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert all(finished.get(number) == params for number, params in kept.items())  # every earlier trial kept
    assert len(finished) >= len(kept) + 2 and not [t for t in trials if t.state == TrialState.RUNNING]
    # The trial whose last record (its finish) was cut looked like a dead worker's: FAIL, retried once.
    cut = [t for t in trials if t.state == TrialState.FAIL]
    assert [t._trial_id for t in cut] == [cut_trial] and cut[0].number not in kept
    retries = [t for t in trials if t.user_attrs.get("retried_from_trial") == cut[0].number]
    assert len(retries) == 1 and retries[0].params == cut[0].params
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)


def _runs(uri):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rnn-vs-lstm")
    return client, client.search_runs([experiment.experiment_id])


def sigkill_when(victim: subprocess.Popen, ready, what: str, timeout: float = 240) -> None:
    """SIGKILL ``victim`` as soon as ``ready()``; fail loudly if it exits first or the moment never comes."""
    try:
        deadline = time.time() + timeout
        while not ready():
            assert victim.poll() is None, victim.communicate()[1][-2000:]
            assert time.time() < deadline, f"not in time: {what}"
            time.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
    finally:
        victim.kill()


def test_a_signal_that_surfaces_as_a_writes_error_still_ends_the_run_killed(tmp_path):
    # SIGTERM landing inside a store write: the write's own error (raised while handling the
    # KeyboardInterrupt) reaches the run's end. Seen on a loaded machine: a worker's run ended
    # FAILED where its sibling's ended KILLED. Callers get the interruption, not the error (a
    # commit cut off raises AssertionError, which MLflow wraps; the command exited 1, not 130).
    client, experiment_id = open_experiment(store(tmp_path), "signals")
    cut, broken = RunTracker.create(client, experiment_id, "cut"), RunTracker.create(client, experiment_id, "broken")
    with pytest.raises(KeyboardInterrupt) as raised, cut.terminating():
        try:
            raise KeyboardInterrupt("signal 15")
        except KeyboardInterrupt:
            try:  # as a library would, mid-handling: SQLAlchemy's assertion, then MLflow's wrapper
                raise AssertionError()  # noqa: B904
            except AssertionError as error:
                raise MlflowException("This transaction is closed") from error
    assert raised.value.args == ("signal 15",) and isinstance(raised.value.__cause__, MlflowException)
    with pytest.raises(RuntimeError), broken.terminating():
        raise RuntimeError("a bug")
    assert [client.get_run(r.run_id).info.status for r in (cut, broken)] == ["KILLED", "FAILED"]


def test_after_an_interruption_the_pools_cleanup_errors_stay_off_the_console(tmp_path, caplog):
    # A cursor whose read the signal cut off fails to close; SQLAlchemy's pool logged that with a
    # traceback under "interrupted: ..." (seen once in five full runs).
    client, experiment_id = open_experiment(store(tmp_path), "signals")
    with pytest.raises(KeyboardInterrupt), RunTracker.create(client, experiment_id, "cut").terminating():
        raise KeyboardInterrupt("signal 15")
    caplog.clear()
    sqlalchemy.create_engine("sqlite://").pool.logger.error("Error closing cursor")
    assert "Error closing cursor" not in caplog.text


def test_a_read_cut_off_by_an_interruption_closes_its_cursor_without_a_word(tmp_path, caplog):
    # A signal landing inside a read: SQLAlchemy invalidates the connection, then fails to close the
    # cursor and logs that with a traceback, before the command's own handling runs (one full test
    # run in two printed it above "interrupted: ...").
    client, experiment_id = open_experiment(store(tmp_path), "signals")
    engine = store_engine(client)

    def cut_off_read(interrupted: bool) -> None:
        with engine.connect() as conn:
            cursor = conn.exec_driver_sql("SELECT 1").cursor
            conn.connection.dbapi_connection.close()  # what SQLAlchemy's invalidation does first
            try:
                raise KeyboardInterrupt("signal 15") if interrupted else OSError("disk gone")
            except BaseException:
                conn._safe_close_cursor(cursor)  # SQLAlchemy's own clean-up: it logs "Error closing cursor"
            conn.invalidate()

    parent = logging.getLogger("sqlalchemy.pool")
    level = parent.level
    parent.setLevel(logging.NOTSET)  # an earlier test in this process may have quieted it after its interruption
    try:
        with pytest.raises(KeyboardInterrupt), RunTracker.create(client, experiment_id, "reading").terminating():
            caplog.clear()
            cut_off_read(interrupted=True)
            assert "Error closing cursor" not in caplog.text
            cut_off_read(interrupted=False)  # an error of its own is still reported
            assert "Error closing cursor" in caplog.text
            raise KeyboardInterrupt("signal 15")
    finally:
        parent.setLevel(level)


def test_only_runs_of_processes_gone_from_this_host_are_reaped(tmp_path):
    client, experiment_id = open_experiment(store(tmp_path), "reap")
    alive = RunTracker.create(client, experiment_id, "mine, alive")
    dead = RunTracker.create(client, experiment_id, "dead", tags={"process_pid": str(2**22 + 4321)})
    reused = RunTracker.create(client, experiment_id, "pid reused", tags={"process_start": "0"})
    remote = RunTracker.create(client, experiment_id, "other host", tags={"process_host": "another-machine",
                                                                          "process_pid": str(2**22 + 4321)})
    unowned = client.create_run(experiment_id, run_name="no owner").info.run_id
    assert sorted(reap_dead_runs(client, experiment_id)) == sorted([dead.run_id, reused.run_id])
    status = {run_id: client.get_run(run_id).info.status
              for run_id in (alive.run_id, dead.run_id, reused.run_id, remote.run_id, unowned)}
    assert status == {alive.run_id: "RUNNING", dead.run_id: "KILLED", reused.run_id: "KILLED",
                      remote.run_id: "RUNNING", unowned: "RUNNING"}
    assert reap_dead_runs(client, experiment_id) == []  # nothing twice


@pytest.mark.processes
def test_a_sigkilled_comparison_run_again_ends_its_runs_killed_replays_the_finished_and_resumes_the_cut(
        tmp_path, run_inprocess):
    uri = store(tmp_path)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [sys.executable, str(COMPARE), *TINY, "--epochs", "12", "--models", "rnn,lstm", "--no-baseline",
               "--register"]
    states = tmp_path / "cache" / "sentiment_core" / "interrupted-runs"
    victim = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    # The RNN finished (its state kept), the LSTM mid-way.
    sigkill_when(victim, lambda: len(list(states.glob("*.pt"))) >= 2, "two training states were saved")
    client, runs = _runs(uri)
    cut = {r.info.run_id: len(client.get_metric_history(r.info.run_id, "valid_acc"))
           for r in runs if r.info.status == "RUNNING"}  # what SIGKILL leaves behind: the parent, the LSTM
    assert len(cut) == 2, [(r.info.run_name, r.info.status) for r in runs]

    # The next command in this process: the kill is the victim's; what follows is about the store.
    again = run_inprocess(COMPARE, command[2:], {"MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": tmp_path / "cache"},
                          cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    # The next command on the store ends the dead command's runs KILLED first, their epochs intact.
    assert "ended 2 run(s)" in again.stdout
    for run_id, epochs in cut.items():
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and f"pid {victim.pid}" in run.data.tags[KILLED_REASON_TAG]
        assert len(client.get_metric_history(run_id, "valid_acc")) == epochs
    assert "rnn seed 1234: resuming after epoch 12 of 12" in again.stdout, "the finished RNN is replayed, not retrained"
    found = re.search(r"lstm seed 1234: resuming after epoch (\d+) of 12", again.stdout)
    assert found, again.stdout[-3000:]
    restored = int(found.group(1))
    assert 1 <= restored < 12
    client, runs = _runs(uri)
    parent = next(r for r in runs if r.info.status == "FINISHED" and r.data.tags.get("kind") == "comparison")
    children = {r.data.tags["arm"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert {arm: run.data.tags["resumed_epochs"] for arm, run in children.items()} == {"rnn": "12", "lstm": str(restored)}
    for run in children.values():
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_acc")] == list(range(1, 13))
    assert not list(states.glob("*.pt")), "a finished comparison keeps no state: the same command trains anew"
    # The replayed RNN is the cut-off command's finished run again: its model is not registered twice.
    versions = {(v.name, v.run_id) for v in client.search_model_versions()}
    first_rnn = next(r for r in runs if r.data.tags.get("arm") == "rnn" and r.info.run_id != children["rnn"].info.run_id)
    assert versions == {("sentiment-imdb-rnn", first_rnn.info.run_id), ("sentiment-imdb-lstm", children["lstm"].info.run_id)}
    assert children["rnn"].data.tags["registered_model"] == first_rnn.data.tags["registered_model"] == "sentiment-imdb-rnn/1"
    assert "rnn seed 1234: replayed from the run a cut-off command had finished" in again.stdout


def test_a_store_write_cut_off_by_ctrl_c_leaves_no_lock_and_the_run_ends_killed(tmp_path):
    # Ctrl-C (or SIGTERM) landing inside a SQLite write, after its statement and before its
    # commit: SQLAlchemy drops that connection without a rollback, and the write lock it holds
    # would refuse every later write ("database is locked" after MLflow's 20 s busy timeout).
    client, experiment_id = open_experiment(store(tmp_path), "cut-off")
    tracker = RunTracker.create(client, experiment_id, run_name="r")
    cut = []

    def cut_off(connection):
        if not cut:
            cut.append(connection)
            raise KeyboardInterrupt

    sqlalchemy.event.listen(Engine, "commit", cut_off)
    try:
        with pytest.raises(KeyboardInterrupt), tracker.terminating():
            client.log_metric(tracker.run_id, "valid_acc", 0.5, step=1)
    finally:
        sqlalchemy.event.remove(Engine, "commit", cut_off)
    assert cut, "the write was not cut off"
    assert client.get_run(tracker.run_id).info.status == "KILLED"
    with sqlite3.connect(tmp_path / "mlflow.db", timeout=0.1) as other:  # no lock left behind
        other.execute("BEGIN IMMEDIATE")
        other.rollback()


def test_a_read_left_unfinished_does_not_hold_up_the_killed_status(tmp_path):
    # What an interruption can leave behind: a cursor with rows still to read, kept alive by the
    # interrupted frames (benchmarks/interrupt_anywhere.py). In SQLite's rollback journal it blocks
    # every commit, and the KILLED status waited out MLflow's 20 s busy timeout, then was refused
    # (CI: both runs left RUNNING). The store is in WAL mode, where readers never block writers.
    client, experiment_id = open_experiment(store(tmp_path), "unfinished-read")
    tracker = RunTracker.create(client, experiment_id, run_name="r")
    reader = sqlite3.connect(tmp_path / "mlflow.db")
    try:
        rows = reader.execute("SELECT name FROM sqlite_master")
        rows.fetchone()  # more rows to come: the read stays open
        started = time.monotonic()
        tracker.end("KILLED")
        seconds = time.monotonic() - started
    finally:
        reader.close()
    assert client.get_run(tracker.run_id).info.status == "KILLED"
    assert seconds < 10, f"the write waited {seconds:.0f} s on the open read"


def _until_thread_runs(thread_name: str, function: str, timeout: float = 60) -> None:
    """Until the thread ``thread_name`` is inside ``function`` (its frames say so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = sys._current_frames()
        for thread in threading.enumerate():
            frame = frames.get(thread.ident) if thread.name == thread_name else None
            while frame is not None:
                if frame.f_code.co_name == function:
                    return
                frame = frame.f_back
        time.sleep(0.01)
    raise AssertionError(f"no thread {thread_name} ran {function} within {timeout:.0f} s")


# Integration tier: it waits out MLflow's 20 s busy timeout once, idle.
@pytest.mark.integration
def test_an_interrupted_runs_system_metrics_give_way_to_a_locked_store_without_a_word(tmp_path, monkeypatch, caplog):
    # CI: SIGTERM while another process locked the store. The samples that the monitor's thread
    # could not write were written again on the way out: a second 20 s wait, MLflow's traceback
    # and an ERROR line before the KILLED status. Now they are dropped, and nothing is said.
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    client, experiment_id = open_experiment(store(tmp_path), "locked-monitor")
    tracker = RunTracker.create(client, experiment_id, run_name="r")
    mlflow_logger = logging.getLogger("mlflow")  # it does not propagate to the root, where caplog listens
    mlflow_logger.addHandler(caplog.handler)
    lock = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(KeyboardInterrupt), monitor_system(tracker):
            _until_thread_runs("SystemMetricsMonitor", "log_batch")  # its first sample waits on the lock
            raise KeyboardInterrupt
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        mlflow_logger.removeHandler(caplog.handler)
    loud = [f"{r.name} {r.levelname}: {r.getMessage()[:200]}" for r in caplog.records
            if r.name.startswith("mlflow") and r.levelno >= logging.WARNING]
    assert loud == []
    assert not [key for key in client.get_run(tracker.run_id).data.metrics if key.startswith("system/")]


LOST_AND_DISGUISED = """
import json, signal, sys, time
from mlflow.exceptions import MlflowException
from sentiment_core.cli import run_main
from sentiment_core.system.workers import _spawned, raise_keyboard_interrupt, stop_once

class Collected:  # a signal whose handler runs in a __del__ or a GC callback: Python drops what it raises
    def __init__(self, handler):
        self.handler = handler
    def __del__(self):
        self.handler(signal.SIGTERM, None)

def trains_on(handler):
    def main():
        Collected(handler)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # without the interruption, 30 s of "training", then exit 0
            pass
    return main

def disguised():
    try:
        raise KeyboardInterrupt("signal 15")
    except KeyboardInterrupt:
        try:
            raise AssertionError()
        except AssertionError as error:
            raise MlflowException("This transaction is closed") from error

def code(call):
    try:
        call()
    except SystemExit as stopped:
        return stopped.code
    return "returned"

codes = [code(lambda: run_main(trains_on(raise_keyboard_interrupt))), code(lambda: run_main(disguised)),
         code(lambda: _spawned(trains_on(stop_once), (), 1))]  # last: a worker ignores signals after its first
print(json.dumps(codes))
"""


@pytest.mark.processes
def test_an_interruption_python_drops_or_a_library_disguises_still_stops_the_command():
    proc = subprocess.run([sys.executable, "-c", LOST_AND_DISGUISED], cwd=REPO, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # A command, a disguised interruption, a study's worker process: each exits 130, quietly.
    assert json.loads(proc.stdout.splitlines()[-1]) == [130, 130, 130], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_a_run_cut_off_after_its_last_epoch_replays_it_instead_of_training_again(tiny_config, tiny_corpus, tmp_path):
    client, experiment_id = open_experiment(store(tmp_path), "after-the-last-epoch")
    config, state = tiny_config.replace(epochs=2, precision="fp32"), tmp_path / "state"

    def run(name):
        return run_training(RunTracker.create(client, experiment_id, run_name=name), config, tiny_corpus,
                            repo_root=REPO, data_source="test", progress=False, system_metrics=False,
                            resume_dir=state)

    def cut_off(connection, cursor, statement, parameters, *rest):  # Ctrl-C while the outcome is logged
        if "training_status" in str(parameters):
            raise KeyboardInterrupt

    sqlalchemy.event.listen(Engine, "after_cursor_execute", cut_off)
    try:
        with pytest.raises(KeyboardInterrupt):
            run("cut off")
    finally:
        sqlalchemy.event.remove(Engine, "after_cursor_execute", cut_off)
    assert len(list(state.glob("*.pt"))) == 1
    again = run("again")
    assert again.result.resumed_epochs == 2 and len(again.result.history) == 2
    assert list(state.iterdir()) == [], "a logged run leaves neither state nor lock"
