"""Trained models the MLflow way: logged pyfunc models, the registry, loading and serving them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import pytest
from mlflow import MlflowClient
from test_predictions import oracle

from helpers import PREDICT, REPO, free_port, store
from sentiment_core.tracking.models import download_checkpoint

TEXTS = ["A wonderful, moving film with a superb cast.", "Two hours I will never get back. Dreadful."]


def _predict_py(run_inprocess, uri, tmp, *source):
    """predict.py's (label, probability) for TEXTS."""
    proc = run_inprocess(PREDICT, [*source, *TEXTS], {"MLFLOW_TRACKING_URI": uri}, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(None, 2) for line in proc.stdout.splitlines()[1:]]
    return [(label, float(probability)) for label, probability, _ in rows]


def test_every_trained_child_logs_a_model_with_a_signature(compared, tmp_path):
    from sentiment_core.tracking.models import logged_model_of, using_store

    uri, _, _ = compared
    tmp = tmp_path
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rnn-vs-lstm")
    children = [r for r in client.search_runs([experiment.experiment_id]) if "cell" in r.data.params]
    assert sorted(r.data.params["cell"] for r in children) == ["lstm", "rnn"]
    for child in children:
        model = logged_model_of(client, child.info.run_id)
        files = {a.path for a in client.list_logged_model_artifacts(model.model_id)}
        assert {"MLmodel", "artifacts", "input_example.json", "code"} <= files
        # runs:/<run>/model still finds it (MLflow resolves the run's LoggedModel named "model").
        with using_store(uri):  # as a user's MLFLOW_TRACKING_URI would
            folder = mlflow.artifacts.download_artifacts(f"runs:/{child.info.run_id}/model", tracking_uri=uri,
                                                         dst_path=str(tmp / child.info.run_id))
        text = open(os.path.join(folder, "MLmodel")).read()
        assert f"model_id: {model.model_id}" in text
        assert "signature:" in text and '"name": "text"' in text and '"name": "probability"' in text
        assert "python_model.pkl" not in text  # models from code: no pickled class
        assert child.data.metrics["model_log_seconds"] > 0


def test_the_registry_holds_both_cells_with_alias_best(compared):
    uri, proc, _ = compared
    client = MlflowClient(uri)
    parent = next(r for r in client.search_runs([client.get_experiment_by_name("rnn-vs-lstm").experiment_id])
                  if "mlflow.parentRunId" not in r.data.tags)
    for cell in ("lstm", "rnn"):
        best = client.get_model_version_by_alias(f"sentiment-imdb-{cell}", "best")
        assert best.tags["source_run_id"] == parent.info.run_id
        assert client.get_run(best.run_id).data.params["cell"] == cell
        assert float(best.tags["valid_acc"]) == pytest.approx(client.get_run(best.run_id).data.metrics["best_valid_acc"])
    assert "registered sentiment-imdb-lstm version" in proc.stdout


def test_the_best_alias_moves_only_to_a_better_version_on_the_same_split(tmp_path):
    from sentiment_core.tracking.models import register
    from sentiment_core.tracking.store import open_experiment

    client, experiment_id = open_experiment(store(tmp_path, 'm.db'), "e")
    runs = [client.create_run(experiment_id).info.run_id for _ in range(5)]
    assert register(client, runs[0], "m", 0.80, "split-a", "p") == ("1", True)
    assert register(client, runs[1], "m", 0.85, "split-a", "p") == ("2", True)
    assert register(client, runs[2], "m", 0.82, "split-a", "p") == ("3", False)  # worse, and newest: stays on 2
    # 0.99 on another validation split (a --max-examples run, another data source) does not compare.
    assert register(client, runs[3], "m", 0.99, "split-b", "p") == ("4", False)
    assert register(client, runs[4], "m", 0.86, "split-a", "p") == ("5", True)
    best = client.get_model_version_by_alias("m", "best")
    assert str(best.version) == "5" and best.tags["valid_digest"] == "split-a"


