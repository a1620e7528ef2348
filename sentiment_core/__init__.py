"""sentiment_core: train and compare recurrent sentiment classifiers (RNN, LSTM, GRU) on IMDB.

The library has no global state and its training core imports neither MLflow nor Optuna:
``tracking`` and ``tuning`` adapt the core's per-epoch history to them.
"""

__version__ = "0.1.0"
