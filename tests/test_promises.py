"""What the README promises and no other test checked: each on tiny real data, real stores."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from helpers import COMPARE, ENDLESS, REPO, TINY, kill_mid_trial, load_study, read_until, store, tune
from sentiment_core.tracking.models import should_register
from sentiment_core.tracking.runs import RunTracker
from sentiment_core.tracking.store import open_experiment
from sentiment_core.tracking.tracked_run import run_training
from sentiment_core.training.runtime import cpu_has_native_bf16
from sentiment_core.tuning.retraining import keep_run, stored_run
from sentiment_core.tuning.rungs import REFERENCE_ATTR

PRESETS_SCRIPT = REPO / "experiments" / "compare_presets.py"


@pytest.mark.processes
def test_reap_only_ends_the_runs_of_a_dead_process(tmp_path, run_inprocess):
    uri = store(tmp_path)
    # A process that opens a run and dies without ending it.
    code = ("import sys\nsys.path.insert(0, sys.argv[2])\n"
            "from sentiment_core.tracking import RunTracker, open_experiment\n"
            "client, experiment_id = open_experiment(sys.argv[1], 'rnn-vs-lstm')\n"
            "print(RunTracker.create(client, experiment_id, run_name='orphan').run_id)\n")
    run_id = subprocess.run([sys.executable, "-c", code, uri, str(REPO)], capture_output=True, text=True,
                            check=True).stdout.strip()
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "RUNNING"
    proc = run_inprocess(COMPARE, ["--reap-only"], {"MLFLOW_TRACKING_URI": uri}, cwd=tmp_path)
    assert proc.returncode == 0 and "ended 1 run(s) of dead processes as KILLED" in proc.stdout
    assert client.get_run(run_id).info.status == "KILLED"
    assert "killed_reason" in client.get_run(run_id).data.tags


def test_compare_presets_trains_each_recipe_paired_by_seed(tmp_path, run_inprocess):
    uri = store(tmp_path)
    proc = run_inprocess(PRESETS_SCRIPT, [*TINY, "--epochs", "1", "--presets", "default,previous-default", "--seeds",
                                          "1,2", "--no-baseline", "--output-dir", tmp_path / "out"],
                         {"MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": tmp_path / "cache"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("rnn-vs-lstm").experiment_id])
    children = sorted((r.data.tags.get("arm"), r.data.params.get("seed"), r.data.params.get("output_dropout"))
                      for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert children == [("default", "1", "0.0"), ("default", "2", "0.0"),
                        ("previous-default", "1", "0.6"), ("previous-default", "2", "0.6")]
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["kind"] == "preset-comparison"
    assert "| default" in proc.stdout and "| previous-default" in proc.stdout
    assert "PREVIOUS-DEFAULT - DEFAULT: no paired interval from 2 seed(s); --seeds with 3 or more adds one" in proc.stdout


def test_registering_follows_the_flags():
    assert should_register(None, None) and not should_register(None, 200)  # smoke runs: only when asked
    assert should_register(True, 200) and not should_register(False, None)


def test_no_register_keeps_the_registry_empty(tmp_path, run_inprocess):
    uri = store(tmp_path)
    proc = run_inprocess(COMPARE, [*TINY, "--epochs", "1", "--models", "rnn", "--no-baseline", "--register",
                                   "--no-register", "--output-dir", tmp_path / "out"],
                         {"MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": tmp_path / "cache"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not MlflowClient(uri).search_registered_models()
    assert "models not registered (--no-register" in proc.stdout


def test_a_kept_retrain_is_read_back_only_for_its_own_recipe(tiny_config, tiny_corpus, tmp_path):
    study = optuna.create_study(direction="maximize")
    client, experiment_id = open_experiment(store(tmp_path), "kept")
    config = tiny_config.replace(epochs=1, device="cpu", precision="fp32", sequence_path="padded")
    run = run_training(RunTracker.create(client, experiment_id, run_name="r"), config, tiny_corpus, repo_root=REPO,
                       data_source="test", progress=False, system_metrics=False)
    keep_run(study, "tuned", config, run)
    assert stored_run(study, "tuned", config).run_id == run.run_id
    assert stored_run(study, "tuned", config.replace(device="auto", precision="auto")) is not None  # where it ran
    assert stored_run(study, "tuned", config.replace(lr=1e-2)) is None  # another recipe
    assert stored_run(study, "tuned", config.replace(seed=7)) is None  # another seed
    assert stored_run(study, "seed config", config) is None  # another configuration
    # A recipe kept before a knob existed matches that knob's default, not any value.
    key = next(k for k in study.user_attrs if k.startswith("retrain:"))
    kept = dict(study.user_attrs[key])
    kept["recipe"] = {k: v for k, v in kept["recipe"].items() if k != "word_dropout"}
    study.set_user_attr(key, kept)
    assert stored_run(study, "tuned", config) is not None
    assert stored_run(study, "tuned", config.replace(word_dropout=0.1)) is None


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no bf16 LSTM kernels (AVX512-BF16 or AMX)")
def test_bf16_trains_like_fp32(tiny_config, tiny_corpus):
    from sentiment_core.training import train

    runs = {p: train(tiny_config.replace(epochs=3, precision=p, device="cpu"), tiny_corpus, progress=False).history
            for p in ("fp32", "bf16")}
    for fp32, bf16 in zip(runs["fp32"], runs["bf16"]):
        assert abs(fp32["train_loss"] - bf16["train_loss"]) < 0.05
        assert abs(fp32["valid_acc"] - bf16["valid_acc"]) < 0.1


def test_a_diverged_loss_ends_its_run_failed(tiny_config, tiny_corpus, tmp_path):
    client, experiment_id = open_experiment(store(tmp_path), "diverged")
    run = run_training(RunTracker.create(client, experiment_id, run_name="r"),
                       tiny_config.replace(lr=1e38, clip_grad_norm=0, epochs=3, precision="fp32"), tiny_corpus,
                       repo_root=REPO, data_source="test", progress=False, system_metrics=False)
    assert run.result.status == "diverged"
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FAILED" and logged.data.tags["training_status"] == "diverged"


def _worker_processes(pid: int) -> list[int]:
    """The worker processes ``pid`` spawned (from /proc: the tests run on Linux, as CI does);
    not multiprocessing's resource tracker, which ends on its own once its parent has."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state_and_parent = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # a process that ended while we looked
        if int(state_and_parent[1]) == pid and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.processes
