"""The README's walk-through, in its order, on a copy of the repository (so its mlflow.db and
studies/ are the copy's): compare, read the browse line, predict with each printed command, a
small study, the same command again (it goes on), retrains, predict with a retrained model.
Small sizes stand in for --quick; every step must exit 0."""

from __future__ import annotations

import shlex
import shutil

from helpers import REPO, TINY

WALK_SIZES = [flag for flag in TINY if flag != "--quiet"]  # the walk shows what a user sees


def predict_commands(stdout: str) -> list[list[str]]:
    """The arguments of every `python experiments/predict.py ...` line a command printed."""
    return [shlex.split(line.split("python experiments/predict.py", 1)[1])
            for line in stdout.splitlines() if "python experiments/predict.py" in line]


def test_the_readme_walkthrough_works_in_order(tmp_path, run_inprocess, monkeypatch):
    repo = tmp_path / "repo"
    for part in ("experiments", "sentiment_core"):
        shutil.copytree(REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    env = {"XDG_CACHE_HOME": tmp_path / "cache"}

    def step(script, *args):
        proc = run_inprocess(repo / "experiments" / script, [*args], env, cwd=repo)
        assert proc.returncode == 0, f"{script} {' '.join(map(str, args))}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        return proc

    compared = step("compare_rnn_lstm.py", *WALK_SIZES, "--epochs", "1", "--no-baseline")
    assert (repo / "mlflow.db").exists()
    assert f"mlflow ui --backend-store-uri sqlite:///{repo / 'mlflow.db'}" in compared.stdout
    commands = predict_commands(compared.stdout)
    assert len(commands) == 2  # one per cell
    for args in commands:
        answer = step("predict.py", *args)
        assert "positive" in answer.stdout or "negative" in answer.stdout

    study = [*WALK_SIZES, "--model", "lstm", "--epochs", "2", "--n-trials", "2"]
    first = step("tune_regularization.py", *study)
    assert "resume or extend: run the same command again" in first.stdout
    assert len(list((repo / "studies").glob("*.journal"))) == 1
    again = step("tune_regularization.py", *study)  # the same command: the same study, 2 more trials
    assert "2 trial(s) so far" in again.stdout and "trials: 4" in again.stdout
    retrained = step("tune_regularization.py", *WALK_SIZES, "--model", "lstm", "--epochs", "2", "--n-trials", "0",
                     "--retrain-best", "2")
    commands = predict_commands(retrained.stdout)
    assert commands, retrained.stdout[-1500:]
    answer = step("predict.py", *commands[0])
    assert "positive" in answer.stdout or "negative" in answer.stdout