@pytest.mark.processes
def test_two_processes_registering_at_once_end_on_the_better_version(tmp_path):
    # Both processes wait for a start file, then register: a better and a worse version of one model.
    from sentiment_core.tracking.store import open_experiment

    uri = store(tmp_path)
    client, experiment_id = open_experiment(uri, "e")
    code = ("import sys, time, pathlib\n"
            "from mlflow import MlflowClient\n"
            "from sentiment_core.tracking.models import register\n"
            "client = MlflowClient(sys.argv[1])\n"
            "while not pathlib.Path(sys.argv[4]).exists(): time.sleep(0.01)\n"
            "for _ in range(3):\n"
            "    register(client, sys.argv[2], 'm', float(sys.argv[3]), 'split', 'p')\n")
    start = tmp_path / "go"
    # One pair of processes, three registrations each, released together: they interleave.
    runs = {acc: client.create_run(experiment_id).info.run_id for acc in ("0.7", "0.9")}
    procs = [subprocess.Popen([sys.executable, "-c", code, uri, run_id, acc, str(start)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for acc, run_id in runs.items()]
    start.touch()
    for proc in procs:
        assert proc.wait(120) == 0, proc.stderr.read()
    assert client.get_model_version_by_alias("m", "best").run_id == runs["0.9"]


def test_a_trained_run_logs_a_ready_logged_model_that_its_version_points_at(compared):
    uri, _, _ = compared
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rnn-vs-lstm")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    models = client.search_logged_models([experiment.experiment_id])
    children = [r for r in client.search_runs([experiment.experiment_id]) if "cell" in r.data.params]
    assert sorted(m.source_run_id for m in models) == sorted(r.info.run_id for r in children)
    for child in children:
        model = next(m for m in models if m.source_run_id == child.info.run_id)
        assert model.name == "model" and str(model.status) == "READY"
        assert model.params["cell"] == child.data.params["cell"] and model.params["seed"] == child.data.params["seed"]
        linked = {m.key: m.value for m in model.metrics}
        assert linked["best_valid_acc"] == pytest.approx(child.data.metrics["best_valid_acc"])
        assert set(linked) >= {"best_valid_acc", "test_acc_at_best_valid", "gap_at_best_valid", "best_epoch"}
        name = f"sentiment-imdb-{child.data.params['cell']}"
        version = client.get_model_version(name, child.data.tags["registered_model"].split("/")[1])
        assert version.source == f"models:/{model.model_id}" and version.tags["model_id"] == model.model_id
        assert version.tags["valid_digest"] == child.data.params["valid_digest"]
        assert json.loads(model.tags["mlflow.modelVersions"]) == [{"name": name, "version": str(version.version)}]
        # MLflow's own context tags: the UI's Source column and the run page's source box.
        assert child.data.tags["mlflow.source.name"].endswith("compare_rnn_lstm.py")
        assert child.data.tags["mlflow.source.type"] == "LOCAL"
        assert len(child.data.tags["mlflow.source.git.commit"]) == 40


@pytest.mark.processes
def test_a_fresh_process_loads_the_registered_model_and_scores_as_predict_py(compared, run_inprocess):
    uri, _, tmp = compared
    code = ("import json, sys, mlflow, pandas as pd\n"
            "model = mlflow.pyfunc.load_model('models:/sentiment-imdb-lstm@best')\n"
            f"out = model.predict(pd.DataFrame({{'text': {TEXTS!r}}}))\n"
            "print(json.dumps(out.to_dict('records')))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr
    pyfunc = [(r["label"], r["probability"]) for r in json.loads(proc.stdout.strip().splitlines()[-1])]
    expected = _predict_py(run_inprocess, uri, tmp, "--model", "models:/sentiment-imdb-lstm@best")
    assert [label for label, _ in pyfunc] == [label for label, _ in expected]
    assert [p for _, p in pyfunc] == pytest.approx([p for _, p in expected], abs=5e-4)  # predict.py prints 3 decimals
    run_id = MlflowClient(uri).get_model_version_by_alias("sentiment-imdb-lstm", "best").run_id
    assert _predict_py(run_inprocess, uri, tmp, "--model", f"runs:/{run_id}/model") == expected
    assert _predict_py(run_inprocess, uri, tmp, "--run-id", run_id) == expected


@pytest.mark.parametrize("source, message", [
    (["--model", "models:/sentiment-nope@best"], "no registered model version at models:/sentiment-nope@best"),
    (["--model", "models:/sentiment-imdb-lstm@worst"], "no registered model version at models:/sentiment-imdb-lstm@worst"),
    (["--model", "s3://bucket/model"], "is not a model URI"),
])
def test_bad_model_uris_are_one_clear_line(compared, source, message, run_inprocess):
    uri, _, tmp = compared
    proc = run_inprocess(PREDICT, [*source, "some review"], {"MLFLOW_TRACKING_URI": uri}, cwd=tmp)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1]


def test_a_runs_uri_without_a_model_is_one_clear_line(compared, run_inprocess):
    uri, _, tmp = compared
    client = MlflowClient(uri)
    baseline = next(r for r in client.search_runs([client.get_experiment_by_name("rnn-vs-lstm").experiment_id])
                    if r.info.run_name == "tfidf-logreg")
    proc = run_inprocess(PREDICT, ["--model", f"runs:/{baseline.info.run_id}/model", "x"],
                         {"MLFLOW_TRACKING_URI": uri}, cwd=tmp)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"run {baseline.info.run_id} has no model" in proc.stderr.strip().splitlines()[-1]


def _post(url, payload):
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.integration
def test_mlflow_models_serve_answers_as_the_oracle(compared, run_inprocess):
    uri, _, tmp = compared
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/sentiment-imdb-lstm@best",
                               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=tmp, env={**os.environ, "MLFLOW_TRACKING_URI": uri},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:  # wait for the server to answer, not for a fixed time
            try:
                urllib.request.urlopen(f"{base}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1][-3000:]
                assert time.time() < deadline, "mlflow models serve did not answer /ping in time"
                time.sleep(0.5)
        status, body = _post(f"{base}/invocations", {"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]}})
        assert status == 200, body
        served = [(p["label"], p["probability"]) for p in body["predictions"]]
        # Against the oracle (the checkpoint's weights in plain torch, argmax, the data's class order),
        # not against predict.py, which shares the prediction code with the served model.
        run_id = MlflowClient(uri).get_model_version_by_alias("sentiment-imdb-lstm", "best").run_id
        expected = oracle(download_checkpoint(uri, run_id, tmp / "served-checkpoint"), TEXTS)
        assert [label for label, _ in served] == [label for label, _ in expected]
        assert [p for _, p in served] == pytest.approx([p for _, p in expected], abs=1e-4)
        status, body = _post(f"{base}/invocations", {"dataframe_split": {"columns": ["review"], "data": [["x"]]}})
        assert 400 <= status < 500 and "text" in json.dumps(body)
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.processes
def test_predict_on_a_local_store_prints_the_table_and_nothing_else(compared):
    # A real process (MLflow's download progress bar goes to its stderr), as a user runs it.
    uri, _, tmp = compared
    proc = subprocess.run([sys.executable, str(PREDICT), "--model", "models:/sentiment-imdb-lstm@best", *TEXTS],
                          capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, cwd=tmp,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1 + len(TEXTS)


def test_predict_help_names_the_models_that_runs_register(run_inprocess, tmp_path):
    import re

    from sentiment_core.tracking.models import registered_name

    proc = run_inprocess(PREDICT, ["--help"], cwd=tmp_path)
    assert proc.returncode == 0
    names = set(re.findall(r"models:/([\w-]+)@best", proc.stdout))
    assert names == {registered_name("embedded", "lstm")}, names


def test_a_run_is_registered_once_even_without_its_tag(tmp_path):
    # The run's tag says it is registered; if it went missing (a command cut off between the two
    # writes), the registry itself still says so: no second version of the same run.
    from sentiment_core.comparison.arms import register_run
    from sentiment_core.tracking.store import open_experiment
    from sentiment_core.tracking.tracked_run import TrackedRun
    from sentiment_core.training.config import TrainConfig
    from sentiment_core.tuning.retraining import StoredResult

    uri = store(tmp_path)
    client, experiment_id = open_experiment(uri, "e")
    run_id = client.create_run(experiment_id).info.run_id
    run = TrackedRun(run_id, TrainConfig(), StoredResult([{"epoch": 1}], {"best_epoch": 1, "best_valid_acc": 0.8}, "completed"))
    register_run(client, run, "parent")
    client.delete_tag(run_id, "registered_model")
    register_run(client, run, "parent")
    versions = client.search_model_versions("name = 'sentiment-imdb-lstm'")
    assert [v.run_id for v in versions] == [run_id]
    assert client.get_run(run_id).data.tags["registered_model"] == "sentiment-imdb-lstm/1"
