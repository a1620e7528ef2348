"""Trained models the MLflow way: logged pyfunc models, the registry, loading and serving them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from mlflow import MlflowClient

from helpers import PREDICT, free_port, store

TEXTS = ["A wonderful, moving film with a superb cast.", "Two hours I will never get back. Dreadful."]


def _predict_py(run_inprocess, uri, tmp, *source):
    """predict.py's (label, probability) for TEXTS."""
    proc = run_inprocess(PREDICT, [*source, *TEXTS], {"MLFLOW_TRACKING_URI": uri}, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(None, 2) for line in proc.stdout.splitlines()[1:]]
    return [(label, float(probability)) for label, probability, _ in rows]


def test_every_trained_child_logs_a_model_with_a_signature(compared):
    uri, _, _ = compared
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rnn-vs-lstm")
    children = [r for r in client.search_runs([experiment.experiment_id]) if "cell" in r.data.params]
    assert sorted(r.data.params["cell"] for r in children) == ["lstm", "rnn"]
    for child in children:
        files = {a.path for a in client.list_artifacts(child.info.run_id, "model")}
        assert {"model/MLmodel", "model/artifacts", "model/input_example.json", "model/code"} <= files
        mlmodel = client.download_artifacts(child.info.run_id, "model/MLmodel")
        text = open(mlmodel).read()
        assert "signature:" in text and '"name": "text"' in text and '"name": "probability"' in text
        assert "python_model.pkl" not in text  # models from code: no pickled class
        assert child.data.metrics["model_log_seconds"] > 0


def test_the_registry_holds_both_cells_with_alias_best(compared):
    uri, proc, _ = compared
    client = MlflowClient(uri)
    parent = next(r for r in client.search_runs([client.get_experiment_by_name("rnn-vs-lstm").experiment_id])
                  if "mlflow.parentRunId" not in r.data.tags)
    for cell in ("lstm", "rnn"):
        best = client.get_model_version_by_alias(f"sentiment-{cell}", "best")
        assert best.tags["source_run_id"] == parent.info.run_id
        assert client.get_run(best.run_id).data.params["cell"] == cell
        assert float(best.tags["valid_acc"]) == pytest.approx(client.get_run(best.run_id).data.metrics["best_valid_acc"])
    assert "registered sentiment-lstm version" in proc.stdout


def test_the_best_alias_moves_only_to_a_better_version(tmp_path):
    from sentiment_core.mlflow_model import register
    from sentiment_core.tracking import open_experiment

    client, experiment_id = open_experiment(store(tmp_path, 'm.db'), "e")
    runs = [client.create_run(experiment_id).info.run_id for _ in range(3)]
    assert register(client, runs[0], "gru", 0.80, "p") == ("1", True)
    assert register(client, runs[1], "gru", 0.85, "p") == ("2", True)
    assert register(client, runs[2], "gru", 0.82, "p") == ("3", False)
    assert str(client.get_model_version_by_alias("sentiment-gru", "best").version) == "2"


def test_a_fresh_process_loads_the_registered_model_and_scores_as_predict_py(compared, run_inprocess):
    uri, _, tmp = compared
    code = ("import json, sys, mlflow, pandas as pd\n"
            "model = mlflow.pyfunc.load_model('models:/sentiment-lstm@best')\n"
            f"out = model.predict(pd.DataFrame({{'text': {TEXTS!r}}}))\n"
            "print(json.dumps(out.to_dict('records')))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr
    pyfunc = [(r["label"], r["probability"]) for r in json.loads(proc.stdout.strip().splitlines()[-1])]
    expected = _predict_py(run_inprocess, uri, tmp, "--model", "models:/sentiment-lstm@best")
    assert [label for label, _ in pyfunc] == [label for label, _ in expected]
    assert [p for _, p in pyfunc] == pytest.approx([p for _, p in expected], abs=5e-4)  # predict.py prints 3 decimals
    run_id = MlflowClient(uri).get_model_version_by_alias("sentiment-lstm", "best").run_id
    assert _predict_py(run_inprocess, uri, tmp, "--model", f"runs:/{run_id}/model") == expected
    assert _predict_py(run_inprocess, uri, tmp, "--run-id", run_id) == expected


@pytest.mark.parametrize("source, message", [
    (["--model", "models:/sentiment-nope@best"], "no registered model version at models:/sentiment-nope@best"),
    (["--model", "models:/sentiment-lstm@worst"], "no registered model version at models:/sentiment-lstm@worst"),
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
def test_mlflow_models_serve_answers_like_predict_py(compared, run_inprocess):
    uri, _, tmp = compared
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/sentiment-lstm@best",
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
        expected = _predict_py(run_inprocess, uri, tmp, "--model", "models:/sentiment-lstm@best")
        assert [label for label, _ in served] == [label for label, _ in expected]
        assert [p for _, p in served] == pytest.approx([p for _, p in expected], abs=5e-4)
        status, body = _post(f"{base}/invocations", {"dataframe_split": {"columns": ["review"], "data": [["x"]]}})
        assert 400 <= status < 500 and "text" in json.dumps(body)
    finally:
        server.terminate()
        server.wait(30)


def test_predict_on_a_local_store_prints_the_table_and_nothing_else(compared):
    # A real process (MLflow's download progress bar goes to its stderr), as a user runs it.
    uri, _, tmp = compared
    proc = subprocess.run([sys.executable, str(PREDICT), "--model", "models:/sentiment-lstm@best", *TEXTS],
                          capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, cwd=tmp,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1 + len(TEXTS)
