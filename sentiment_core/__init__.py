"""sentiment_core: train and compare recurrent sentiment classifiers (RNN, LSTM, GRU) on IMDB.

Layers, each importing only from those before it (tests/test_layout.py holds the line):

- ``errors``, ``reporting``, ``system``: one-line user errors; tables and plots; processes,
  locks, CPU threads and worker processes.
- ``data``: where reviews come from, splits, tokenizers and vocabulary, cached corpora, batches.
- ``training``: the config, device and precision, the model (the cell is a parameter), the loop,
  checkpoints. Imports neither MLflow nor Optuna.
- ``tracking``: MLflow: the store, runs, a tracked training run, logged and registered models.
- ``comparison``: arms trained on the same data (RNN vs LSTM, recipes) and the TF-IDF yardstick.
- ``tuning``: Optuna studies: search spaces, the objective, the rung pruner, storages, studies,
  retrains and reports.
- ``cli``: what the scripts in experiments/ share (flags, error handling).

The library has no global state.
"""

__version__ = "0.1.0"
