"""Studies and tracking shared through a real PostgreSQL server and a real MLflow tracking server.

Needs a PostgreSQL server: `export SENTIMENT_POSTGRES_URL=$(bash .ci/postgres.sh)` starts one on
127.0.0.1 (CI does this). Without the variable these tests are skipped, and say why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from helpers import ENDLESS, TINY, kill_mid_trial, mlflow_server
from sentiment_core import tuning

ADMIN_URL = os.environ.get("SENTIMENT_POSTGRES_URL")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not ADMIN_URL, reason="set SENTIMENT_POSTGRES_URL=$(bash .ci/postgres.sh) to run")]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "tune_regularization.py"
# Fast heartbeats, so a dead worker's trial is stale after 10 s; the grace is 5x the interval, so a
# live worker whose heartbeat thread waits for a busy 2-core machine is not taken for dead.
SHARED = ["--epochs", "2", "--study-name", "shared", "--heartbeat-interval", "2", "--heartbeat-grace", "10"]


def create_database() -> str:
    import psycopg

    name = f"test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL.replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def tracking_server(tmp_path):
    """`mlflow server` with a PostgreSQL backend store, serving artifacts itself."""
    with mlflow_server(create_database(), tmp_path, "--serve-artifacts", "--artifacts-destination",
                       str(tmp_path / "served-artifacts"), "--workers", "2") as url:
        yield url


def tune(tmp_path, storage, tracking_uri, *args, background=False):
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), *TINY, *SHARED, "--storage", storage, "--output-dir", str(tmp_path / "out"), *args]
    if background:
        return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def _without_progress_bars(text: str) -> str:
    return "\n".join(line for line in text.replace("\r", "\n").splitlines() if "it/s" not in line)


def test_three_workers_share_a_study_and_a_tracking_server(tmp_path, tracking_server):
    storage = create_database()
    workers = [tune(tmp_path, storage, tracking_server, "--n-trials", "2", background=True) for _ in range(3)]
    outputs = [w.communicate(timeout=600) for w in workers]
    failed = [_without_progress_bars(err)[-4000:] for w, (_, err) in zip(workers, outputs) if w.returncode]
    if failed:  # pytest would cut a long assertion message short: show each failing worker's stderr whole
        pytest.fail(f"{len(failed)} worker(s) failed:\n" + "\n---\n".join(failed))
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert sum("baseline" in t.user_attrs for t in trials) == 1  # the seed setting, enqueued once
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6  # no two workers propose alike
    client = MlflowClient(tracking_server)
    parent = study.user_attrs["mlflow_parent_run_id"]
    for trial in trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags["trial_state"] == trial.state.name
        assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_acc")]
        # Artifacts went through the server (mlflow-artifacts:/), not to a shared disk path.
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        assert "history.csv" in {a.path for a in client.list_artifacts(run.info.run_id)}
    # Models as MLflow 3 LoggedModels through the server; registered, loaded back by alias.
    from sentiment_core.tracking.models import checkpoint_of, download_model, logged_model_of, register

    run_id = trials[0].user_attrs["mlflow_run_id"]
    model = logged_model_of(client, run_id)
    assert model is not None and str(model.status) == "READY" and model.source_run_id == run_id
    assert register(client, run_id, "server-check", 0.5, "split", "p") == ("1", True)
    version = client.get_model_version_by_alias("server-check", "best")
    assert version.source == f"models:/{model.model_id}"
    local = download_model("models:/server-check@best", tracking_server, tmp_path / "downloaded")
    assert (checkpoint_of(local) / "weights.pt").is_file()


def test_a_killed_worker_is_failed_by_the_next_workers_heartbeat_check(tmp_path, tracking_server):
    storage = create_database()
    worker = tune(tmp_path, storage, tracking_server, "--n-trials", "1", *ENDLESS, background=True)
    kill_mid_trial(worker, lambda: optuna.load_study(study_name="shared", storage=storage))
    study = optuna.load_study(study_name="shared", storage=storage)
    assert study.get_trials(states=(TrialState.RUNNING,)), "SIGKILL left the trial RUNNING"
    # The next command fails the trial once its heartbeat is older than the grace: try until then.
    deadline = time.time() + 180
    while True:
        again = tune(tmp_path, storage, tracking_server, "--reap-only", *ENDLESS)
        assert again.returncode == 0, again.stderr
        if "marked trial(s) [0] of dead workers as FAIL" in again.stdout:
            break
        assert "no trial of a dead worker" in again.stdout, again.stdout
        assert time.time() < deadline, "the dead worker's trial was not failed within 180 s of its last heartbeat"
        time.sleep(2)
    study = optuna.load_study(study_name="shared", storage=storage)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert study.trials[0].state == TrialState.FAIL
    retry = study.get_trials(states=(TrialState.WAITING,))  # the storage's retry, not yet run
    assert len(retry) == 1 and retry[0].system_attrs["fixed_params"] == study.trials[0].params
    assert MlflowClient(tracking_server).get_run(study.trials[0].user_attrs["mlflow_run_id"]).info.status == "FAILED"


@pytest.mark.parametrize("break_url, message", [
    (lambda url: url.replace("127.0.0.1", "127.0.0.2").rsplit(":", 1)[0] + ":1/postgres", "cannot open Optuna storage"),
    (lambda url: url.replace(":postgres@", ":wrong-password@"), "password authentication failed"),
    (lambda url: url.rsplit("/", 1)[0] + "/no_such_database", 'database "no_such_database" does not exist'),
])
def test_connection_problems_are_one_clear_line(tmp_path, break_url, message):
    with pytest.raises(Exception) as caught:
        tuning.make_storage(break_url(ADMIN_URL))
    assert message in str(caught.value) and "wrong-password" not in str(caught.value)
    proc = tune(tmp_path, break_url(ADMIN_URL), f"sqlite:///{tmp_path / 'mlflow.db'}", "--n-trials", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1]


def test_workers_logging_the_same_datasets_at_once_all_succeed(tmp_path, tracking_server):
    """The tracking server checks for a dataset, then inserts it: workers that log the same one at
    the same moment collide on its key. Each of 4 processes logs the round's datasets to a run of
    its own, all released by one barrier, 20 rounds; every run must end up with all three."""
    import multiprocessing

    from helpers import log_same_datasets

    workers, rounds = 4, 20
    experiment_id = MlflowClient(tracking_server).create_experiment("race")
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as real workers are
    start, results = spawn.Barrier(workers), spawn.Queue()
    processes = [spawn.Process(target=log_same_datasets, args=(tracking_server, experiment_id, rounds, start, results))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    try:
        failures = [failure for _ in processes for failure in results.get(timeout=300)]
    finally:
        for process in processes:
            process.join(timeout=60)
            process.kill()
    assert not failures, f"{len(failures)} of {workers * rounds} dataset logs failed:\n" + "\n".join(failures[:10])
    client = MlflowClient(tracking_server)
    runs = client.search_runs([experiment_id], max_results=1000)
    assert len(runs) == workers * rounds
    assert all(len(run.inputs.dataset_inputs) == 3 for run in runs)
    # One dataset row per round and split, shared by the runs that logged it.
    assert len({(d.dataset.name, d.dataset.digest) for run in runs for d in run.inputs.dataset_inputs}) == 3 * rounds
