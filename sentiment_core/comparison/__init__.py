"""Comparisons of arms trained on the same data with the same loop (RNN vs LSTM, or recipes), as
child runs of one MLflow run, with the TF-IDF yardstick (``yardstick``) beside them (``arms``)."""

from .arms import QUICK_PRESET, data_source_label, register_run, run_arms, run_comparison

__all__ = ["QUICK_PRESET", "data_source_label", "register_run", "run_arms", "run_comparison"]