def test_sigterm_to_a_study_command_alone_stops_its_worker_processes(tmp_path):
    # `kill PID` or a batch scheduler signals the command, not its process group: its workers must
    # stop too (ending their trials and runs) rather than train on unseen while it waits for them.
    proc = tune(tmp_path, "--n-trials", "2", "--workers", "2", *ENDLESS, "--pruner", "none", background=True)
    workers = []
    try:
        kill_mid_trial(proc, lambda: load_study(tmp_path), sig=signal.SIGTERM,
                       before=lambda: workers.extend(_worker_processes(proc.pid)))
        assert proc.returncode == 130
        assert workers, "the command had no worker processes when it was signalled"
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
        assert not alive, f"worker process(es) {alive} outlived the command"
        trials = load_study(tmp_path).trials
        assert trials and not [t.number for t in trials if t.state == TrialState.RUNNING]
        client = MlflowClient(store(tmp_path))
        runs = [client.get_run(t.user_attrs["mlflow_run_id"]) for t in trials if "mlflow_run_id" in t.user_attrs]
        assert runs and {r.info.status for r in runs} == {"KILLED"}
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# Integration tier, with the other outages: it waits out MLflow's 20 s busy timeout, idle.
@pytest.mark.integration
def test_a_trial_stopped_while_another_process_locks_the_store_is_still_queued_again(tmp_path):
    # The store refuses the KILLED status (MLflow waits 20 s on a locked SQLite database, then
    # fails): the interruption must stay one, so the trial is queued again all the same.
    # The system-metrics monitor may meet the lock too (CI, once: a second 20 s wait and MLflow's
    # traceback); tests/test_crash_safety.py holds the case where it always does.
    endless = ("--n-trials", "1", *ENDLESS, "--pruner", "none")
    worker = tune(tmp_path, *endless, background=True)
    lock = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    said = []

    def release_once_refused():  # waits on the worker's own words, not on a clock
        said.append(read_until(worker.stderr, "could not mark the run KILLED"))
        lock.execute("ROLLBACK")

    _, err = kill_mid_trial(worker, lambda: load_study(tmp_path), sig=signal.SIGTERM,
                            before=lambda: lock.execute("BEGIN IMMEDIATE"), after=release_once_refused)
    said = "".join(said) + err
    assert worker.returncode == 130, said[-3000:]
    assert "could not mark the run KILLED now (OperationalError: database is locked)" in said
    assert "Traceback" not in said  # that one line, not MLflow's logged traceback of the refused write
    # One wait on the lock, not two: an interrupted run skips its last system-metrics sample.
    assert "last system-metrics sample not logged" not in said
    stopped, retry = load_study(tmp_path).trials
    assert stopped.state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.user_attrs["retried_from_trial"] == 0
    assert retry.system_attrs["fixed_params"] == stopped.params
    client = MlflowClient(store(tmp_path))
    assert client.get_run(stopped.user_attrs["mlflow_run_id"]).info.status == "RUNNING"
    reaped = tune(tmp_path, *endless, "--reap-only")  # what every command on the store does first
    assert reaped.returncode == 0, reaped.stderr
    assert client.get_run(stopped.user_attrs["mlflow_run_id"]).info.status == "KILLED"


