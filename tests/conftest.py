"""Shared fixtures: small slices of the real IMDB reviews, temporary caches and stores.

Nothing here writes into the repository's mlflow.db or studies/: every test that tracks gets
a temporary MLflow store and Optuna storage.
"""

from __future__ import annotations

import os

import pytest

from sentiment_core.config import TrainConfig
from sentiment_core.corpus import load_corpus

# Keep test runs off the user's real store even if a test forgets its own URI.
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("token-cache")


@pytest.fixture(scope="session")
def tiny_config():
    """A few hundred real reviews, cut to 80 tokens: seconds per epoch on 2 cores."""
    return TrainConfig(max_examples=300, max_len=80, epochs=2, batch_size=32, hidden_dim=64,
                       embedding_dim=32, max_vocab_size=5000, device="cpu")


@pytest.fixture(scope="session")
def tiny_corpus(tiny_config, cache_dir):
    return load_corpus(tiny_config, cache_dir=cache_dir)


@pytest.fixture(scope="session")
def compared(tmp_path_factory):
    """One tiny comparison (RNN, LSTM and the yardstick), 2 epochs, into a temporary SQLite store:
    shared by every test that only reads what a comparison leaves behind."""
    from helpers import TINY, run_script

    tmp = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    proc = run_script([*TINY, "--epochs", "2", "--output-dir", str(tmp / "out")], uri, tmp, tmp / "cache")
    assert proc.returncode == 0, proc.stderr
    return uri, proc, tmp
