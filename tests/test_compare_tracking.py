"""The comparison script end to end, against real, temporary MLflow stores."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from helpers import COMPARE as SCRIPT
from helpers import TINY, mlflow_server, store
from sentiment_core.data.corpus import load_corpus
from sentiment_core.tracking.models import download_checkpoint
from sentiment_core.tracking.store import open_experiment
from sentiment_core.training.checkpoint import load_checkpoint
from sentiment_core.training.loop import evaluate
from sentiment_core.training.runtime import resolve_runtime

REPO = Path(__file__).resolve().parents[1]
METRICS = ("train_loss", "train_acc", "train_eval_loss", "train_eval_acc", "valid_loss", "valid_acc", "test_loss",
           "test_acc")


def _runs(uri, experiment="rnn-vs-lstm"):
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return client, client.search_runs([experiment_id])


def _model_children(runs):
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags and r.data.tags.get("kind") != "baseline"]


@pytest.mark.processes
def test_one_parent_two_finished_children_with_every_epoch(compared):
    uri, proc, _ = compared
    client, runs = _runs(uri)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in _model_children(runs) if r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2 and len(runs) == 4  # + the tfidf-logreg yardstick
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.params["cell"] for r in children} == {"rnn", "lstm"}
    for child in children:
        for name in METRICS + ("lr", "epoch_seconds", "train_reviews_per_s", "train_tokens_per_s",
                               "generalization_gap"):
            history = client.get_metric_history(child.info.run_id, name)
            assert sorted(m.step for m in history) == [1, 2], name
        for name in ("best_epoch", "best_valid_acc", "test_acc_at_best_valid", "final_test_acc"):
            assert name in child.data.metrics
        assert child.data.params["vocab_size"] == "3002" and child.data.params["train_size"] == "200"
        assert child.data.params["device"] == "cpu"
        assert child.data.tags["torch_threads"] == "1"  # the fixture's --threads 1
        for tag in ("git_commit", "torch_version", "mlflow_version", "device_name"):
            assert tag in child.data.tags
        assert {d.dataset.name for d in child.inputs.dataset_inputs} == {"embedded-train", "embedded-valid", "embedded-test"}
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"history.csv", "learning_curves.png", "test_confusion_matrix.png"} <= artifacts  # model: a LoggedModel
    parent_artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id, "comparison")}
    assert {"comparison/comparison.csv", "comparison/comparison.md", "comparison/comparison_curves.png"} <= parent_artifacts
    # The honest gap: eval-mode accuracy on the training sample minus valid accuracy, every epoch.
    for child in children:
        gaps = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "generalization_gap")}
        train_eval = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "train_eval_acc")}
        valid = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "valid_acc")}
        assert all(gaps[s] == pytest.approx(train_eval[s] - valid[s]) for s in (1, 2))
    # The console ends with the table, the browse command and where the plots are.
    assert "| model" in proc.stdout and "mlflow ui --backend-store-uri" in proc.stdout and "plots and tables" in proc.stdout


def test_the_yardstick_is_a_child_run_equal_to_scikit_learn_on_the_same_texts(compared):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from sentiment_core.data.sources import load_splits

    uri, proc, tmp = compared
    client, runs = _runs(uri)
    (yardstick,) = [r for r in runs if r.info.run_name == "tfidf-logreg"]
    assert yardstick.info.status == "FINISHED" and yardstick.data.tags["kind"] == "baseline"
    for name in ("train", "valid", "test"):
        assert [m.step for m in client.get_metric_history(yardstick.info.run_id, f"{name}_acc")] == [1]
        assert name + "_loss" in yardstick.data.metrics
    assert yardstick.data.metrics["fit_seconds"] > 0
    # Independently: the same reviews (TINY: 200 per split, first 60 lowercase space-split tokens).
    splits = load_splits("embedded", seed=1234, max_examples=200)
    texts = {n: [re.sub(r"<br\s*/?>", " ", " ".join([t for t in s.lower().split(" ") if t][:60])) for s in split.texts]
             for n, split in splits.items()}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    train_x = vectorizer.fit_transform(texts["train"])
    model = LogisticRegression(C=float(yardstick.data.params["C"]), solver="liblinear", max_iter=1000, random_state=0)
    model.fit(train_x, splits.train.labels)
    expected = (model.predict(vectorizer.transform(texts["test"])) == splits.test.labels).mean()
    assert yardstick.data.metrics["test_acc"] == pytest.approx(expected, abs=1e-12)
    assert "| tfidf-logreg" in proc.stdout


def test_the_parent_holds_accuracy_by_review_length(compared):
    uri, proc, tmp = compared
    client, runs = _runs(uri)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")}
    assert {"comparison/accuracy_by_length.csv", "comparison/accuracy_by_length.png"} <= artifacts
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "comparison/accuracy_by_length.csv", str(tmp)))
    assert list(table["length bin"]) == ["Q1", "Q2", "Q3", "Q4"] and table["reviews"].sum() == 200
    assert {"rnn acc %", "lstm acc %", "tfidf-logreg acc %"} <= set(table.columns)
    # Per-bin accuracies weighted by bin size give back each model's overall test accuracy.
    for child in _model_children(runs):
        overall = (table[f"{child.data.params['cell']} acc %"] * table["reviews"]).sum() / 100 / 200
        assert overall == pytest.approx(child.data.metrics["test_acc_at_best_valid"], abs=1e-9)
    assert "test accuracy by review length" in proc.stdout


def test_preset_seed_resolves_to_the_seed_notebooks_recipe(tmp_path, run_inprocess):
    proc = run_inprocess(SCRIPT, ["--preset", "seed", "--print-config"],
                         {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    seed_recipe = {"cell": "lstm", "embedding_dim": 100, "hidden_dim": 256, "num_layers": 1, "bidirectional": False,
                   "embedding_dropout": 0.6, "output_dropout": 0.0, "optimizer": "adam", "lr": 0.003,
                   "weight_decay": 0.0, "batch_size": 32, "epochs": 30, "clip_grad_norm": 1.0,
                   "scheduler_patience": 3, "scheduler_metric": "train_loss", "max_vocab_size": 25000,
                   "max_len": None, "tokenizer": "split", "early_stopping_patience": 0}
    assert {k: config[k] for k in seed_recipe} == seed_recipe
    assert not (tmp_path / "mlflow.db").exists()  # printing the config trains and logs nothing


def test_logged_test_accuracy_equals_the_checkpoints(compared, tmp_path):
    uri, _, tmp = compared
    client, runs = _runs(uri)
    child = next(r for r in runs if r.data.params.get("cell") == "lstm")
    directory = download_checkpoint(uri, child.info.run_id, tmp_path)
    checkpoint = load_checkpoint(directory)
    corpus = load_corpus(checkpoint.config, cache_dir=tmp / "cache")
    _, accuracy = evaluate(checkpoint.model, corpus.test, resolve_runtime("cpu", checkpoint.config.precision),
                           max_len=checkpoint.config.max_len)
    best_epoch = int(child.data.metrics["best_epoch"])
    at_best = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "test_acc")}[best_epoch]
    assert accuracy == child.data.metrics["test_acc_at_best_valid"] == at_best


def test_the_printed_predict_commands_work(compared, run_inprocess):
    uri, proc, tmp = compared
    commands = re.findall(r"^  (rnn|lstm): python experiments/predict.py (--model runs:/\w+/model) \"A fine film.\"$",
                          proc.stdout, re.M)
    assert [cell for cell, _ in commands] == ["rnn", "lstm"], proc.stdout[-2000:]
    for _, flags in commands:
        answer = run_inprocess(REPO / "experiments" / "predict.py", [*flags.split(), "A fine film."],
                               {"MLFLOW_TRACKING_URI": uri}, cwd=tmp)
        assert answer.returncode == 0 and "A fine film." in answer.stdout, answer.stderr


def test_predict_scores_texts_from_a_run_id(compared, run_inprocess):
    uri, _, tmp = compared
    _, runs = _runs(uri)
    run_id = next(r for r in runs if r.data.params.get("cell") == "lstm").info.run_id
    proc = run_inprocess(REPO / "experiments" / "predict.py", ["--run-id", run_id, "What a wonderful film",
                                                               "Terrible, boring."], {"MLFLOW_TRACKING_URI": uri}, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "What a wonderful film" in line or "Terrible" in line]
    assert len(lines) == 2 and all(("positive" in line or "negative" in line) for line in lines)


def test_three_seeds_add_the_paired_lstm_minus_rnn_interval(tmp_path, run_inprocess):
    uri = store(tmp_path)
    proc = run_inprocess(SCRIPT, [*TINY, "--epochs", "1", "--seeds", "1,2,3", "--no-baseline", "--output-dir",
                                  tmp_path / "out"], {"MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": tmp_path / "cache"},
                         cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    client, runs = _runs(uri)
    assert sorted((r.data.params["cell"], r.data.params["seed"]) for r in runs if "cell" in r.data.params) == [
        (cell, seed) for cell in ("lstm", "rnn") for seed in "123"]
    # The printed interval is the paired t interval of the runs' own numbers, computed here.
    from scipy import stats

    by_seed = {(r.data.params["cell"], r.data.params["seed"]): r.data.metrics["test_acc_at_best_valid"]
               for r in runs if "cell" in r.data.params}
    diffs = [(by_seed[("lstm", s)] - by_seed[("rnn", s)]) * 100 for s in "123"]
    mean = sum(diffs) / 3
    half = stats.t.ppf(0.975, 2) * (sum((d - mean) ** 2 for d in diffs) / 2) ** 0.5 / 3 ** 0.5
    assert (f"LSTM - RNN test accuracy at best valid, paired over 3 seeds: {mean:+.2f} points "
            f"(95% CI {mean - half:+.2f} to {mean + half:+.2f})") in proc.stdout
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert "comparison/lstm_minus_rnn.png" in {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")}


@pytest.mark.processes
def test_a_normal_start_from_a_clone_prints_a_few_lines_and_tracks_into_the_repositorys_mlflow_db(tmp_path):
    # What a new user sees: no MLFLOW_TRACKING_URI, the script run from another folder. A copy of
    # the repository, so the real mlflow.db is never touched.
    repo = tmp_path / "repo"
    for part in ("experiments", "sentiment_core"):
        shutil.copytree(REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    uri = store(repo)  # the store made from the template (creating one is tested on its own, with a race)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run([sys.executable, str(repo / "experiments" / "compare_rnn_lstm.py"), *TINY, "--epochs", "1",
                           "--output-dir", str(tmp_path / "out")], cwd=elsewhere, capture_output=True, text=True,
                          timeout=300, env={**env, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert not (elsewhere / "mlflow.db").exists() and not (elsewhere / "mlruns").exists()
    client, runs = _runs(uri)
    assert len(runs) == 4 and (repo / "mlruns").is_dir()  # parent, RNN, LSTM, yardstick: the repository's store
    out = proc.stdout.splitlines()
    before_training = out[:next(i for i, line in enumerate(out) if line.startswith("tfidf-logreg:"))]
    assert len(before_training) <= 4, before_training
    lstm = next(line for line in out if line.startswith("lstm on cpu (") and "; the default recipe but " in line)
    assert "max_examples 200" in lstm and "max_len 60" in lstm
    assert "{" not in proc.stdout.split("| model")[0]  # no JSON config dump
    assert "Warning" not in proc.stderr and "INFO" not in proc.stderr  # nothing of MLflow's own
    experiment_id = client.get_experiment_by_name("rnn-vs-lstm").experiment_id
    assert out[-1] == (f"browse: mlflow ui --backend-store-uri {uri}, then open "
                       f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
    assert any(line.startswith("wall time") and str(tmp_path / "out") in line for line in out)
    # A --max-examples run is a smoke run: the registry stays empty unless --register asks.
    assert not client.search_registered_models()
    assert "models not registered (--max-examples: a smoke run; --register registers them)" in proc.stdout


def test_experiment_name_from_environment(tmp_path, run_inprocess):
    uri = store(tmp_path)
    env_name = "from-env"
    proc = run_inprocess(SCRIPT, [*TINY, "--epochs", "1", "--models", "rnn", "--no-baseline"],
                         {"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": env_name,
                          "XDG_CACHE_HOME": tmp_path / "cache"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _, runs = _runs(uri, env_name)
    assert len(runs) == 2


@pytest.mark.processes
def test_sigterm_ends_runs_killed_and_keeps_the_history(tmp_path):
    uri = store(tmp_path)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    client, _ = open_experiment(uri, "rnn-vs-lstm")  # the store exists before this test polls it
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *TINY, "--epochs", "500", "--models", "lstm", "--no-baseline"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not any("valid_acc" in r.data.metrics for r in _runs(uri)[1]):  # the first epoch is logged
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < deadline, "no epoch was logged within 240 s: nothing to test the signal on"
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()  # never leave a 500-epoch run behind if the test fails
    assert proc.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    _, runs = _runs(uri)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"KILLED"}
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert len(client.get_metric_history(child.info.run_id, "valid_acc")) >= 1


@pytest.mark.processes
def test_several_processes_creating_the_store_at_once(tmp_path):
    # Two processes that import only the store's code (a spawned test process would import torch
    # and the whole test module first), racing to create the schema (seconds) and the experiment.
    code = f"from sentiment_core.tracking.store import open_experiment; open_experiment('sqlite:///{tmp_path}/mlflow.db', 'race')"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert len(MlflowClient(store(tmp_path)).search_experiments(filter_string="name = 'race'")) == 1


@pytest.mark.parametrize("args, message", [
    (["--models", "rnn,transformer"], "unknown cell"),
    (["--dropout", "1.2"], "dropout must be in [0, 1)"),
    (["--data", "imdb", "--data-dir", "/nonexistent/aclImdb"], "does not exist"),
    (["--seeds", "1,1"], "duplicates"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message, run_inprocess):
    proc = run_inprocess(SCRIPT, [*args, "--epochs", "1"], {"MLFLOW_TRACKING_URI": store(tmp_path),
                                                            "XDG_CACHE_HOME": tmp_path / "cache"}, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1]


@pytest.mark.integration
def test_mlflow_server_serves_the_runs_over_rest(compared):
    uri, _, tmp = compared
    with mlflow_server(uri, tmp, "--workers", "1") as base:
        def call(path, payload=None):
            data = json.dumps(payload).encode() if payload is not None else None
            request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=data,
                                             headers={"Content-Type": "application/json"})
            return json.load(urllib.request.urlopen(request, timeout=30))

        experiment = call("experiments/get-by-name?experiment_name=rnn-vs-lstm")["experiment"]
        runs = call("runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
        assert len(runs) == 4
        children = [r for r in runs if any(t["key"] == "mlflow.parentRunId" for t in r["data"].get("tags", []))
                    and {"key": "kind", "value": "baseline"} not in r["data"].get("tags", [])]
        assert len(children) == 2
        for child in children:
            history = call(f"metrics/get-history?run_id={child['info']['run_id']}&metric_key=valid_acc")["metrics"]
            assert sorted(m["step"] for m in history) == [1, 2]
            assert all(0 <= m["value"] <= 1 for m in history)


@pytest.mark.processes
def test_a_wrong_data_dir_is_a_few_lines_ending_in_the_fix(tmp_path):
    # A real process: what a user sees, MLflow's own log lines included (a fresh store here).
    proc = subprocess.run([sys.executable, str(SCRIPT), "--data", "imdb", "--data-dir", "/nonexistent/aclImdb",
                           "--threads", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'fresh.db'}",
                               "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 2
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) <= 5, lines
    assert "does not exist" in lines[-1] and "--data-dir" in lines[-1]
    assert "Creating initial MLflow database tables" not in proc.stderr


def test_system_metrics_are_logged_and_can_be_turned_off(tmp_path, run_inprocess):
    # MLflow samples every 10 s by default and drops its last unfinished interval; this run is
    # far shorter, so the metrics it gets are the last window the project logs at the end.
    uri = store(tmp_path)
    env = {"MLFLOW_TRACKING_URI": uri, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    runs = {}
    for flag in ([], ["--no-system-metrics"]):
        proc = run_inprocess(SCRIPT, [*TINY, "--epochs", "3", "--models", "lstm", "--no-baseline",
                                      "--experiment", f"e{len(flag)}", *flag], env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        client, found = _runs(uri, f"e{len(flag)}")
        runs[bool(flag)] = next(r for r in found if "cell" in r.data.params)
    on = [k for k in runs[False].data.metrics if k.startswith("system/")]
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(on), on
    assert not [k for k in runs[True].data.metrics if k.startswith("system/")]