@pytest.mark.processes
def test_sigterm_fails_the_trial_kills_its_run_and_the_next_command_goes_on_from_its_last_epoch(tmp_path,
                                                                                               run_inprocess):
    epochs = 25  # tiny epochs: ample room for the kill to land mid-trial on a slow machine
    endless = ("--n-trials", "1", "--epochs", str(epochs), "--early-stopping-patience", "0", "--pruner", "none")
    stopped_command = tune(tmp_path, *endless, background=True)
    _, said = kill_mid_trial(stopped_command, lambda: load_study(tmp_path), sig=signal.SIGTERM)
    assert stopped_command.returncode == 130, said[-3000:]
    stopped = load_study(tmp_path).trials[0]
    assert stopped.state == TrialState.FAIL
    run = MlflowClient(store(tmp_path)).get_run(stopped.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and run.data.tags["trial_state"] == "KILLED"
    proc = tune(tmp_path, *endless, runner=run_inprocess)  # what the signal left is on disk: any process reads it
    assert proc.returncode == 0, proc.stderr
    done = re.search(rf"resuming after epoch (\d+) of {epochs}", proc.stdout)
    assert done, proc.stdout[-2000:]
    restored = int(done.group(1))
    # The first epoch is always saved, later ones at most every 30 s, and the last one too (a kill
    # while the finished run is logged replays it whole).
    assert 1 <= restored <= epochs
    retry = load_study(tmp_path).trials[1]
    assert retry.user_attrs["retried_from_trial"] == 0 and retry.params == stopped.params
    assert retry.state == TrialState.COMPLETE and sorted(retry.intermediate_values) == list(range(1, epochs + 1))
    run = MlflowClient(store(tmp_path)).get_run(retry.user_attrs["mlflow_run_id"])
    assert run.data.tags["resumed_epochs"] == str(restored)
    assert len(MlflowClient(store(tmp_path)).get_metric_history(run.info.run_id, "valid_acc")) == epochs
    assert not list((tmp_path / "cache").rglob("*.pt")), "a finished run leaves no state behind"


def _basic(dropout: float, state: TrialState, values: dict[int, float], **attrs):
    return create_trial(state=state, params={"dropout": dropout, "weight_decay_on": False},
                        distributions={"dropout": FloatDistribution(0.0, 0.8),
                                       "weight_decay_on": CategoricalDistribution([False, True])},
                        value=max(values.values()) if state == TrialState.COMPLETE else None,
                        intermediate_values=values, user_attrs=attrs)


def test_rerun_spared_runs_again_what_another_margin_pruned(tmp_path, run_inprocess):
    created = tune(tmp_path, "--total-trials", "0", "--pruner", "asha", "--first-rung", "1", runner=run_inprocess)
    assert created.returncode == 0, created.stderr
    study = load_study(tmp_path)
    study.add_trial(_basic(0.6, TrialState.COMPLETE, {1: 0.60, 2: 0.62}, **{REFERENCE_ATTR: "seed notebook setting"}))
    # Pruned at epoch 1 under plain halving (margin 0) at 0.59: within 3 points of the seed setting's 0.60.
    study.add_trial(_basic(0.3, TrialState.PRUNED, {1: 0.59}, seed_margin=0.0))
    pruned = study.trials[-1].number
    proc = tune(tmp_path, "--n-trials", "2", "--pruner", "asha", "--first-rung", "1", "--rerun-spared",
                runner=run_inprocess)
    assert proc.returncode == 0, proc.stderr
    assert f"trial(s) [{pruned}] pruned under another rule run again" in proc.stdout
    reruns = [t for t in load_study(tmp_path).trials if t.user_attrs.get("rerun_of") == pruned]
    assert len(reruns) == 1 and reruns[0].params["dropout"] == 0.3
    assert reruns[0].state in (TrialState.COMPLETE, TrialState.PRUNED) and reruns[0].user_attrs["seed_margin"] == 0.03
    again = tune(tmp_path, "--n-trials", "0", "--pruner", "asha", "--first-rung", "1", "--rerun-spared",
                 "--total-trials", "4", runner=run_inprocess)
    assert again.returncode == 0 and "no pruned trial to run again" in again.stdout


@pytest.mark.processes
def test_a_dead_workers_trial_is_retried_and_the_retry_runs(tmp_path, run_inprocess):
    created = tune(tmp_path, "--total-trials", "0", runner=run_inprocess)
    assert created.returncode == 0, created.stderr
    # A worker that takes the queued seed setting, says who it is, and dies mid-trial.
    code = ("import sys\nsys.path.insert(0, sys.argv[2])\nimport optuna\n"
            "from sentiment_core.tuning import make_storage\nfrom sentiment_core.tuning.stale import trial_identity_attrs\n"
            "study = optuna.load_study(study_name='s', storage=make_storage('journal:' + sys.argv[1]))\n"
            "trial = study.ask()\ntrial_identity_attrs(trial)\ntrial.suggest_float('dropout', 0, 0.8)\n"
            "trial.suggest_categorical('weight_decay_on', [False, True])\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "study.journal"), str(REPO)], check=True)
    assert load_study(tmp_path).trials[0].state == TrialState.RUNNING
    proc = tune(tmp_path, "--n-trials", "1", runner=run_inprocess)
    assert proc.returncode == 0, proc.stderr
    trials = load_study(tmp_path).trials
    assert trials[0].state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retried_from_trial") == 0]
    assert len(retry) == 1 and retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry[0].params == {"dropout": 0.6, "weight_decay_on": False} and REFERENCE_ATTR in retry[0].user_attrs


def test_a_journal_damaged_before_its_end_is_refused_by_the_command(tmp_path, run_inprocess):
    assert tune(tmp_path, "--n-trials", "1", runner=run_inprocess).returncode == 0
    journal = tmp_path / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][: len(lines[1]) // 2] + b"\n"
    journal.write_bytes(b"".join(lines))
    before = hashlib.sha256(journal.read_bytes()).hexdigest()
    proc = tune(tmp_path, "--n-trials", "1", runner=run_inprocess)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert str(journal) in last and "is damaged" in last and "Restore a backup" in last
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before
